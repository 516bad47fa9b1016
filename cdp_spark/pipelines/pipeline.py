"""The whole pipeline: ingest -> normalise -> resolve -> score -> predict -> report -> validate -> sync ->
export, one run id.

With ``since`` (``cdp run --since``), the dated stages (score, predict, report) run once per as-of date from
``since`` to the run's as-of date, oldest first, so segment changes, measures and the state history build
up as if the job had run on each of those days; the other stages run once (validate, sync and export
publish the last date)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from typing import Any

from pyspark.sql import SparkSession

from cdp_spark.catalog import (
    CLV,
    PERSON_PERSONAS,
    PERSON_PROFILE,
    PERSON_REGISTRY,
    PERSON_SCORES,
    PUBLISHED,
    QUALITY_RESULTS,
    RECOMMENDATIONS,
    SEGMENT_MEMBERSHIP,
    bronze_of,
    report_table,
    silver_of,
)
from cdp_spark.config import CdpConfig
from cdp_spark.io.lock import hold_lake
from cdp_spark.io.notify import NotificationError, post_json
from cdp_spark.pipelines import export, ingest, normalise, predict, report, resolve, score, sync, validate
from cdp_spark.pipelines.common import RunContext, StageError, make_context, record_manifest, unchanged_since
from cdp_spark.progress import StageProgress
from cdp_spark.quality.gate import preload_ge
from cdp_spark.session import interpreted

log = logging.getLogger("cdp.pipeline")


@dataclass(frozen=True)
class Stage:
    """One stage: ``run(spark, cfg, ctx)``. A ``dated`` stage runs once per as-of date of a backfill. A
    ``reusable`` stage is skipped when its last run for the date is still current (``unchanged_since``), given
    the hash of its settings (``settings_hash``, default the config's fingerprint) and, when it writes outside
    the lake, that those results are still there (``results_present``). Stages not ``interpreted_when_small``
    always run generated code: ingest's size is its new files, resolve compares many candidate pairs per record,
    where generated code was faster at every size measured, and sync and export (off locally) were not measured
    (docs/design.md §9, "Compiled code")."""

    run: Callable[[SparkSession, CdpConfig, RunContext], Any]
    dated: bool = False
    reusable: bool = False
    settings_hash: Callable[[RunContext], str] | None = None
    results_present: Callable[[RunContext], bool] | None = None
    interpreted_when_small: bool = False
    """run on Spark's expression interpreter while the lake is small (``spark.generated_code_min_rows``)"""

    def reusable_run(self, name: str, ctx: RunContext) -> str | None:
        """The id of the run whose results this stage would compute again, or None."""
        if not self.reusable:
            return None
        previous = unchanged_since(ctx, name, self.settings_hash(ctx) if self.settings_hash else None)
        if previous and self.results_present and not self.results_present(ctx):
            return None
        return previous


STAGES: dict[str, Stage] = {
    "ingest": Stage(ingest.run),
    "normalise": Stage(normalise.run, reusable=True, interpreted_when_small=True),
    "resolve": Stage(resolve.run, reusable=True),
    "score": Stage(score.run, dated=True, reusable=True, interpreted_when_small=True),
    "predict": Stage(predict.run, dated=True, reusable=True, interpreted_when_small=True),
    "report": Stage(report.run, dated=True, reusable=True, results_present=report.html_present,
                    interpreted_when_small=True),
    "validate": Stage(validate.run, reusable=True, settings_hash=validate.settings_hash, interpreted_when_small=True),
    "sync": Stage(sync.run),
    "export": Stage(export.run),
}
DATED_STAGES = tuple(name for name, spec in STAGES.items() if spec.dated)
SUMMARY_TABLES = [PERSON_REGISTRY, PERSON_PROFILE, PERSON_SCORES, SEGMENT_MEMBERSHIP, CLV, PERSON_PERSONAS,
                  RECOMMENDATIONS, report_table("report_segment_metrics"), QUALITY_RESULTS, PUBLISHED]


@dataclass
class PipelineSummary:
    run_id: str
    as_of: str
    lake_root: str
    engine: str
    seconds: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # stage (and date in a backfill) -> the run it reused
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    persons: int = 0
    quarantined: int = 0
    """rows this run's ingest quarantined (0 when it did not ingest)"""
    report: str | None = None


def summarise(ctx: RunContext, seconds: dict[str, float], skipped: dict[str, str],
              quarantined: int = 0) -> PipelineSummary:
    summary = PipelineSummary(ctx.run_id, ctx.as_of.isoformat(), ctx.cfg.lake_root, ctx.store.engine, seconds,
                              skipped, quarantined=quarantined)
    entities = list(dict.fromkeys(s.entity for s in ctx.cfg.all_sources().values()))
    for table in [*map(bronze_of, entities), silver_of(ctx.cfg.scores.orders_entity), *SUMMARY_TABLES]:
        if ctx.store.exists(table):
            summary.tables[table] = {"rows": ctx.store.row_count(table), "version": ctx.store.version(table),
                                     "path": ctx.store.path(table)}
    if PERSON_PROFILE in summary.tables:
        summary.persons = int(summary.tables[PERSON_PROFILE]["rows"])
    return summary


def largest_bronze_rows(ctx: RunContext) -> int:
    """Rows of the largest bronze table of the configured sources (0 before anything was ingested): the lake's
    size, read from the tables' logs."""
    tables = sorted({bronze_of(source.entity) for source in ctx.cfg.all_sources().values()})
    return max((ctx.store.row_count(table) for table in tables if ctx.store.exists(table)), default=0)


class LakeSize:
    """Whether the lake is small enough for the interpreter (``spark.generated_code_min_rows``): measured once
    per run, when a stage first asks, which is after ingest (the first stage of a plan)."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.rows: int | None = None

    def small(self) -> bool:
        limit = self.ctx.cfg.spark.generated_code_min_rows
        if not limit:
            return False
        if self.rows is None:
            self.rows = largest_bronze_rows(self.ctx)
            interpreting = [name for name, spec in STAGES.items() if spec.interpreted_when_small]
            log.info("largest bronze table: %d rows (spark.generated_code_min_rows %d): %s", self.rows, limit,
                     f"{', '.join(interpreting)} run on Spark's interpreter" if self.rows < limit
                     else "every stage runs generated code")
        return self.rows < limit


def as_of_dates(since: date | None, until: date, every_days: int = 1) -> list[date]:
    """The as-of dates of a run: ``since``, ``since + every_days``, ... and always ``until`` last."""
    if since is None:
        return [until]
    if since > until:
        raise StageError(f"--since {since} is after the as-of date {until}")
    if every_days < 1:
        raise StageError(f"--every must be at least 1 day, not {every_days}")
    dates = [since + timedelta(days=n) for n in range(0, (until - since).days + 1, every_days)]
    return dates if dates[-1] == until else [*dates, until]


def stage_plan(stages: list[str], as_of: date, since: date | None = None,
               every_days: int = 1) -> list[tuple[str, date]]:
    """(stage, as-of date) in run order: stages before the dated ones once, then the dated stages for each
    date (all three for a date before the next date), then the rest once at ``as_of``."""
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise StageError(f"unknown stage(s) {unknown}; stages are {list(STAGES)}")
    ordered = [s for s in STAGES if s in stages]
    dated = [s for s in ordered if s in DATED_STAGES]
    first = ordered.index(dated[0]) if dated else len(ordered)
    before = [(s, as_of) for s in ordered[:first] if s not in DATED_STAGES]
    after = [(s, as_of) for s in ordered[first:] if s not in DATED_STAGES]
    return [*before, *[(s, d) for d in as_of_dates(since, as_of, every_days) for s in dated], *after]


def run(spark: SparkSession, cfg: CdpConfig, ctx: RunContext | None = None, stages: list[str] | None = None,
        since: date | None = None, every_days: int = 1, wait: bool = False) -> PipelineSummary:
    """Runs the stages in order with one run id; a failing stage stops the run with its error. With
    ``since``, the dated stages run for every as-of date from ``since`` to the run's as-of date. A reusable
    stage whose last run is still current is skipped, with a ``skipped`` manifest row naming that run. The run
holds the lake (``storage.lock``): another run on it fails at once (:class:`LakeBusy`), or waits with
``wait``."""
    ctx = ctx or make_context(spark, cfg)
    plan = stage_plan(stages or list(STAGES), ctx.as_of, since, every_days)
    command = "cdp run" + (f" --stages {','.join(stages)}" if stages else "")
    with lake_held(cfg, ctx.run_id, command, wait):
        return _run_plan(spark, cfg, ctx, plan)


def lake_held(cfg: CdpConfig, run_id: str, command: str, wait: bool = False) -> AbstractContextManager[None]:
    """The lake held for a run (``storage.lock``), or nothing when locking is off."""
    if not cfg.storage.lock:
        return nullcontext()
    return hold_lake(cfg.lake_root, run_id, command, cfg.object_store, cfg.storage.lock_stale_after_s,
                     cfg.storage.lock_wait_s if wait else 0)


def _run_plan(spark: SparkSession, cfg: CdpConfig, ctx: RunContext, plan: list[tuple[str, date]]) -> PipelineSummary:
    seconds: dict[str, float] = {}
    skipped: dict[str, str] = {}
    quarantined = 0
    current = ""
    if cfg.quality.enabled and "validate" in {stage for stage, _ in plan}:
        preload_ge()
    lake = LakeSize(ctx)
    try:
        for current, as_of in plan:
            started = time.monotonic()
            stage_ctx = ctx.for_stage(as_of)
            previous = STAGES[current].reusable_run(current, stage_ctx)
            if previous:
                record_manifest(spark, stage_ctx, current, "skipped", f"unchanged since run {previous}")
                skipped[current if as_of == ctx.as_of else f"{current} ({as_of})"] = previous
                log.info("stage %s: skipped, its inputs and outputs are as run %s left them (as of %s; "
                         "--full-refresh recomputes)", current, previous, as_of)
            else:
                log.info("stage %s: started (run %s, as of %s)", current, ctx.run_id, as_of)
                spec = STAGES[current]
                with StageProgress(spark, current), interpreted(spark, spec.interpreted_when_small and lake.small()):
                    spec.run(spark, cfg, stage_ctx)
                quarantined += int(stage_ctx.counts.get("ingest", {}).get("rows_quarantined", 0))
            took = time.monotonic() - started
            seconds[current] = round(seconds.get(current, 0.0) + took, 1)
            if not previous:
                log.info("stage %s: done in %.1f s", current, took)
    except Exception as exc:
        notify(cfg, {"status": "failed", "run_id": ctx.run_id, "as_of": ctx.as_of.isoformat(), "stage": current,
                     "error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:500],
                     "seconds": seconds})
        raise
    finally:
        ctx.shared.release()  # the order facts score, predict and report shared
    summary = summarise(ctx, seconds, skipped, quarantined)
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
