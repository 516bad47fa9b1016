"""The rs engine: Spark writes parquet files into the table directory, the driver commits them with delta-rs
(docs/design.md §2)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from cdp_spark.io.files import one_split
from cdp_spark.io.tables.protocol import (
    CommitConflict,
    TableError,
    TableNotFound,
    Txn,
    WriteMode,
    WriteResult,
    align_to,
    column_types,
    nullable_schema,
    reject_duplicate_keys,
    reject_missing_keys,
    split_name,
    with_conflict_retries,
)
from cdp_spark.io.tables.stats import arrow_schema_of, file_stats

log = logging.getLogger(__name__)

# Reader features this engine cannot honour when it hands Spark a plain file list.
UNSUPPORTED_READER_FEATURES = {"deletionVectors", "columnMapping", "v2Checkpoint"}


class RsDeltaStore:
    """Delta tables committed with delta-rs from files written by Spark (the embedded local default)."""

    engine = "rs"

    def __init__(self, spark: SparkSession, lake_root: str, private_columns: Sequence[str] = ()) -> None:
        self.spark = spark
        self.lake_root = str(Path(lake_root).absolute())
        self.private_columns = frozenset(private_columns)

    # ---- naming and metadata -------------------------------------------------------------------
    def path(self, table: str) -> str:
        layer, name = split_name(table)
        return f"{self.lake_root}/{layer}/{name}"

    def exists(self, table: str) -> bool:
        from deltalake import DeltaTable

        return DeltaTable.is_deltatable(self.path(table))

    def _open(self, table: str, version: int | None = None):
        from deltalake import DeltaTable

        if not self.exists(table):
            raise TableNotFound(f"table {table} does not exist at {self.path(table)}")
        return DeltaTable(self.path(table), version=version) if version is not None else DeltaTable(self.path(table))

    def version(self, table: str) -> int | None:
        return self._open(table).version() if self.exists(table) else None

    def txn_version(self, table: str, app_id: str) -> int | None:
        return self._open(table).transaction_version(app_id) if self.exists(table) else None

    def history(self, table: str) -> list[dict[str, Any]]:
        return list(self._open(table).history())

    def spark_schema(self, table: str, version: int | None = None) -> StructType:
        return StructType.fromJson(json.loads(self._open(table, version).schema().to_json()))

    # ---- reads ---------------------------------------------------------------------------------
    def read(self, table: str, version: int | None = None, timestamp: datetime | None = None) -> DataFrame:
        dt = self._open(table, version)
        if timestamp is not None:
            try:
                dt.load_as_version(timestamp)
            except Exception as exc:
                raise TableError(f"{table}: no version as of {timestamp.isoformat()}: {exc}") from exc
        return self._parquet(table, dt, dt.file_uris())

    def row_count(self, table: str, version: int | None = None) -> int:
        """Rows of the version, from the files' record counts in the log (a Spark count where one lacks it)."""
        dt = self._open(table, version)
        counts = pa.table(dt.get_add_actions(flatten=True)).column("num_records")
        if counts.null_count:
            return self.read(table, version).count()
        return int(sum(counts.to_pylist()))

    def _parquet(self, table: str, dt: Any, files: Sequence[str]) -> DataFrame:
        """``files`` of the table version ``dt`` as a DataFrame with the table's schema."""
        unsupported = set(dt.protocol().reader_features or []) & UNSUPPORTED_READER_FEATURES
        if unsupported:
            raise TableError(f"{table}: reader features {sorted(unsupported)} need the delta-spark engine "
                             "(set storage.engine=spark on a cluster with Delta)")
        schema = StructType.fromJson(json.loads(dt.schema().to_json()))
        if not files:
            return self.spark.createDataFrame([], schema)
        return self.spark.read.schema(schema).parquet(*files)

    def added_since(self, table: str, version: int) -> DataFrame | None:
        """The rows of the files added after ``version``, when the commits since then only added files
        (appends); None when a file of ``version`` was removed since (an erasure, a rewrite, an overwrite)
        or ``version`` can no longer be loaded: the caller then reads the whole table."""
        current = self._open(table)
        try:
            before = set(self._open(table, version).file_uris())
        except Exception as exc:  # the version's log entries were cleaned up
            log.info("%s: version %d cannot be loaded (%s); reading the whole table", table, version, exc)
            return None
        now = current.file_uris()
        if not before <= set(now):
            return None
        return self._parquet(table, current, [f for f in now if f not in before])

    # ---- writes --------------------------------------------------------------------------------
    def _stage_files(self, df: DataFrame, table: str, unique_keys: Sequence[str] = ()) -> tuple[list[Any], int]:
        """Writes ``df`` as parquet into the table's directory; returns AddActions and the row count. With
        ``unique_keys`` (a merge's), the staged rows are checked to hold each key once before any file is
        placed: reading back a few columns of the written files is far cheaper than computing the source's
        plan a second time for the check (docs/design.md §2)."""
        table_path = self.path(table)
        staging = f"{table_path}/.staging-{uuid.uuid4().hex}"
        adds, rows = [], 0
        try:
            df.write.mode("overwrite").option("compression", "snappy").parquet(staging)
            staged = {part: meta for part in sorted(Path(staging).glob("part-*.parquet"))
                      if (meta := pq.read_metadata(part)).num_rows > 0}
            if unique_keys and staged:  # by file: Spark warns that it ignores the hidden staging directory
                written = self.spark.read.schema(df.schema).parquet(*map(str, staged))
                if one_split(self.spark, sum(part.stat().st_size for part in staged)):
                    written = written.coalesce(1)  # small: checked in one task, no exchange (design §9)
                reject_duplicate_keys(written, unique_keys, table)
            for part, meta in staged.items():
                final_name = f"part-{uuid.uuid4().hex}-c000.snappy.parquet"
                os.replace(part, f"{table_path}/{final_name}")
                adds.append(self._add_action(table_path, final_name, meta))
                rows += meta.num_rows
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return adds, rows

    def _commit_properties(self, txn: Txn | None, operation: str, extra: dict[str, Any] | None = None):
        from deltalake.transaction import CommitProperties, Transaction

        metadata = {"cdp.operation": operation, **(extra or {})}
        apps = [Transaction(txn.app_id, txn.version, int(time.time() * 1000))] if txn else None
        return CommitProperties(custom_metadata=metadata, app_transactions=apps)

    def _already_applied(self, table: str, txn: Txn | None) -> WriteResult | None:
        if txn is None or not self.exists(table):
            return None
        seen = self.txn_version(table, txn.app_id)
        if seen is not None and seen >= txn.version:
            log.info("%s: write %s/%s already applied, skipping", table, txn.app_id, txn.version)
            return WriteResult(table, self._open(table).version(), skipped=True)
        return None

    def create(self, table: str, schema: StructType) -> WriteResult:
        from deltalake import Schema
        from deltalake.transaction import create_table_with_add_actions

        if self.exists(table):
            raise TableError(f"table {table} already exists")
        Path(self.path(table)).mkdir(parents=True, exist_ok=True)
        create_table_with_add_actions(self.path(table), Schema.from_arrow(arrow_schema_of(schema)), [],
                                      mode="error", commit_properties=self._commit_properties(None, "CREATE"))
        return WriteResult(table, 0)

    def write(self, table: str, df: DataFrame, mode: WriteMode = "append", txn: Txn | None = None,
              evolve_schema: bool = False, metadata: dict[str, str] | None = None) -> WriteResult:
        return with_conflict_retries(table, lambda: self._write_once(table, df, mode, txn, evolve_schema, metadata))

    def _write_once(self, table: str, df: DataFrame, mode: WriteMode, txn: Txn | None, evolve_schema: bool,
                    metadata: dict[str, str] | None, unique_keys: Sequence[str] = ()) -> WriteResult:
        """``unique_keys``: a merge into a table that did not exist, whose rows must hold each key once."""
        from deltalake import Schema
        from deltalake.exceptions import DeltaError
        from deltalake.transaction import create_table_with_add_actions

        done = self._already_applied(table, txn)
        if done:
            return done
        table_path = self.path(table)
        Path(table_path).mkdir(parents=True, exist_ok=True)
        if not self.exists(table):
            schema = nullable_schema(df.schema)
            adds, rows = self._stage_files(df.select(*[F.col(f"`{c}`") for c in df.columns]), table, unique_keys)
            try:
                create_table_with_add_actions(table_path, Schema.from_arrow(arrow_schema_of(schema)), adds,
                                              mode="error",
                                              commit_properties=self._commit_properties(txn, "CREATE", metadata))
                return WriteResult(table, 0, rows_written=rows)
            except DeltaError as exc:
                if "already exists" not in str(exc) or not self.exists(table):
                    raise
                for add in adds:  # another writer created the table first: write to it (once: it now exists)
                    Path(table_path, add.path).unlink(missing_ok=True)
                log.info("%s: created by another writer meanwhile; writing to it", table)
                done = self._already_applied(table, txn)
                if done:
                    return done
        dt = self._open(table)
        current = StructType.fromJson(json.loads(dt.schema().to_json()))
        if mode == "overwrite":
            aligned, schema = df, nullable_schema(df.schema)
        else:
            aligned, new_columns = align_to(df, current, table, evolve_schema)
            schema = nullable_schema(aligned.schema)
            if new_columns:
                self._add_columns(dt, aligned.schema, new_columns)
                dt = self._open(table)
        adds, rows = self._stage_files(aligned, table, unique_keys)
        self._commit(table, adds, lambda: dt.create_write_transaction(
            adds, mode=mode, schema=arrow_schema_of(schema),
            commit_properties=self._commit_properties(txn, mode.upper(), metadata)))
        return WriteResult(table, self._open(table).version(), rows_written=rows)

    def append_rows(self, table: str, rows: Sequence[tuple], schema: StructType, txn: Txn | None = None,
                    evolve_schema: bool = False, metadata: dict[str, str] | None = None) -> WriteResult:
        """Appends rows held by the driver (run records, log lines): written with pyarrow and committed with
        delta-rs, no Spark job. A table whose columns differ from ``schema`` goes through :meth:`write`
        (alignment, schema evolution). No rows: the table is created if missing, else nothing is committed."""
        done = self._already_applied(table, txn)
        if done:
            return done
        exists = self.exists(table)
        if exists and not rows:  # as delta-spark: an empty append commits nothing
            return WriteResult(table, self._open(table).version())
        if exists and column_types(self.spark_schema(table)) != column_types(schema):
            return self.write(table, self.spark.createDataFrame(list(rows), schema), "append", txn, evolve_schema,
                              metadata)
        arrow_schema = arrow_schema_of(nullable_schema(schema))
        return self._commit_driver_rows(table, pa.Table.from_pylist(
            [dict(zip(schema.names, row, strict=True)) for row in rows], schema=arrow_schema), "append", txn, metadata)

    def overwrite_arrow(self, table: str, rows: pa.Table, schema: StructType) -> WriteResult:
        """Replaces the table's rows (and schema) with ``rows``, a small result the driver holds (``schema``: its
        Spark schema): written with pyarrow and committed with delta-rs, no Spark job."""
        return self._commit_driver_rows(table, rows.cast(arrow_schema_of(nullable_schema(schema))), "overwrite")

    def _commit_driver_rows(self, table: str, rows: pa.Table, mode: WriteMode, txn: Txn | None = None,
                            metadata: dict[str, str] | None = None) -> WriteResult:
        """Writes ``rows`` (already in the table's Arrow schema) as one file, none when empty, and commits it with
        ``mode``; a missing table is created with them."""
        from deltalake import Schema
        from deltalake.transaction import create_table_with_add_actions

        table_path = self.path(table)
        Path(table_path).mkdir(parents=True, exist_ok=True)
        adds = [self._arrow_file(rows, table_path)] if rows.num_rows else []
        if not self.exists(table):
            create_table_with_add_actions(table_path, Schema.from_arrow(rows.schema), adds, mode="error",
                                          commit_properties=self._commit_properties(txn, "CREATE", metadata))
            return WriteResult(table, 0, rows_written=rows.num_rows)
        dt = self._open(table)
        self._commit(table, adds, lambda: dt.create_write_transaction(
            adds, mode=mode, schema=rows.schema,
            commit_properties=self._commit_properties(txn, mode.upper(), metadata)))
        return WriteResult(table, self._open(table).version(), rows_written=rows.num_rows)

    def _arrow_file(self, rows: pa.Table, table_path: str) -> Any:
        """Writes ``rows`` as one parquet file of the table; returns its AddAction."""
        name = f"part-{uuid.uuid4().hex}-c000.snappy.parquet"
        pq.write_table(rows, f"{table_path}/{name}", compression="snappy")
        return self._add_action(table_path, name, pq.read_metadata(f"{table_path}/{name}"))

    def _add_action(self, table_path: str, name: str, meta: pq.FileMetaData) -> Any:
        """The AddAction of the data file ``name`` in the table directory, statistics from its footer."""
        from deltalake.transaction import AddAction

        stat = os.stat(f"{table_path}/{name}")
        return AddAction(name, stat.st_size, {}, int(stat.st_mtime * 1000), True,
                         json.dumps(file_stats(meta, self.private_columns)))

    def _commit(self, table: str, adds: list[Any], commit: Any) -> None:
        """Runs the commit; when another writer committed a conflicting change first (delta-rs retries
        blind appends itself), removes this write's staged files and raises ``CommitConflict``."""
        from deltalake.exceptions import CommitFailedError

        try:
            commit()
        except CommitFailedError as exc:
            for add in adds:
                Path(self.path(table), add.path).unlink(missing_ok=True)
            raise CommitConflict(f"{table}: another writer changed the same data first "
                                 f"({str(exc).splitlines()[0][:200]})") from None

    def _add_columns(self, dt: Any, schema: StructType, new_columns: list[str]) -> None:
        from deltalake import Field, Schema

        arrow = arrow_schema_of(nullable_schema(StructType([f for f in schema.fields if f.name in new_columns])))
        fields = Schema.from_arrow(arrow).fields
        dt.alter.add_columns([Field(f.name, f.type, nullable=True) for f in fields])
        log.warning("%s: schema evolved, added columns %s", dt.table_uri, new_columns)

    def merge(self, table: str, df: DataFrame, keys: list[str], txn: Txn | None = None,
              evolve_schema: bool = False, metadata: dict[str, str] | None = None) -> WriteResult:
        """Upsert on ``keys``: source rows replace target rows with the same key, others are inserted.

        Copy-on-write at file level: only the files holding a matched key are rewritten, and the
        removes and adds are committed as one transaction. Source keys must be unique: checked on the staged
        files (the source and the kept rows of the files it touches), so a source with a repeated key fails
        before anything is committed and its files are never placed. A merge that loses a commit race is
        computed again from the new version (``with_conflict_retries``).
        """
        return with_conflict_retries(table, lambda: self._merge_once(table, df, keys, txn, evolve_schema, metadata))

    def _merge_once(self, table: str, df: DataFrame, keys: list[str], txn: Txn | None, evolve_schema: bool,
                    metadata: dict[str, str] | None) -> WriteResult:
        from deltalake.transaction import RemoveAction

        done = self._already_applied(table, txn)
        if done:
            return done
        reject_missing_keys(df, keys, table)
        if not self.exists(table):
            return self._write_once(table, df, "append", txn, False, metadata, unique_keys=keys)
        dt = self._open(table)
        base_version = dt.version()
        current = StructType.fromJson(json.loads(dt.schema().to_json()))
        source, new_columns = align_to(df, current, table, evolve_schema)
        target = self.read(table, version=base_version).withColumn("_cdp_file", F.input_file_name())
        key_frame = source.select(*keys).distinct()
        touched = [r["_cdp_file"] for r in
                   target.join(key_frame, keys, "left_semi").select("_cdp_file").distinct().collect()]
        kept = (target.where(F.col("_cdp_file").isin(touched))
                .join(key_frame, keys, "left_anti").drop("_cdp_file"))
        for column in new_columns:
            kept = kept.withColumn(column, F.lit(None).cast(source.schema[column].dataType))
        rewritten = kept.unionByName(source)
        if new_columns:
            self._add_columns(dt, source.schema, new_columns)
            dt = self._open(table)
        adds, rows = self._stage_files(rewritten, table, keys)
        now = int(time.time() * 1000)
        by_uri = {uri: Path(uri.removeprefix("file://")).name for uri in dt.file_uris()}
        removes = [RemoveAction(path=by_uri[_normalise_uri(u, by_uri)], data_change=True, deletion_timestamp=now)
                   for u in touched]
        self._commit(table, adds, lambda: dt.create_write_transaction(
            [*removes, *adds], mode="append", schema=arrow_schema_of(nullable_schema(source.schema)),
            commit_properties=self._commit_properties(txn, "MERGE", {"cdp.merge_keys": ",".join(keys),
                                                                     "cdp.files_rewritten": str(len(touched)),
                                                                     **(metadata or {})})))
        return WriteResult(table, self._open(table).version(), rows_written=rows)

    def latest_metadata(self, table: str, key: str) -> str | None:
        """The value of ``key`` in the newest commit that set it (e.g. a JDBC watermark)."""
        if not self.exists(table):
            return None
        for entry in sorted(self.history(table), key=lambda h: int(h["version"]), reverse=True):
            if key in entry:
                return str(entry[key])
        return None

    def vacuum(self, table: str, retention_hours: int = 168) -> list[str]:
        dt = self._open(table)
        return list(dt.vacuum(retention_hours=retention_hours, dry_run=False,
                              enforce_retention_duration=retention_hours >= 168))

    def tables(self) -> list[str]:
        """Every table of the lake, ``layer.name``, sorted."""
        return sorted(f"{p.parent.parent.name}.{p.parent.name}" for p in Path(self.lake_root).glob("*/*/_delta_log"))

    def purge_history(self, table: str) -> int:
        """Checkpoints the current version and deletes the older commit files and checkpoints (an erasure:
        no earlier version stays readable); returns how many log files were deleted."""
        dt = self._open(table)
        current = dt.version()
        dt.create_checkpoint()
        removed = 0
        for entry in Path(self.path(table), "_delta_log").iterdir():
            stem = entry.name.split(".", 1)[0]
            if stem.isdigit() and int(stem) < current and (entry.suffix == ".json" or ".checkpoint" in entry.name):
                entry.unlink()
                removed += 1
        return removed


def _normalise_uri(uri: str, known: dict[str, str]) -> str:
    """Spark's ``input_file_name`` says ``file:/x`` where delta-rs says ``/x`` or ``file:///x``."""
    if uri in known:
        return uri
    bare = uri.removeprefix("file:").lstrip("/")
    for candidate in known:
        if candidate.removeprefix("file:").lstrip("/") == bare:
            return candidate
    raise TableError(f"file {uri} read by Spark is not in the snapshot")
