"""Validate gold tables and publish the versions that pass (write-audit-publish, docs/design.md §6).

For each suite: the table's current version is validated; the outcomes go to ``quality.results``
(keyed by table and version, with each rule's action; counts only); a passing version is appended to
``meta.published``, which is what warehouse sync reads. A version failing a ``fail`` rule stays in the
table's history but is never published; the stage then fails so the run exits non-zero. ``warn`` rules
are recorded and logged. When ``quarantine`` rules fail, their rows move to
``quarantine.<layer>_<table>`` (run, table version, the rules broken, the row as JSON) and the rest is
written as a new version, which is validated again and published if it passes: rows of the version =
rows kept + rows quarantined.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from cdp_spark.catalog import PUBLISHED, QUALITY_RESULTS, declared_schema, quarantine_of_table
from cdp_spark.config import CdpConfig
from cdp_spark.io.tables import TableStore, Txn
from cdp_spark.pipelines.common import QualityGateBlocked, RunContext, make_context, record_manifest
from cdp_spark.progress import activity
from cdp_spark.quality.gate import (
    GateContext,
    Outcome,
    Suite,
    ge_context,
    load_suites,
    split,
    suites_fingerprint,
    validate,
)

log = logging.getLogger("cdp.validate")



def published_version(store: TableStore, table: str) -> int | None:
    """The newest published version of ``table``, or None."""
    if not store.exists(PUBLISHED):
        return None
    rows = store.read(PUBLISHED).where(F.col("table_name") == table).agg(F.max("table_version")).collect()
    value = rows[0][0] if rows else None
    return int(value) if value is not None else None


def _published_rows(store: TableStore, table: str) -> int | None:
    version = published_version(store, table)
    return None if version is None else store.row_count(table, version=version)


def _record(spark: SparkSession, ctx: RunContext, table: str, version: int, outcomes: list[Outcome],
            now: datetime) -> None:
    rows = [(ctx.run_id, table, version, o.expectation, o.kwargs, o.success, o.element_count, o.unexpected_count,
             o.observed_value, now, o.action) for o in outcomes]
    result = ctx.store.append_rows(QUALITY_RESULTS, rows, declared_schema(QUALITY_RESULTS),
                                   txn=Txn(f"validate/{table}", version + 1), evolve_schema=True)
    ctx.wrote(QUALITY_RESULTS, result.version)


def _quarantine(spark: SparkSession, ctx: RunContext, suite: Suite, version: int, outcomes: list[Outcome],
                now: datetime) -> tuple[int, int]:
    """Moves the rows breaking the failed quarantine rules out of the table; (new version, rows moved)."""
    table = suite.table
    failed = [item for item, outcome in zip(suite.expectations, outcomes, strict=True)
              if item.action == "quarantine" and not outcome.success]
    source = ctx.store.read(table, version=version)
    kept, broken = split(source, failed, ctx.read)
    broken = broken.localCheckpoint()
    record = F.to_json(F.struct(*[F.col(f"`{c}`") for c in source.columns]))
    moved = broken.select(F.lit(ctx.run_id).alias("run_id"), F.lit(table).alias("table_name"),
                          F.lit(version).cast("long").alias("table_version"), "reason", record.alias("record"),
                          F.lit(now).alias("quarantined_at"))
    target = quarantine_of_table(table)
    ctx.wrote(target, ctx.store.write(target, moved, txn=Txn(f"quarantine/{table}", version + 1)).version)
    result = ctx.store.write(table, kept.localCheckpoint(), mode="overwrite",
                             txn=Txn(f"quarantine-split/{table}", version + 1))
    count = broken.count()
    log.warning("%s version %d: %d rows quarantined to %s (%s); version %d keeps the rest", table, version, count,
                target, ", ".join(item.type for item in failed), result.version)
    return result.version, count


def settings_hash(ctx: RunContext) -> str:
    """The config's fingerprint, the suite files' contents and the ``--table`` selection: what a validation
    run depends on besides the tables (a run of some tables is never taken for a run of all)."""
    cfg = ctx.cfg
    chosen = ",".join(sorted(ctx.tables)) if ctx.tables is not None else "*"
    return hashlib.sha256(f"{cfg.fingerprint()}:{suites_fingerprint(cfg.resolve(cfg.quality.suites_dir))}:{chosen}"
                          .encode()).hexdigest()[:16]


def run(spark: SparkSession, cfg: CdpConfig, ctx: RunContext | None = None) -> dict[str, bool]:
    ctx = ctx or make_context(spark, cfg)
    if not cfg.quality.enabled:
        log.warning("quality.enabled is false: nothing is validated or published")
        return {}
    every_suite = load_suites(cfg.resolve(cfg.quality.suites_dir))
    suites = {table: every_suite[table] for table in ctx.chosen_tables(every_suite)}
    verdicts: dict[str, bool] = {}
    quarantined: dict[str, int] = {}
    now = datetime.now(UTC).replace(tzinfo=None)
    ge = ge_context()  # one context for every suite of the run
    for number, (table, suite) in enumerate(suites.items(), start=1):
        if not ctx.exists(table):  # e.g. a prediction switched off: nothing to validate or publish
            log.warning("suite %s: %s does not exist; nothing to validate", suite.path, table)
            continue
        df = ctx.read(table)
        version = int(ctx.inputs[table] or 0)
        gate = GateContext(previous_rows=_published_rows(ctx.store, table), read=ctx.read, ge=ge)
        with activity(spark, f"validating {table}, table {number} of {len(suites)}"):
            outcomes = validate(df, suite, gate)
        _record(spark, ctx, table, version, outcomes, now)
        if any(o.action == "quarantine" and not o.success for o in outcomes):
            version, quarantined[table] = _quarantine(spark, ctx, suite, version, outcomes, now)
            ctx.wrote(table, version)
            outcomes = validate(ctx.store.read(table, version=version), suite, gate)
            _record(spark, ctx, table, version, outcomes, now)
        for o in outcomes:
            if o.action == "warn" and not o.success:
                log.warning("%s version %d: warning: %s %s (unexpected %s)", table, version, o.expectation, o.kwargs,
                            o.unexpected_count)
        passed = all(o.success for o in outcomes if o.action != "warn")
        verdicts[table] = passed
        if passed:
            published = (table, version, ctx.run_id, now)
            ctx.wrote(PUBLISHED, ctx.store.append_rows(PUBLISHED, [published], declared_schema(PUBLISHED),
                                                       txn=Txn(f"validate/{table}", version + 1)).version)
            log.info("%s version %d passed %d expectations: published", table, version, len(outcomes))
        else:
            failed = [f"{o.expectation} {o.kwargs} (unexpected {o.unexpected_count})" for o in outcomes
                      if not o.success and o.action != "warn"]
            log.error("%s version %d NOT published; failed: %s", table, version, "; ".join(failed))
    ctx.counts["validate"] = {"verdicts": verdicts, "quarantined": quarantined}
    blocked = sorted(t for t, ok in verdicts.items() if not ok)
    record_manifest(spark, ctx, "validate", "failed" if blocked else "succeeded",
                    f"not published: {blocked}" if blocked else "", settings_hash=settings_hash(ctx))
    if blocked:
        raise QualityGateBlocked(f"quality gate blocked publishing of {blocked}; see {QUALITY_RESULTS}")
    return verdicts
