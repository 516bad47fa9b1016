"""The spark engine: delta-spark's public APIs, the table version and application versions from the Delta log
(docs/design.md §2)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import LongType, StringType, StructField, StructType

from cdp_spark.io.hadoop import glob_paths, list_files, read_text
from cdp_spark.io.tables.deltalog import commit_transactions, log_version, newest_checkpoint_and_later_commits
from cdp_spark.io.tables.protocol import (
    CommitConflict,
    TableError,
    TableNotFound,
    Txn,
    WriteMode,
    WriteResult,
    check_new_columns,
    nullable_schema,
    reject_duplicate_keys,
    split_name,
    with_conflict_retries,
)
from cdp_spark.io.tables.stats import stats_columns

log = logging.getLogger(__name__)


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
        (self.spark.createDataFrame([], nullable_schema(schema)).write.format("delta")
         .options(**self._stats_option(schema)).save(self.path(table)))
        return WriteResult(table, 0)

    def write(self, table: str, df: DataFrame, mode: WriteMode = "append", txn: Txn | None = None,
              evolve_schema: bool = False, metadata: dict[str, str] | None = None) -> WriteResult:
        return with_conflict_retries(table, lambda: _as_conflict(table, lambda: self._write_once(
            table, df, mode, txn, evolve_schema, metadata)))

    def _write_once(self, table: str, df: DataFrame, mode: WriteMode, txn: Txn | None, evolve_schema: bool,
                    metadata: dict[str, str] | None) -> WriteResult:
        before = self.version(table)
        if before is not None and mode == "append":
            check_new_columns(df, self.read(table).schema, table, evolve_schema)
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

    def overwrite_arrow(self, table: str, rows: pa.Table, schema: StructType) -> WriteResult:
        """Replaces the table's rows (and schema) with ``rows``, a small result the driver holds (``schema``: its
        Spark schema), through a Spark write."""
        result = self.write(table, self.spark.createDataFrame(rows, schema), "overwrite")
        return replace(result, rows_written=rows.num_rows)

    def merge(self, table: str, df: DataFrame, keys: list[str], txn: Txn | None = None,
              evolve_schema: bool = False, metadata: dict[str, str] | None = None) -> WriteResult:
        """Delta MERGE on ``keys``; one that loses a commit race runs again (``with_conflict_retries``)."""
        reject_duplicate_keys(df, keys, table)
        if not self.exists(table):
            return self.write(table, df, "append", txn, metadata=metadata)
        return with_conflict_retries(table, lambda: _as_conflict(table, lambda: self._merge_once(
            table, df, keys, txn, evolve_schema, metadata)))

    def _merge_once(self, table: str, df: DataFrame, keys: list[str], txn: Txn | None, evolve_schema: bool,
                    metadata: dict[str, str] | None) -> WriteResult:
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


CONFLICT_EXCEPTIONS = ("ConcurrentAppendException", "ConcurrentDeleteDeleteException", "ConcurrentDeleteReadException",
                       "ConcurrentTransactionException", "ConcurrentWriteException",
                       "DeltaConcurrentModificationException", "MetadataChangedException", "ProtocolChangedException")
"""delta-spark's errors for a commit that lost to another writer's conflicting commit"""


def _as_conflict(table: str, write: Callable[[], WriteResult]) -> WriteResult:
    """``write()``, with delta-spark's concurrent-modification errors (another writer committed a conflicting
    change first; Delta committed nothing of this write) raised as :class:`CommitConflict`."""
    try:
        import delta.exceptions as delta_errors
    except ImportError:  # a runtime whose Delta has no Python package: its errors pass through unchanged
        return write()
    # not one base class: ConcurrentAppendException and its siblings derive from PySparkException directly
    conflicts = tuple(getattr(delta_errors, name) for name in CONFLICT_EXCEPTIONS if hasattr(delta_errors, name))
    try:
        return write()
    except conflicts as exc:
        raise CommitConflict(f"{table}: another writer changed the same data first "
                             f"({str(exc).strip().splitlines()[0][:200]})") from None
