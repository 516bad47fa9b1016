"""``cdp run --plan``: what a run would do and why, found by the checks the run itself makes, with nothing
run or written (docs/operations.md, "Scheduling and reruns").

``plan_run(cfg, ctx, stages, since, every_days)``
    one ``PlannedStage`` per (stage, as-of date) of the run's plan: ``run`` or ``skip`` (``off`` for sync and
    export when disabled), the reason, and details: ingest's inputs (new or not), whether normalise and resolve
    would work incrementally or in full. A reusable stage is skipped when its last run is current
    (``reuse_check``) and no stage planned before it changes a table that run read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from cdp_spark.catalog import IDENTITY_EDGES, PERSON_REGISTRY, bronze_of, quarantine_of, silver_of
from cdp_spark.config import CdpConfig
from cdp_spark.pipelines import ingest, resolve
from cdp_spark.pipelines.common import RunContext, reuse_check
from cdp_spark.pipelines.pipeline import STAGES, stage_plan


@dataclass
class PlannedStage:
    stage: str
    as_of: str
    action: str  # run | skip | off
    reason: str
    details: list[str] = field(default_factory=list)


def plan_run(cfg: CdpConfig, ctx: RunContext, stages: list[str] | None = None, since: date | None = None,
             every_days: int = 1) -> list[PlannedStage]:
    planned: list[PlannedStage] = []
    changing: dict[str, str] = {}  # table -> the planned stage that writes it first
    first_time = ""  # a stage with no current run whose outputs are unknown: everything after it runs
    for name, as_of in stage_plan(stages or list(STAGES), ctx.as_of, since, every_days):
        stage_ctx = ctx.for_stage(as_of)
        spec = STAGES[name]
        if name == "ingest":
            inputs = ingest.pending_inputs(cfg, stage_ctx)
            new = [p for p in inputs if p.new]
            for entity in {cfg.all_sources()[p.source].entity for p in new}:
                changing.setdefault(bronze_of(entity), name)
                changing.setdefault(quarantine_of(entity), name)
            planned.append(PlannedStage(name, as_of.isoformat(), "run",
                                        f"{len(new)} of {len(inputs)} inputs hold something new",
                                        [f"{p.source}: {p.location}: {p.note}" for p in inputs]))
            continue
        if name in ("sync", "export"):
            enabled = cfg.warehouse.enabled if name == "sync" else cfg.exports.enabled
            tables = stage_ctx.chosen_tables(cfg.warehouse.tables if name == "sync" else cfg.exports.tables)
            planned.append(PlannedStage(name, as_of.isoformat(), "run" if enabled else "off",
                                        "delivers the published versions not delivered yet" if enabled else
                                        f"{'warehouse' if name == 'sync' else 'exports'}.enabled is false",
                                        tables if enabled else []))
            continue
        check = reuse_check(stage_ctx, name, spec.settings_hash(stage_ctx) if spec.settings_hash else None)
        upstream = sorted(t for t in check.read if t in changing)
        results_gone = bool(check.run_id and spec.results_present and not spec.results_present(stage_ctx))
        if check.run_id and not upstream and not first_time and not results_gone:
            planned.append(PlannedStage(name, as_of.isoformat(), "skip", check.reason))
            continue
        if not check.run_id:
            reason = check.reason
        elif results_gone:
            reason = f"its results outside the lake are gone since run {check.run_id}"
        elif upstream:
            reason = "; ".join(f"{t} changes first ({changing[t]})" for t in upstream)
        else:
            reason = f"{first_time} runs first and may change what it reads"
        planned.append(PlannedStage(name, as_of.isoformat(), "run", reason, mode_details(name, cfg, stage_ctx)))
        if check.wrote:
            for table in check.wrote:
                changing.setdefault(table, name)
        else:
            first_time = first_time or name
    return planned


def mode_details(name: str, cfg: CdpConfig, ctx: RunContext) -> list[str]:
    """How normalise and resolve would work: incrementally or in full, and why."""
    if name == "normalise":
        details = []
        for entity in dict.fromkeys(s.entity for s in cfg.all_sources().values()):
            bronze, silver = bronze_of(entity), silver_of(entity)
            version = ctx.store.version(bronze)
            built = ctx.store.txn_version(silver, f"silver/{entity}") if ctx.store.exists(silver) else None
            if version is None:
                details.append(f"{silver}: nothing yet ({bronze} does not exist)")
            elif ctx.full_refresh or built is None:
                details.append(f"{silver}: full, from all of {bronze}"
                               + (" (--full-refresh)" if ctx.full_refresh else f" ({silver} was never built)"))
            else:
                details.append(f"{silver}: incremental, the keys that arrived in {bronze} after version {built - 1}")
        return details
    if name == "resolve":
        if cfg.identity.matching is None:
            return ["exact keys (identity.matching is null): all records"]
        stored = resolve.latest_model(ctx) if cfg.identity.incremental else None
        if stored is not None and ctx.store.exists(PERSON_REGISTRY) and ctx.store.exists(IDENTITY_EDGES):
            return ["incremental: new and changed records compared with the stored model"]
        why = ("identity.incremental is false" if not cfg.identity.incremental else
               "no stored model fits the configured comparisons" if stored is None else "no registry yet")
        return [f"full: the model is fitted on all records ({why})"]
    return []
