"""Arrow schemas of Spark schemas and Delta file statistics from parquet footers (numbers and dates only)."""

from __future__ import annotations

import inspect
from datetime import date, datetime
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql.types import StructType


def arrow_schema_of(schema: StructType) -> pa.Schema:
    from pyspark.sql.pandas.types import to_arrow_schema

    if "timezone" in inspect.signature(to_arrow_schema).parameters:  # pyspark 4.1+
        return to_arrow_schema(schema, timezone="UTC", prefers_large_types=False)
    return to_arrow_schema(schema)  # pyspark 4.0: timestamps are already UTC microseconds, types not large


def stat_value(value: Any) -> Any:
    if isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return None if value != value else value  # NaN has no order
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.isoformat()
    return None


def stats_columns(schema: StructType, private: frozenset[str] = frozenset()) -> list[str]:
    """The columns whose min/max may go into the Delta log: top-level numbers and dates that are not
    ``private``. Never text, which may hold personal values (both engines)."""
    from pyspark.sql.types import DateType, NumericType

    return [f.name for f in schema.fields
            if f.name not in private and isinstance(f.dataType, (NumericType, DateType))]


def file_stats(meta: pq.FileMetaData, private: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Delta file statistics from a parquet footer: record count, null counts, and min/max only for
    numbers and dates (never for text, which may hold personal values, nor for the ``private`` columns,
    e.g. birth dates), so the transaction log never holds a personal value."""
    null_count: dict[str, int] = {}
    mins: dict[str, Any] = {}
    maxs: dict[str, Any] = {}
    schema = meta.schema.to_arrow_schema()
    for index, field in enumerate(schema):
        if pa.types.is_nested(field.type):
            continue
        orderable = field.name not in private and (
            pa.types.is_integer(field.type) or pa.types.is_floating(field.type) or pa.types.is_date(field.type))
        nulls, lo, hi, complete = 0, None, None, True
        for rg in range(meta.num_row_groups):
            stats = meta.row_group(rg).column(index).statistics
            if stats is None:
                complete = False
                continue
            nulls += stats.null_count or 0
            if orderable and stats.has_min_max:
                lo_v, hi_v = stat_value(stats.min), stat_value(stats.max)
                if lo_v is None or hi_v is None:
                    complete = False
                    continue
                lo = lo_v if lo is None or lo_v < lo else lo
                hi = hi_v if hi is None or hi_v > hi else hi
            elif orderable and meta.row_group(rg).num_rows > (stats.null_count or 0):
                complete = False
        if complete:
            null_count[field.name] = nulls
            if orderable and lo is not None:
                mins[field.name], maxs[field.name] = lo, hi
    return {"numRecords": meta.num_rows, "minValues": mins, "maxValues": maxs, "nullCount": null_count}
