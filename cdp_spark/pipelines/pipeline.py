"""The whole pipeline: ingest -> normalise -> resolve -> score -> predict -> report -> validate -> sync ->
export, one run id."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from pyspark.sql import SparkSession

from cdp_spark.config import CdpConfig
from cdp_spark.io.notify import NotificationError, post_json
from cdp_spark.pipelines import export, ingest, normalise, predict, report, resolve, score, sync, validate
from cdp_spark.pipelines.common import RunContext, make_context

log = logging.getLogger("cdp.pipeline")

Stage = Callable[[SparkSession, CdpConfig, RunContext], Any]
STAGES: dict[str, Stage] = {
    "ingest": ingest.run,
    "normalise": normalise.run,
    "resolve": resolve.run,
    "score": score.run,
    "predict": predict.run,
    "report": report.run,
    "validate": validate.run,
    "sync": sync.run,
    "export": export.run,
}
SUMMARY_TABLES = ["bronze.contacts", "bronze.customers", "bronze.loyalty", "bronze.orders", "silver.orders",
                  "gold.person_registry", "gold.person_profile", "gold.person_scores", "gold.segment_membership",
                  "gold.clv", "gold.person_personas", "gold.product_recommendations", "gold.report_segment_metrics",
                  "quality.results",
                  "meta.published"]


@dataclass
class PipelineSummary:
    run_id: str
    as_of: str
    lake_root: str
    engine: str
    seconds: dict[str, float] = field(default_factory=dict)
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    persons: int = 0
    quarantined: int = 0
    report: str | None = None


def summarise(ctx: RunContext, seconds: dict[str, float]) -> PipelineSummary:
    summary = PipelineSummary(ctx.run_id, ctx.as_of.isoformat(), ctx.cfg.lake_root, ctx.store.engine, seconds)
    for table in SUMMARY_TABLES:
        if ctx.store.exists(table):
            summary.tables[table] = {"rows": ctx.store.read(table).count(), "version": ctx.store.version(table),
                                     "path": ctx.store.path(table)}
    if "gold.person_profile" in summary.tables:
        summary.persons = int(summary.tables["gold.person_profile"]["rows"])
    for entity in {s.entity for s in ctx.cfg.sources.values()}:
        if ctx.store.exists(f"quarantine.{entity}"):
            summary.quarantined += ctx.store.read(f"quarantine.{entity}").count()
    return summary


def run(spark: SparkSession, cfg: CdpConfig, ctx: RunContext | None = None,
        stages: list[str] | None = None) -> PipelineSummary:
    """Runs the stages in order with one run id; a failing stage stops the run with its error."""
    ctx = ctx or make_context(spark, cfg)
    seconds: dict[str, float] = {}
    current = ""
    try:
        for current in stages or list(STAGES):
            started = time.monotonic()
            log.info("stage %s: started (run %s, as of %s)", current, ctx.run_id, ctx.as_of)
            STAGES[current](spark, cfg, ctx.for_stage())
            seconds[current] = round(time.monotonic() - started, 1)
            log.info("stage %s: done in %.1f s", current, seconds[current])
    except Exception as exc:
        notify(cfg, {"status": "failed", "run_id": ctx.run_id, "as_of": ctx.as_of.isoformat(), "stage": current,
                     "error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:500],
                     "seconds": seconds})
        raise
    summary = summarise(ctx, seconds)
    if "report" in seconds:
        summary.report = report.report_location(cfg, ctx.as_of)
    notify(cfg, {"status": "succeeded", **asdict(summary)})
    return summary


def notify(cfg: CdpConfig, payload: dict[str, Any]) -> None:
    """POSTs the run summary to the configured webhook, if any; a failure is logged unless configured to fail."""
    url = cfg.notifications.url()
    if not url:
        return
    try:
        status = post_json(url, payload, cfg.notifications.timeout_s, cfg.notifications.attempts)
        log.info("run %s: summary posted to the webhook (HTTP %d)", payload.get("run_id"), status)
    except NotificationError as exc:
        if cfg.notifications.fail_run_on_error:
            raise
        log.warning("%s", exc)
