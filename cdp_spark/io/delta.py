"""The table layer: the only code that reads or writes lake tables (docs/design.md §2).

One interface, :class:`TableStore`, two engines:

* :class:`SparkDeltaStore` (delta-spark) where ``io.delta.tables.DeltaTable`` loads in the JVM.
* :class:`RsDeltaStore` (delta-rs): Spark writes parquet files into the table directory and the driver
  commits them atomically with delta-rs, with ``AddAction`` statistics from the parquet footers.
  Reads give Spark the snapshot's file list and the schema from the Delta log.

Tables are named ``layer.table`` (``bronze.contacts``) and live at ``<lake_root>/<layer>/<table>``.
Every write can carry an idempotency token ``Txn(app_id, version)``: a write whose token the table has
already seen is skipped, so a retried job never writes twice.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import LongType, StringType, StructField, StructType

from cdp_spark.io.hadoop import glob_paths, list_files, read_text

log = logging.getLogger(__name__)

WriteMode = Literal["append", "overwrite"]
# Reader features this engine cannot honour when it hands Spark a plain file list.
UNSUPPORTED_READER_FEATURES = {"deletionVectors", "columnMapping", "v2Checkpoint"}
MULTI_PART_CHECKPOINT = re.compile(r"\.checkpoint\.\d{10}\.\d{10}\.parquet$")


class TableError(RuntimeError):
    """A table operation failed; the message names the table."""


class TableNotFound(TableError):
    pass


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


def _columns(schema: StructType) -> list[tuple[str, Any]]:
    """Names and types, nullability aside."""
    return [(f.name, f.dataType) for f in schema.fields]


def _nullable(schema: StructType) -> StructType:
    return StructType([StructField(f.name, f.dataType, True, f.metadata) for f in schema.fields])


def _new_columns(df: DataFrame, target: StructType, table: str, evolve_schema: bool) -> list[str]:
    """``df``'s columns that the table does not have; an error unless ``evolve_schema`` (both engines)."""
    target_names = [f.name for f in target.fields]
    new_columns = [c for c in df.columns if c not in target_names]
    if new_columns and not evolve_schema:
        raise TableError(f"{table}: columns {new_columns} are not in the table schema "
                         "(write with evolve_schema=True to add them)")
    return new_columns


def _reject_duplicate_keys(df: DataFrame, keys: list[str], table: str) -> None:
    """A merge source must hold each key once (both engines give the same error)."""
    missing = [k for k in keys if k not in df.columns]
    if missing:
        raise TableError(f"{table}: merge keys {missing} are not columns of the source")
    dups = df.groupBy(*keys).count().where("count > 1").limit(1).collect()
    if dups:
        raise TableError(f"{table}: merge source has duplicate keys {keys}, e.g. "
                         f"{[dups[0][k] for k in keys]}; deduplicate before merging")


