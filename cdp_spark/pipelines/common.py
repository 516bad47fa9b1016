"""What every job shares: the run context, the table store, and the run manifest."""

from __future__ import annotations

import functools
import json
import logging
import uuid
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, TypeVar

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from cdp_spark.catalog import RUN_MANIFEST, declared_schema
from cdp_spark.config import CdpConfig
from cdp_spark.io.object_store import configure_s3a
from cdp_spark.io.tables import TableStore, open_store
from cdp_spark.version import code_version

log = logging.getLogger("cdp")



class StageError(RuntimeError):
    """A stage failed for a reason the user can act on; the CLI prints the message and exits non-zero."""


class InputRejected(StageError):
    """Ingest rejected landing files (the others were ingested and logged)."""


class QualityGateBlocked(StageError):
    """A quality suite's fail rule failed: the table version was not published."""




class SharedFrames:
    """Frames persisted once and read by several stages of one run (the order facts of score, predict and
    report). Each frame has a name and a key (its inputs' versions and parameters): asking again with the
    same key returns the persisted frame, a new key (another as-of date, a newer input) unpersists the old
    frame and builds the new one, so at most one frame per name is held. :meth:`release` unpersists all."""

    def __init__(self) -> None:
        self._frames: dict[str, tuple[Hashable, DataFrame]] = {}

    def get(self, name: str, key: Hashable, build: Callable[[], DataFrame]) -> DataFrame:
        held = self._frames.get(name)
        if held is not None and held[0] == key:
            return held[1]
        if held is not None:
            held[1].unpersist()
        frame = build().persist()
        self._frames[name] = (key, frame)
        return frame

    def release(self) -> None:
        for _, frame in self._frames.values():
            frame.unpersist()
        self._frames.clear()


@dataclass
class RunContext:
    """One job run: its id, the business date it computes as of, and what it read and wrote."""

    cfg: CdpConfig
    store: TableStore
    as_of: date
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    inputs: dict[str, int | None] = field(default_factory=dict)
    outputs: dict[str, int] = field(default_factory=dict)
    counts: dict[str, Any] = field(default_factory=dict)
    full_refresh: bool = False
    shared: SharedFrames = field(default_factory=SharedFrames)
    sources: frozenset[str] | None = None
    """``--source``: the sources ingest reads (None: all)"""
    tables: frozenset[str] | None = None
    """``--table``: the tables validate, sync and export handle (None: all they are configured for)"""

    def chosen_sources(self, names: Iterable[str]) -> list[str]:
        """``names`` (configured sources) that ``--source`` selects, in their order."""
        return [n for n in names if self.sources is None or n in self.sources]

    def chosen_tables(self, names: Iterable[str]) -> list[str]:
        """``names`` (tables a stage handles) that ``--table`` selects, in their order."""
        return [n for n in names if self.tables is None or n in self.tables]

    def exists(self, table: str) -> bool:
        """Whether ``table`` exists, recorded as an input (its version, None when absent): a stage that reads a
        table only when it is there runs again once it appears (:func:`unchanged_since`)."""
        self.inputs[table] = self.store.version(table)
        return self.inputs[table] is not None

    def read(self, table: str):
        """Reads a table and records its version as an input of this run."""
        self.inputs[table] = self.store.version(table)
        return self.store.read(table, version=self.inputs[table])

    def wrote(self, table: str, version: int) -> None:
        self.outputs[table] = version

    def for_stage(self, as_of: date | None = None) -> RunContext:
        """A context for the next stage of the same run: same run id, the same (or the given) as-of date,
        fresh lineage, the run's shared frames."""
        return RunContext(cfg=self.cfg, store=self.store, as_of=as_of or self.as_of, run_id=self.run_id,
                          full_refresh=self.full_refresh, shared=self.shared, sources=self.sources,
                          tables=self.tables)


def make_context(spark: SparkSession, cfg: CdpConfig, as_of: date | None = None,
                 full_refresh: bool = False) -> RunContext:
    configure_s3a(spark, cfg.object_store)
    store = open_store(spark, cfg.lake_root, cfg.storage.engine, cfg.privacy.no_stats_columns)
    if spark.sparkContext.getCheckpointDir() is None:  # iterative jobs cut their lineage there
        spark.sparkContext.setCheckpointDir(cfg.resolve(cfg.storage.checkpoint_dir))
    return RunContext(cfg=cfg, store=store, as_of=as_of or datetime.now(UTC).date(), full_refresh=full_refresh)


Result = TypeVar("Result")


