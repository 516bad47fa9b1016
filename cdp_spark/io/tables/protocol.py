"""What every table engine offers (:class:`TableStore`), its idempotency token and results, its errors, and
the schema alignment both engines apply before an append or merge."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol, TypeVar

import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import StructField, StructType

log = logging.getLogger(__name__)

WriteMode = Literal["append", "overwrite"]


class TableError(RuntimeError):
    """A table operation failed; the message names the table."""


class TableNotFound(TableError):
    pass


class CommitConflict(TableError):
    """Another writer committed a conflicting change to the table first; nothing of this attempt was committed."""


COMMIT_ATTEMPTS = 3
"""attempts of one write or merge that keeps losing commit races to other writers"""

Result = TypeVar("Result")


def with_conflict_retries(table: str, attempt: Callable[[], Result], attempts: int = COMMIT_ATTEMPTS) -> Result:
    """``attempt()`` (a whole write: read the table, compute, stage, commit), run again from the table's new
    version while it raises :class:`CommitConflict`, at most ``attempts`` times; then a clear error."""
    for number in range(1, attempts + 1):
        try:
            return attempt()
        except CommitConflict as exc:
            if number == attempts:
                raise TableError(f"{exc} (after {attempts} attempts); nothing of this write was committed: run "
                                 "the job again") from None
            log.warning("%s: another writer committed first; attempt %d of %d", table, number + 1, attempts)
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Txn:
    """Idempotency token: the write is applied at most once per (app_id, version) per table."""

    app_id: str
    version: int


@dataclass(frozen=True)
class WriteResult:
    table: str
    version: int
    skipped: bool = False
    rows_written: int = 0


class TableStore(Protocol):
    engine: str

    def path(self, table: str) -> str: ...
    def exists(self, table: str) -> bool: ...
    def version(self, table: str) -> int | None: ...
    def read(self, table: str, version: int | None = None, timestamp: datetime | None = None) -> DataFrame: ...
    def row_count(self, table: str, version: int | None = None) -> int: ...
    def added_since(self, table: str, version: int) -> DataFrame | None: ...
    def create(self, table: str, schema: StructType) -> WriteResult: ...
    def write(self, table: str, df: DataFrame, mode: WriteMode = "append", txn: Txn | None = None,
              evolve_schema: bool = False, metadata: dict[str, str] | None = None) -> WriteResult: ...
    def merge(self, table: str, df: DataFrame, keys: list[str], txn: Txn | None = None,
              evolve_schema: bool = False, metadata: dict[str, str] | None = None) -> WriteResult: ...
    def append_rows(self, table: str, rows: Sequence[tuple], schema: StructType, txn: Txn | None = None,
                    evolve_schema: bool = False, metadata: dict[str, str] | None = None) -> WriteResult: ...
    def overwrite_arrow(self, table: str, rows: pa.Table, schema: StructType) -> WriteResult: ...
    def latest_metadata(self, table: str, key: str) -> str | None: ...
    def history(self, table: str) -> list[dict[str, Any]]: ...
    def vacuum(self, table: str, retention_hours: int = 168) -> list[str]: ...
    def txn_version(self, table: str, app_id: str) -> int | None: ...
    def tables(self) -> list[str]: ...
    def purge_history(self, table: str) -> int: ...


def split_name(table: str) -> tuple[str, str]:
    layer, dot, name = table.partition(".")
    if not dot or not layer or not name or "/" in table:
        raise TableError(f"table name '{table}' must look like layer.name (e.g. bronze.contacts)")
    return layer, name


def column_types(schema: StructType) -> list[tuple[str, Any]]:
    """Names and types, nullability aside."""
    return [(f.name, f.dataType) for f in schema.fields]


def nullable_schema(schema: StructType) -> StructType:
    return StructType([StructField(f.name, f.dataType, True, f.metadata) for f in schema.fields])


def check_new_columns(df: DataFrame, target: StructType, table: str, evolve_schema: bool) -> list[str]:
    """``df``'s columns that the table does not have; an error unless ``evolve_schema`` (both engines)."""
    target_names = [f.name for f in target.fields]
    new_columns = [c for c in df.columns if c not in target_names]
    if new_columns and not evolve_schema:
        raise TableError(f"{table}: columns {new_columns} are not in the table schema "
                         "(write with evolve_schema=True to add them)")
    return new_columns


def reject_missing_keys(df: DataFrame, keys: Sequence[str], table: str) -> None:
    """The merge keys must be columns of the source (no Spark job)."""
    missing = [k for k in keys if k not in df.columns]
    if missing:
        raise TableError(f"{table}: merge keys {missing} are not columns of the source")


def reject_duplicate_keys(df: DataFrame, keys: Sequence[str], table: str) -> None:
    """A merge source must hold each key once (both engines give the same error). One aggregation over
    ``df``: the rs engine runs it on the files it staged, not on the source's plan (docs/design.md §2)."""
    reject_missing_keys(df, keys, table)
    dups = df.groupBy(*keys).count().where("count > 1").limit(1).collect()
    if dups:
        raise TableError(f"{table}: merge source has duplicate keys {keys}, e.g. "
                         f"{[dups[0][k] for k in keys]}; deduplicate before merging")


def align_to(df: DataFrame, target: StructType, table: str, evolve_schema: bool) -> tuple[DataFrame, list[str]]:
    """Orders ``df``'s columns as the table's, fills missing ones with nulls; returns new column names.
    A new column is only accepted with ``evolve_schema``."""
    new_columns = check_new_columns(df, target, table, evolve_schema)
    incoming = {f.name: f.dataType for f in df.schema.fields}
    cols = []
    for field in target.fields:
        if field.name in incoming:
            cols.append(F.col(f"`{field.name}`").cast(field.dataType).alias(field.name))
        else:
            cols.append(F.lit(None).cast(field.dataType).alias(field.name))
    cols += [F.col(f"`{c}`") for c in new_columns]
    return df.select(*cols), new_columns
