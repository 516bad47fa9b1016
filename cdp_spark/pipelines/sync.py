"""Sync published gold table versions to the JDBC warehouse (docs/design.md §1, §6).

Only a version published by the quality gate is synced, and only its allow-listed columns
(``warehouse.columns``). Two modes, both atomic per table (a failed sync leaves the previous state):

- **incremental** (a keyed table already synced, same columns, its synced version still readable): only the
  rows that differ between the last synced version and this one travel: changed and new rows to a staging
  table, removed keys to another, then one transaction deletes the removed keys, ``MERGE``s the changes
  (update by key, insert new keys) and drops the staging tables;
- **full** (first sync, no key, changed columns): the rows go to a staging table, then one transaction
  drops the live table, renames the staging table in its place and adds the primary key.

The synced version, mode and row counts are recorded in ``meta.sync_log``; a version already synced is
skipped.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import UTC, datetime

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from cdp_spark.catalog import SYNC_LOG, TABLES, declared_schema
from cdp_spark.config import CdpConfig, WarehouseSettings
from cdp_spark.io import jdbc
from cdp_spark.io.tables import Txn, split_name
from cdp_spark.pipelines.common import RunContext, already_delivered, make_context, record_manifest
from cdp_spark.pipelines.validate import published_version
from cdp_spark.sync.warehouse import allowed_columns, quoted, swap_statements, upsert_statements, warehouse_frame

log = logging.getLogger("cdp.sync")



def last_synced_version(ctx: RunContext, table: str, target: str) -> int | None:
    if not ctx.store.exists(SYNC_LOG):
        return None
    row = ctx.store.read(SYNC_LOG).where((F.col("table_name") == table) & (F.col("target") == target)) \
        .agg(F.max("table_version")).first()
    return None if row is None or row[0] is None else int(row[0])


def _live_exists(spark: SparkSession, target: jdbc.JdbcTarget, schema: str, name: str) -> bool:
    found = jdbc.fetch_one(spark, target, "SELECT count(*) AS n FROM information_schema.tables WHERE "
                                          f"table_schema = '{schema}' AND table_name = '{name}'")
    return int(found.get("n") or 0) > 0


def run(spark: SparkSession, cfg: CdpConfig, ctx: RunContext | None = None) -> dict[str, int]:
    ctx = ctx or make_context(spark, cfg)
    settings = cfg.warehouse
    if not settings.enabled:
        log.info("warehouse sync disabled (warehouse.enabled: false)")
        return {}
    target = jdbc.target_from_env(settings.url, settings.driver, settings.user_env, settings.password_env)
    jdbc.execute_in_transaction(spark, target, [f"CREATE SCHEMA IF NOT EXISTS {quoted(settings.schema_name)}"])
    synced: dict[str, int] = {}
    for table in ctx.chosen_tables(settings.tables):
        version = published_version(ctx.store, table)
        if version is None:
            log.warning("%s has no published version; not synced", table)
            continue
        if already_delivered(ctx, SYNC_LOG, table, version, settings.url):
            log.info("%s version %d already in the warehouse", table, version)
            continue
        _, name = split_name(table)
        keys = settings.keys.get(table) or list(TABLES[table].keys if table in TABLES else ())
        frame = warehouse_frame(allowed_columns(ctx.store.read(table, version=version), table,
                                                settings.columns.get(table)))
        previous = last_synced_version(ctx, table, settings.url)
        old = None
        incremental = settings.incremental and bool(keys) and previous is not None
        if incremental and _live_exists(spark, target, settings.schema_name, name):
            try:
                old = warehouse_frame(allowed_columns(ctx.store.read(table, version=previous), table,
                                                      settings.columns.get(table)))
            except Exception as exc:  # the old version was vacuumed: a full sync rebuilds the table
                log.info("%s version %d is not readable (%s): full sync", table, previous, type(exc).__name__)
            if old is not None and old.schema.simpleString() != frame.schema.simpleString():
                old = None
        stamp = datetime.now(UTC).replace(tzinfo=None)
        if old is None:
            rows, upserted, deleted, mode = _full(spark, target, settings, name, ctx.run_id, frame, keys)
        else:
            rows, upserted, deleted, mode = _incremental(spark, target, settings, name, ctx.run_id, frame, old, keys)
        entry = (ctx.run_id, table, version, settings.url, f"{settings.schema_name}.{name}", rows, stamp, mode,
                 upserted, deleted)
        ctx.wrote(SYNC_LOG, ctx.store.append_rows(SYNC_LOG, [entry], declared_schema(SYNC_LOG),
                                                  txn=Txn(f"sync/{table}/{settings.url}", version + 1),
                                                  evolve_schema=True).version)
        synced[table] = upserted + deleted
        log.info("synced %s version %d (%s): %d rows upserted, %d deleted, into %s.%s", table, version, mode,
                 upserted, deleted, settings.schema_name, name)
    ctx.counts["sync"] = synced
    record_manifest(spark, ctx, "sync", "succeeded")
    return synced


def _full(spark: SparkSession, target: jdbc.JdbcTarget, settings: WarehouseSettings, name: str, run_id: str,
          frame: DataFrame, keys: list[str]) -> tuple[int, int, int, str]:
    staging = f"{name}__staging_{run_id}"
    frame = frame.persist()
    rows = frame.count()
    jdbc.write(spark, frame, target, f"{quoted(settings.schema_name)}.{quoted(staging)}", settings.batch_size)
    frame.unpersist()
    jdbc.execute_in_transaction(spark, target, swap_statements(settings.schema_name, name, staging, keys))
    return rows, rows, 0, "full"


def _incremental(spark: SparkSession, target: jdbc.JdbcTarget, settings: WarehouseSettings, name: str,
                 run_id: str, frame: DataFrame, old: DataFrame, keys: list[str]) -> tuple[int, int, int, str]:
    changes = frame.subtract(old).localCheckpoint()
    removed = old.select(*keys).subtract(frame.select(*keys)).localCheckpoint()
    upserted, deleted = changes.count(), removed.count()
    schema = quoted(settings.schema_name)
    changes_table, deletes_table = f"{name}__changes_{run_id}", f"{name}__deletes_{run_id}"
    jdbc.write(spark, changes, target, f"{schema}.{quoted(changes_table)}", settings.batch_size)
    jdbc.write(spark, removed, target, f"{schema}.{quoted(deletes_table)}", settings.batch_size)
    statements = upsert_statements(settings.schema_name, name, changes_table, deletes_table, keys, frame.columns)
    try:
        jdbc.execute_in_transaction(spark, target, statements)
    except jdbc.JdbcError:
        with contextlib.suppress(jdbc.JdbcError):
            jdbc.execute_in_transaction(spark, target, [f"DROP TABLE IF EXISTS {schema}.{quoted(t)}"
                                                        for t in (changes_table, deletes_table)])
        raise
    return frame.count(), upserted, deleted, "incremental"