def _align(df: DataFrame, target: StructType, table: str, evolve_schema: bool) -> tuple[DataFrame, list[str]]:
    """Orders ``df``'s columns as the table's, fills missing ones with nulls; returns new column names.
    A new column is only accepted with ``evolve_schema``."""
    new_columns = _new_columns(df, target, table, evolve_schema)
    incoming = {f.name: f.dataType for f in df.schema.fields}
    cols = []
    for field in target.fields:
        if field.name in incoming:
            cols.append(F.col(f"`{field.name}`").cast(field.dataType).alias(field.name))
        else:
            cols.append(F.lit(None).cast(field.dataType).alias(field.name))
    cols += [F.col(f"`{c}`") for c in new_columns]
    return df.select(*cols), new_columns


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
    def _stage_files(self, df: DataFrame, table_path: str) -> tuple[list[Any], int]:
        """Writes ``df`` as parquet into the table directory; returns AddActions and the row count."""
        staging = f"{table_path}/.staging-{uuid.uuid4().hex}"
        adds, rows = [], 0
        try:
            df.write.mode("overwrite").option("compression", "snappy").parquet(staging)
            for part in sorted(Path(staging).glob("part-*.parquet")):
                meta = pq.read_metadata(part)
                if meta.num_rows == 0:
                    continue
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
        create_table_with_add_actions(self.path(table), Schema.from_arrow(_arrow_schema(schema)), [],
                                      mode="error", commit_properties=self._commit_properties(None, "CREATE"))
        return WriteResult(table, 0)

    def write(self, table: str, df: DataFrame, mode: WriteMode = "append", txn: Txn | None = None,
              evolve_schema: bool = False, metadata: dict[str, str] | None = None) -> WriteResult:
        from deltalake import Schema
        from deltalake.transaction import create_table_with_add_actions

        done = self._already_applied(table, txn)
        if done:
            return done
        table_path = self.path(table)
        Path(table_path).mkdir(parents=True, exist_ok=True)
        if not self.exists(table):
            schema = _nullable(df.schema)
            adds, rows = self._stage_files(df.select(*[F.col(f"`{c}`") for c in df.columns]), table_path)
            create_table_with_add_actions(table_path, Schema.from_arrow(_arrow_schema(schema)), adds,
                                          mode="error",
                                          commit_properties=self._commit_properties(txn, "CREATE", metadata))
            return WriteResult(table, 0, rows_written=rows)
        dt = self._open(table)
        current = StructType.fromJson(json.loads(dt.schema().to_json()))
        if mode == "overwrite":
            aligned, schema = df, _nullable(df.schema)
        else:
            aligned, new_columns = _align(df, current, table, evolve_schema)
            schema = _nullable(aligned.schema)
            if new_columns:
                self._add_columns(dt, aligned.schema, new_columns)
                dt = self._open(table)
        adds, rows = self._stage_files(aligned, table_path)
        self._commit(table, adds, lambda: dt.create_write_transaction(
            adds, mode=mode, schema=_arrow_schema(schema),
            commit_properties=self._commit_properties(txn, mode.upper(), metadata)))
        return WriteResult(table, self._open(table).version(), rows_written=rows)

    def append_rows(self, table: str, rows: Sequence[tuple], schema: StructType, txn: Txn | None = None,
                    evolve_schema: bool = False, metadata: dict[str, str] | None = None) -> WriteResult:
        """Appends rows held by the driver (run records, log lines): written with pyarrow and committed with
        delta-rs, no Spark job. A table whose columns differ from ``schema`` goes through :meth:`write`
        (alignment, schema evolution). No rows: the table is created if missing, else nothing is committed."""
        from deltalake import Schema
        from deltalake.transaction import create_table_with_add_actions

        done = self._already_applied(table, txn)
        if done:
            return done
        exists = self.exists(table)
        if exists and not rows:  # as delta-spark: an empty append commits nothing
            return WriteResult(table, self._open(table).version())
        if exists and _columns(self.spark_schema(table)) != _columns(schema):
            return self.write(table, self.spark.createDataFrame(list(rows), schema), "append", txn, evolve_schema,
                              metadata)
        table_path = self.path(table)
        Path(table_path).mkdir(parents=True, exist_ok=True)
        arrow_schema = _arrow_schema(_nullable(schema))
        adds = [self._arrow_file(pa.Table.from_pylist([dict(zip(schema.names, row, strict=True)) for row in rows],
                                                      schema=arrow_schema), table_path)] if rows else []
        if not exists:
            create_table_with_add_actions(table_path, Schema.from_arrow(arrow_schema), adds, mode="error",
                                          commit_properties=self._commit_properties(txn, "CREATE", metadata))
            return WriteResult(table, 0, rows_written=len(rows))
        dt = self._open(table)
        self._commit(table, adds, lambda: dt.create_write_transaction(
            adds, mode="append", schema=arrow_schema,
            commit_properties=self._commit_properties(txn, "APPEND", metadata)))
        return WriteResult(table, self._open(table).version(), rows_written=len(rows))

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
                         json.dumps(_file_stats(meta, self.private_columns)))

    def _commit(self, table: str, adds: list[Any], commit: Any) -> None:
        """Runs the commit; when another writer committed a conflicting change first (delta-rs retries
        blind appends itself), removes this write's staged files and raises a clear ``TableError``."""
        from deltalake.exceptions import CommitFailedError

        try:
            commit()
        except CommitFailedError as exc:
            for add in adds:
                Path(self.path(table), add.path).unlink(missing_ok=True)
            raise TableError(f"{table}: another writer changed the same data first "
                             f"({str(exc).splitlines()[0][:200]}); nothing of this write was committed: "
                             "run the job again") from None

    def _add_columns(self, dt: Any, schema: StructType, new_columns: list[str]) -> None:
        from deltalake import Field, Schema

        arrow = _arrow_schema(_nullable(StructType([f for f in schema.fields if f.name in new_columns])))
        fields = Schema.from_arrow(arrow).fields
        dt.alter.add_columns([Field(f.name, f.type, nullable=True) for f in fields])
        log.warning("%s: schema evolved, added columns %s", dt.table_uri, new_columns)

    def merge(self, table: str, df: DataFrame, keys: list[str], txn: Txn | None = None,
              evolve_schema: bool = False, metadata: dict[str, str] | None = None) -> WriteResult:
        """Upsert on ``keys``: source rows replace target rows with the same key, others are inserted.

        Copy-on-write at file level: only the files holding a matched key are rewritten, and the
        removes and adds are committed as one transaction. Source keys must be unique.
        """
        from deltalake.transaction import RemoveAction

        done = self._already_applied(table, txn)
        if done:
            return done
        _reject_duplicate_keys(df, keys, table)
        if not self.exists(table):
            return self.write(table, df, "append", txn, metadata=metadata)
        dt = self._open(table)
        base_version = dt.version()
        current = StructType.fromJson(json.loads(dt.schema().to_json()))
        source, new_columns = _align(df, current, table, evolve_schema)
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
        adds, rows = self._stage_files(rewritten, self.path(table))
        now = int(time.time() * 1000)
        by_uri = {uri: Path(uri.removeprefix("file://")).name for uri in dt.file_uris()}
        removes = [RemoveAction(path=by_uri[_normalise_uri(u, by_uri)], data_change=True, deletion_timestamp=now)
                   for u in touched]
        self._commit(table, adds, lambda: dt.create_write_transaction(
            [*removes, *adds], mode="append", schema=_arrow_schema(_nullable(source.schema)),
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


class SparkDeltaStore:
    """Delta tables through delta-spark (Databricks, EMR with Delta, clusters with the Delta jars)."""

    engine = "spark"

    def __init__(self, spark: SparkSession, lake_root: str, private_columns: Sequence[str] = ()) -> None:
        self.spark = spark
        self.lake_root = lake_root.rstrip("/")
        self.private_columns = frozenset(private_columns)
        from delta.tables import DeltaTable

        self._delta = DeltaTable
        self._file_transactions: dict[str, dict[str, int]] = {}  # log file -> its txn actions (files never change)

    def path(self, table: str) -> str:
        layer, name = split_name(table)
        return f"{self.lake_root}/{layer}/{name}"

    def exists(self, table: str) -> bool:
        return self.version(table) is not None

    def _log_files(self, table: str) -> list[str]:
        return [path for path, _ in list_files(self.spark, f"{self.path(table)}/_delta_log", missing_ok=True)]

    def _table(self, table: str):
        if not self.exists(table):
            raise TableNotFound(f"table {table} does not exist at {self.path(table)}")
        return self._delta.forPath(self.spark, self.path(table))

    def version(self, table: str) -> int | None:
        """The newest version: the highest commit or checkpoint number in the table's log folder (the Delta
        protocol's file names; one listing, no Spark job). None when there is no table."""
        return log_version(self._log_files(table))

    def history(self, table: str) -> list[dict[str, Any]]:
        return [r.asDict(recursive=True) for r in self._table(table).history().collect()]

    def txn_version(self, table: str, app_id: str) -> int | None:
        """The newest ``txnVersion`` committed for ``app_id``, from the transaction log itself (the Delta
        protocol's ``txn`` actions; no delta-spark internals, which Databricks ships under other names).

        The newest checkpoint holds every application's version as of its commit, and the commits after
        it hold the later ones (versions only grow), so those files give the snapshot's value whatever
        log clean-up removed before the checkpoint. Each log file is read once (log files never change):
        commits as text on the driver, a checkpoint's parquet parts with Spark."""
        files = self._log_files(table)
        if log_version(files) is None:
            return None
        checkpoint, commits = newest_checkpoint_and_later_commits(files)
        seen = dict(self._checkpoint_transactions(checkpoint)) if checkpoint else {}
        for commit in commits:
            if commit not in self._file_transactions:
                self._file_transactions[commit] = commit_transactions(read_text(self.spark, commit))
            for app, version in self._file_transactions[commit].items():
                seen[app] = max(version, seen.get(app, version))
        return seen.get(app_id)

    def _checkpoint_transactions(self, parts: list[str]) -> dict[str, int]:
        """``appId -> version`` of the ``txn`` actions of one checkpoint (its parts)."""
        key = "\n".join(parts)
        if key not in self._file_transactions:
            txn = StructType([StructField("txn", StructType([StructField("appId", StringType()),
                                                             StructField("version", LongType())]))])
            reader = self.spark.read.schema(txn)
            actions = reader.json(parts) if parts[0].endswith(".json") else reader.parquet(*parts)
            latest = (actions.select("txn.appId", "txn.version").where(F.col("appId").isNotNull())
                      .groupBy("appId").agg(F.max("version").alias("version")))
            self._file_transactions[key] = {r["appId"]: int(r["version"]) for r in latest.collect()}
        return self._file_transactions[key]

    def read(self, table: str, version: int | None = None, timestamp: datetime | None = None) -> DataFrame:
        if not self.exists(table):
            raise TableNotFound(f"table {table} does not exist at {self.path(table)}")
        reader = self.spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", version)
        if timestamp is not None:
            reader = reader.option("timestampAsOf", timestamp.isoformat())
        return reader.load(self.path(table))

    def row_count(self, table: str, version: int | None = None) -> int:
        """Rows of the version (delta-spark answers a plain count from the log's statistics)."""
        return self.read(table, version).count()

    def added_since(self, table: str, version: int) -> DataFrame | None:
        """The rows of the files added after ``version``, when every commit since then was a blind append
        (so no added file carries a deletion vector); None otherwise, or when ``version`` is gone."""
        since = [h for h in self.history(table) if int(h["version"]) > version]
        appends_only = all(h["operation"] == "WRITE" and (h.get("operationParameters") or {}).get("mode") == "Append"
                           for h in since)
        if not appends_only or (since and min(int(h["version"]) for h in since) != version + 1):
            return None
        try:
            before = set(self.read(table, version=version).inputFiles())
        except Exception as exc:
            log.info("%s: version %d cannot be loaded (%s); reading the whole table", table, version, exc)
            return None
        current = self.read(table)
        added = [f for f in current.inputFiles() if f not in before]
        if not added:
            return self.spark.createDataFrame([], current.schema)
        return self.spark.read.schema(current.schema).parquet(*added)

    def _stats_option(self, schema: StructType) -> dict[str, str]:
        """The table property that limits delta-spark's file statistics as the rs engine does."""
        columns = stats_columns(schema, self.private_columns)
        if not columns:
            return {"delta.dataSkippingNumIndexedCols": "0"}
        return {"delta.dataSkippingStatsColumns": ",".join(f"`{c}`" for c in columns)}

    def create(self, table: str, schema: StructType) -> WriteResult:
        if self.exists(table):
            raise TableError(f"table {table} already exists")
        (self.spark.createDataFrame([], _nullable(schema)).write.format("delta")
         .options(**self._stats_option(schema)).save(self.path(table)))
        return WriteResult(table, 0)

    def write(self, table: str, df: DataFrame, mode: WriteMode = "append", txn: Txn | None = None,
              evolve_schema: bool = False, metadata: dict[str, str] | None = None) -> WriteResult:
        before = self.version(table)
        if before is not None and mode == "append":
            _new_columns(df, self.read(table).schema, table, evolve_schema)
        writer = df.write.format("delta").mode(mode)
        if before is None:
            writer = writer.options(**self._stats_option(df.schema))
        if metadata:
            writer = writer.option("userMetadata", json.dumps(metadata, sort_keys=True))
        if txn:
            writer = writer.option("txnAppId", txn.app_id).option("txnVersion", txn.version)
        if mode == "overwrite":
            writer = writer.option("overwriteSchema", "true")
        elif evolve_schema:
            writer = writer.option("mergeSchema", "true")
        writer.save(self.path(table))
        after = self.version(table)
        return WriteResult(table, int(after or 0), skipped=before is not None and before == after)

    def append_rows(self, table: str, rows: Sequence[tuple], schema: StructType, txn: Txn | None = None,
                    evolve_schema: bool = False, metadata: dict[str, str] | None = None) -> WriteResult:
        """Appends rows held by the driver (delta-spark commits only what a Spark write produced; no rows:
        the table is created if missing, else nothing is committed)."""
        result = self.write(table, self.spark.createDataFrame(list(rows), schema), "append", txn, evolve_schema,
                            metadata)
        return result if result.skipped else replace(result, rows_written=len(rows))

    def merge(self, table: str, df: DataFrame, keys: list[str], txn: Txn | None = None,
              evolve_schema: bool = False, metadata: dict[str, str] | None = None) -> WriteResult:
        _reject_duplicate_keys(df, keys, table)
        if not self.exists(table):
            return self.write(table, df, "append", txn, metadata=metadata)
        before = self.version(table)
        conf = self.spark.conf
        if metadata:
            conf.set("spark.databricks.delta.commitInfo.userMetadata", json.dumps(metadata, sort_keys=True))
        if txn:
            conf.set("spark.databricks.delta.write.txnAppId", txn.app_id)
            conf.set("spark.databricks.delta.write.txnVersion", str(txn.version))
        if evolve_schema:
            conf.set("spark.databricks.delta.schema.autoMerge.enabled", "true")
        try:
            condition = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in keys)
            (self._table(table).alias("t").merge(df.alias("s"), condition)
             .whenMatchedUpdateAll().whenNotMatchedInsertAll().execute())
        finally:
            for key in ("spark.databricks.delta.write.txnAppId", "spark.databricks.delta.write.txnVersion",
                        "spark.databricks.delta.schema.autoMerge.enabled",
                        "spark.databricks.delta.commitInfo.userMetadata"):
                conf.unset(key)
        after = self.version(table)
        return WriteResult(table, int(after or 0), skipped=before == after)

    def latest_metadata(self, table: str, key: str) -> str | None:
        if not self.exists(table):
            return None
        for entry in sorted(self.history(table), key=lambda h: int(h["version"]), reverse=True):
            user = entry.get("userMetadata")
            if user:
                found = json.loads(user).get(key)
                if found is not None:
                    return str(found)
        return None

    def vacuum(self, table: str, retention_hours: int = 168) -> list[str]:
        """Deletes files no version within ``retention_hours`` needs; under 168 hours Delta's retention
        check is lifted for this call only (an erasure's zero-retention purge)."""
        check = "spark.databricks.delta.retentionDurationCheck.enabled"
        self.spark.conf.set(check, str(retention_hours >= 168).lower())
        try:
            self._table(table).vacuum(retention_hours)
        finally:
            self.spark.conf.unset(check)
        return []

    def tables(self) -> list[str]:
        """Every table of the lake, ``layer.name``, sorted (listed through the lake's Hadoop filesystem)."""
        logs = glob_paths(self.spark, f"{self.lake_root}/*/*/_delta_log")
        return sorted(".".join(log_dir.rstrip("/").split("/")[-3:-1]) for log_dir in logs)

    def purge_history(self, table: str) -> int:
        """Nothing to delete in the log: this engine's commits never hold a personal value (statistics only
        for number and date columns, see :func:`stats_columns`), and :meth:`vacuum` with zero retention
        deletes the data files of earlier versions. Returns 0 log files deleted."""
        self._table(table)
        return 0


def log_version(log_files: Sequence[str]) -> int | None:
    """The newest table version named by a Delta log folder's files (``<version>.json`` commits and
    ``<version>.checkpoint...`` files; the newest commit is never cleaned up), None without any."""
    versions = [int(name.split(".", 1)[0]) for name in (f.rsplit("/", 1)[-1] for f in log_files)
                if name.split(".", 1)[0].isdigit() and (name.endswith(".json") or ".checkpoint." in name)]
    return max(versions, default=None)


def commit_transactions(commit: str) -> dict[str, int]:
    """``appId -> version`` of the ``txn`` actions in one commit file's text (one JSON action per line)."""
    found: dict[str, int] = {}
    for line in commit.splitlines():
        if '"txn"' in line:
            txn = json.loads(line).get("txn")
            if txn:
                found[txn["appId"]] = max(int(txn["version"]), found.get(txn["appId"], int(txn["version"])))
    return found


def newest_checkpoint_and_later_commits(log_files: Sequence[str]) -> tuple[list[str], list[str]]:
    """The Delta log files that hold a snapshot's ``txn`` actions: the newest checkpoint's files (one
    classic or v2 checkpoint, or the parts of a multi-part one; empty before the first checkpoint) and
    the commit files after it, in version order (Delta protocol, "Checkpoints" and "Delta Log Entries")."""
    checkpoints: dict[int, list[str]] = {}
    commits: list[tuple[int, str]] = []
    for file in log_files:
        name = file.rsplit("/", 1)[-1]
        prefix, _, rest = name.partition(".")
        if not prefix.isdigit():
            continue
        if rest == "json":
            commits.append((int(prefix), file))
        elif rest.startswith("checkpoint.") and rest.endswith((".parquet", ".json")):
            checkpoints.setdefault(int(prefix), []).append(file)
    newest = max(checkpoints, default=-1)
    files = sorted(checkpoints.get(newest, []))
    if len(files) > 1 and not all(MULTI_PART_CHECKPOINT.search(f) for f in files):
        files = files[:1]  # a classic and a v2 (uuid-named) checkpoint of one version: each is complete
    return files, [f for version, f in sorted(commits) if version > newest]


def open_store(spark: SparkSession, lake_root: str, engine: str = "auto",
               private_columns: Sequence[str] = ()) -> TableStore:
    """The table store of ``engine`` (``auto``, ``spark`` or ``rs``; see :func:`choose_engine`) for the lake.
    ``private_columns`` never get min/max statistics in the transaction log (text columns never do)."""
    from cdp_spark.session import delta_spark_available

    if choose_engine(engine, delta_spark_available(spark), lake_root) == "spark":
        return SparkDeltaStore(spark, lake_root, private_columns)
    return RsDeltaStore(spark, lake_root.removeprefix("file://"), private_columns)


def choose_engine(requested: str, delta_spark_loadable: bool, lake_root: str) -> str:
    """``spark`` when asked for, or for ``auto`` when delta-spark's classes load, else ``rs`` (docs/design.md §2);
    a clear error when the choice cannot work: ``spark`` without the classes, ``rs`` on a remote lake."""
    engine = ("spark" if delta_spark_loadable else "rs") if requested == "auto" else requested
    if engine == "spark" and not delta_spark_loadable:
        raise TableError("storage.engine=spark but io.delta.tables.DeltaTable is not loadable in this "
                         "session; add the Delta jars (spark.jars) or use storage.engine=rs")
    if engine == "rs" and "://" in lake_root and not lake_root.startswith("file://"):
        raise TableError(f"the rs engine writes through the local filesystem; lake_root {lake_root} needs "
                         "the delta-spark engine (storage.engine=spark)")
    if engine not in ("spark", "rs"):
        raise TableError(f"storage.engine={requested}: expected auto, spark or rs")
    return engine


# ---- helpers --------------------------------------------------------------------------------------
def _arrow_schema(schema: StructType) -> pa.Schema:
    from pyspark.sql.pandas.types import to_arrow_schema

    if "timezone" in inspect.signature(to_arrow_schema).parameters:  # pyspark 4.1+
        return to_arrow_schema(schema, timezone="UTC", prefers_large_types=False)
    return to_arrow_schema(schema)  # pyspark 4.0: timestamps are already UTC microseconds, types not large


def _stat_value(value: Any) -> Any:
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


def _file_stats(meta: pq.FileMetaData, private: frozenset[str] = frozenset()) -> dict[str, Any]:
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
                lo_v, hi_v = _stat_value(stats.min), _stat_value(stats.max)
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
