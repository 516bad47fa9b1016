"""Sync published gold table versions to the JDBC warehouse (DESIGN §1, §6).

Only a version published by the quality gate is synced. Per table: the rows go to a staging table, then
one transaction drops the live table, renames the staging table in its place and adds the primary key,
so readers see the old or the new table, never half of one, and a failed sync leaves the old one. The
synced version is recorded in ``meta.sync_log``; a version already synced is skipped.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from cdp_spark.config import CdpConfig
from cdp_spark.io import jdbc
from cdp_spark.io.delta import Txn, split_name
from cdp_spark.pipelines.common import RunContext, StageError, make_context, record_manifest
from cdp_spark.pipelines.validate import published_version
from cdp_spark.sync.warehouse import quoted, swap_statements, warehouse_frame

log = logging.getLogger("cdp.sync")

SYNC_LOG = "meta.sync_log"
SYNC_SCHEMA = T.StructType([
    T.StructField("run_id", T.StringType()), T.StructField("table_name", T.StringType()),
    T.StructField("table_version", T.LongType()), T.StructField("target", T.StringType()),
    T.StructField("target_table", T.StringType()), T.StructField("rows", T.LongType()),
    T.StructField("synced_at", T.TimestampType()),
])


def already_synced(ctx: RunContext, table: str, version: int, target: str) -> bool:
    if not ctx.store.exists(SYNC_LOG):
        return False
    log_df = ctx.store.read(SYNC_LOG)
    return log_df.where((F.col("table_name") == table) & (F.col("table_version") == version)
                        & (F.col("target") == target)).limit(1).count() > 0


def allowed_columns(df: DataFrame, table: str, allowed: list[str] | None) -> DataFrame:
    """Only the allow-listed columns (``warehouse.columns``) leave for the warehouse; all when none is set."""
    if allowed is None:
        return df
    unknown = [c for c in allowed if c not in df.columns]
    if unknown:
        raise StageError(f"warehouse.columns for {table} names {unknown}, which {table} does not have "
                         f"(columns: {df.columns})")
    return df.select(*[F.col(f"`{c}`") for c in allowed])


def run(spark: SparkSession, cfg: CdpConfig, ctx: RunContext | None = None) -> dict[str, int]:
    ctx = ctx or make_context(spark, cfg)
    settings = cfg.warehouse
    if not settings.enabled:
        log.info("warehouse sync disabled (warehouse.enabled: false)")
        return {}
    target = jdbc.target_from_env(settings.url, settings.driver, settings.user_env, settings.password_env)
    jdbc.execute_in_transaction(spark, target, [f"CREATE SCHEMA IF NOT EXISTS {quoted(settings.schema_name)}"])
    synced: dict[str, int] = {}
    for table in settings.tables:
        version = published_version(ctx.store, table)
        if version is None:
            log.warning("%s has no published version; not synced", table)
            continue
        if already_synced(ctx, table, version, settings.url):
            log.info("%s version %d already in the warehouse", table, version)
            continue
        _, name = split_name(table)
        staging = f"{name}__staging_{ctx.run_id}"
        frame = warehouse_frame(allowed_columns(ctx.store.read(table, version=version), table,
                                                settings.columns.get(table))).persist()
        rows = frame.count()
        jdbc.write(spark, frame, target, f"{quoted(settings.schema_name)}.{quoted(staging)}", settings.batch_size)
        frame.unpersist()
        keys = settings.keys.get(table, [])
        jdbc.execute_in_transaction(spark, target, swap_statements(settings.schema_name, name, staging, keys))
        entry = spark.createDataFrame([(ctx.run_id, table, version, settings.url, f"{settings.schema_name}.{name}",
                                        rows, datetime.now(UTC).replace(tzinfo=None))], SYNC_SCHEMA)
        ctx.wrote(SYNC_LOG, ctx.store.write(SYNC_LOG, entry, txn=Txn(f"sync/{table}/{settings.url}",
                                                                     version + 1)).version)
        synced[table] = rows
        log.info("synced %s version %d: %d rows into %s.%s", table, version, rows, settings.schema_name, name)
    ctx.counts["sync"] = synced
    record_manifest(spark, ctx, "sync", "succeeded")
    return synced
