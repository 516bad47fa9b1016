"""Validate gold tables and publish the versions that pass (write-audit-publish, DESIGN §6).

For each suite: the table's current version is validated; the outcomes go to ``quality.results``
(keyed by table and version, counts only); a passing version is appended to ``meta.published``, which
is what warehouse sync reads. A failing version stays in the table's history but is never published;
the stage then fails so the run exits non-zero.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from cdp_spark.config import CdpConfig
from cdp_spark.io.delta import TableStore, Txn
from cdp_spark.pipelines.common import RunContext, StageError, make_context, record_manifest
from cdp_spark.quality.gate import load_suites, validate

log = logging.getLogger("cdp.validate")

RESULTS = "quality.results"
PUBLISHED = "meta.published"
RESULT_SCHEMA = T.StructType([
    T.StructField("run_id", T.StringType()), T.StructField("table_name", T.StringType()),
    T.StructField("table_version", T.LongType()), T.StructField("expectation", T.StringType()),
    T.StructField("kwargs", T.StringType()), T.StructField("success", T.BooleanType()),
    T.StructField("element_count", T.LongType()), T.StructField("unexpected_count", T.LongType()),
    T.StructField("observed_value", T.DoubleType()), T.StructField("validated_at", T.TimestampType()),
])
PUBLISHED_SCHEMA = T.StructType([
    T.StructField("table_name", T.StringType()), T.StructField("table_version", T.LongType()),
    T.StructField("run_id", T.StringType()), T.StructField("published_at", T.TimestampType()),
])


def published_version(store: TableStore, table: str) -> int | None:
    """The newest published version of ``table``, or None."""
    if not store.exists(PUBLISHED):
        return None
    rows = store.read(PUBLISHED).where(F.col("table_name") == table).agg(F.max("table_version")).collect()
    value = rows[0][0] if rows else None
    return int(value) if value is not None else None


def run(spark: SparkSession, cfg: CdpConfig, ctx: RunContext | None = None) -> dict[str, bool]:
    ctx = ctx or make_context(spark, cfg)
    if not cfg.quality.enabled:
        log.warning("quality.enabled is false: nothing is validated or published")
        return {}
    suites = load_suites(cfg.resolve(cfg.quality.suites_dir))
    verdicts: dict[str, bool] = {}
    now = datetime.now(UTC).replace(tzinfo=None)
    for table, suite in suites.items():
        if not ctx.store.exists(table):
            raise StageError(f"suite {suite.path} names {table}, which does not exist")
        df = ctx.read(table)
        version = int(ctx.inputs[table] or 0)
        outcomes = validate(df, suite)
        passed = all(o.success for o in outcomes)
        verdicts[table] = passed
        token = Txn(f"validate/{table}", version + 1)
        rows = [(ctx.run_id, table, version, o.expectation, o.kwargs, o.success, o.element_count,
                 o.unexpected_count, o.observed_value, now) for o in outcomes]
        ctx.wrote(RESULTS, ctx.store.write(RESULTS, spark.createDataFrame(rows, RESULT_SCHEMA), txn=token).version)
        if passed:
            published = spark.createDataFrame([(table, version, ctx.run_id, now)], PUBLISHED_SCHEMA)
            ctx.wrote(PUBLISHED, ctx.store.write(PUBLISHED, published, txn=token).version)
            log.info("%s version %d passed %d expectations: published", table, version, len(outcomes))
        else:
            failed = [f"{o.expectation} {o.kwargs} (unexpected {o.unexpected_count})" for o in outcomes
                      if not o.success]
            log.error("%s version %d NOT published; failed: %s", table, version, "; ".join(failed))
    ctx.counts["validate"] = verdicts
    blocked = sorted(t for t, ok in verdicts.items() if not ok)
    record_manifest(spark, ctx, "validate", "failed" if blocked else "succeeded",
                    f"not published: {blocked}" if blocked else "")
    if blocked:
        raise StageError(f"quality gate blocked publishing of {blocked}; see {RESULTS}")
    return verdicts
