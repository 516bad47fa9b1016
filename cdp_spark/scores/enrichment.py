"""Custom enrichment from config (the seeds' custom aggregates and SQL computed fields).

``custom_aggregate(table, registry, spec)``
    in:  any table with a record key column (and a system column, or a fixed system), the registry
         (system, source_key, person_id)
    out: (person_id, <spec.name>): sum / avg / min / max / count / last value (by ``order_by``) over the
         rows passing ``spec.filter``
``computed_fields(df, fields, table, as_of)``
    adds one column per field, computed with SQL from ``df``'s own columns only: a reference to anything
    else (another table, a subquery, an unknown column) is rejected with a message naming the field.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from cdp_spark.config import ComputedField, CustomAggregate

SUBQUERY = re.compile(r"\b(select|from|join|table)\b", re.IGNORECASE)


class EnrichmentError(ValueError):
    """A computed field or custom aggregate is not valid for its table; the message names it."""


def custom_aggregate(table: DataFrame, registry: DataFrame, spec: CustomAggregate) -> DataFrame:
    system = F.col(spec.system_column) if spec.system_column else F.lit(spec.system)
    rows = table.where(F.expr(spec.filter)) if spec.filter else table
    keyed = rows.select("*", system.alias("_system"), F.col(spec.key_column).cast("string").alias("_key"))
    people = registry.select(F.col("system").alias("_system"), F.col("source_key").alias("_key"), "person_id")
    linked = keyed.join(people, ["_system", "_key"])
    value = F.col(spec.column) if spec.column else F.lit(1)
    aggregate = {"sum": F.sum(value), "avg": F.avg(value), "min": F.min(value), "max": F.max(value),
                 "count": F.count(value),
                 "last": F.max_by(value, F.col(spec.order_by)) if spec.order_by else F.lit(None)}[spec.function]
    return linked.groupBy("person_id").agg(aggregate.alias(spec.name))


def computed_fields(df: DataFrame, fields: Sequence[ComputedField], table: str, as_of: date) -> DataFrame:
    for field in fields:
        if SUBQUERY.search(field.sql):
            raise EnrichmentError(f"computed field '{field.name}' on {table} may use only that table's columns; "
                                  f"it refers to another table or query: {field.sql}")
        sql = field.sql.replace("{as_of}", f"DATE'{as_of.isoformat()}'")
        try:
            df = df.withColumn(field.name, F.expr(sql))
            df.select(field.name).schema  # noqa: B018 - forces analysis now, to name the field in the error
        except AnalysisException as exc:
            reason = str(exc).splitlines()[0][:300]
            raise EnrichmentError(f"computed field '{field.name}' on {table} may use only that table's columns "
                                  f"({', '.join(df.columns)}): {reason}") from None
    return df