def stage(run: Callable[[SparkSession, CdpConfig, RunContext], Result],
          ) -> Callable[[SparkSession, CdpConfig, RunContext | None], Result]:
    """A stage's ``run(spark, cfg, ctx=None)``: given a context, the stage is part of a run, which releases
    the shared frames at its end; without one, the stage makes its own and releases its frames itself."""

    @functools.wraps(run)
    def wrapper(spark: SparkSession, cfg: CdpConfig, ctx: RunContext | None = None) -> Result:
        if ctx is not None:
            return run(spark, cfg, ctx)
        own = make_context(spark, cfg)
        try:
            return run(spark, cfg, own)
        finally:
            own.shared.release()

    return wrapper


def record_manifest(spark: SparkSession, ctx: RunContext, job: str, status: str, message: str = "",
                    settings_hash: str | None = None) -> None:
    """Appends one row to ``meta.run_manifest``: inputs' and outputs' versions, the hash of the settings the
    stage ran with (``settings_hash``, else the config's fingerprint), counts."""
    row = (ctx.run_id, job, status, ctx.as_of, ctx.started_at.replace(tzinfo=None),
           datetime.now(UTC).replace(tzinfo=None), settings_hash or ctx.cfg.fingerprint(), code_version(),
           ctx.store.engine,
           json.dumps(ctx.inputs, sort_keys=True), json.dumps(ctx.outputs, sort_keys=True),
           json.dumps(ctx.counts, sort_keys=True, default=str), message[:2000])
    ctx.store.append_rows(RUN_MANIFEST, [row], declared_schema(RUN_MANIFEST))


@dataclass(frozen=True)
class ReuseCheck:
    """Whether a stage's last successful run for the as-of date is still current: ``run_id`` of that run, or
    None with ``reason`` saying why not; ``read`` and ``wrote``: the tables that run read and wrote, with
    their versions then ({} when there is none)."""

    run_id: str | None
    reason: str
    read: dict[str, int | None] = field(default_factory=dict)
    wrote: dict[str, int] = field(default_factory=dict)


def reuse_check(ctx: RunContext, job: str, settings_hash: str | None = None) -> ReuseCheck:
    """Whether running ``job`` again would compute what its last successful run for this as-of date wrote
    (docs/design.md §9, reruns): same settings (``settings_hash``, else the config's fingerprint), code version
    and engine; every table it read (or found absent) still at that version, unless the stage wrote it too;
    every table it wrote still at the version it wrote. Never on a full refresh."""
    if ctx.full_refresh:
        return ReuseCheck(None, "--full-refresh recomputes")
    last = (ctx.store.read(RUN_MANIFEST)
            .where((F.col("job") == job) & (F.col("status") == "succeeded") & (F.col("as_of") == F.lit(ctx.as_of)))
            .orderBy(F.col("finished_at").desc()).limit(1).collect() if ctx.store.exists(RUN_MANIFEST) else [])
    if not last:
        return ReuseCheck(None, f"no successful run as of {ctx.as_of} yet")
    previous = last[0]
    read, wrote = json.loads(previous.input_versions), json.loads(previous.output_versions)
    for what, then, now in (("settings", previous.config_hash, settings_hash or ctx.cfg.fingerprint()),
                            ("code", previous.code_version, code_version()),
                            ("engine", previous.engine, ctx.store.engine)):
        if then != now:
            return ReuseCheck(None, f"the {what} changed since run {previous.run_id}", read, wrote)
    expected = {**read, **wrote}
    changed = sorted(table for table in expected if ctx.store.version(table) != expected[table])
    if changed:
        return ReuseCheck(None, f"{', '.join(changed)} changed since run {previous.run_id}", read, wrote)
    return ReuseCheck(str(previous.run_id), f"unchanged since run {previous.run_id}", read, wrote)


def unchanged_since(ctx: RunContext, job: str, settings_hash: str | None = None) -> str | None:
    """The run id of the last successful run of ``job`` for this as-of date when it is still current
    (:func:`reuse_check`); that run's inputs become this one's."""
    check = reuse_check(ctx, job, settings_hash)
    if check.run_id:
        ctx.inputs.update(check.read)
    return check.run_id


def already_delivered(ctx: RunContext, delivery_log: str, table: str, version: int, target: str) -> bool:
    """Whether ``delivery_log`` (``meta.sync_log``, ``meta.export_log``: table_name, table_version, target) says
    this version of ``table`` already went to ``target``."""
    if not ctx.store.exists(delivery_log):
        return False
    done = ctx.store.read(delivery_log).where((F.col("table_name") == table) & (F.col("table_version") == version)
                                              & (F.col("target") == target))
    return done.limit(1).count() > 0
