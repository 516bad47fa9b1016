"""What every job shares: the run context, the table store, and the run manifest."""

from __future__ import annotations

import functools
import json
import logging
import uuid
from collections.abc import Callable, Hashable
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
                          full_refresh=self.full_refresh, shared=self.shared)


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


def unchanged_since(ctx: RunContext, job: str, settings_hash: str | None = None) -> str | None:
    """The run id of the last successful run of ``job`` for this as-of date, if running it again would compute
    what it wrote then (docs/design.md §9, reruns): same settings (``settings_hash``, else the config's
    fingerprint), code version and engine; every table it read (or found absent) still at that version, unless
    the stage wrote it too; every table it wrote still at the version it wrote. None otherwise, and always on a
    full refresh."""
    if ctx.full_refresh or not ctx.store.exists(RUN_MANIFEST):
        return None
    last = (ctx.store.read(RUN_MANIFEST)
            .where((F.col("job") == job) & (F.col("status") == "succeeded") & (F.col("as_of") == F.lit(ctx.as_of)))
            .orderBy(F.col("finished_at").desc()).limit(1).collect())
    if not last:
        return None
    previous = last[0]
    if (previous.config_hash, previous.code_version, previous.engine) != (
            settings_hash or ctx.cfg.fingerprint(), code_version(), ctx.store.engine):
        return None
    read, wrote = json.loads(previous.input_versions), json.loads(previous.output_versions)
    expected = {**read, **wrote}
    current = {table: ctx.store.version(table) for table in expected}
    if current != expected:
        return None
    ctx.inputs.update({table: version for table, version in current.items() if table in read})
    return str(previous.run_id)


def already_delivered(ctx: RunContext, delivery_log: str, table: str, version: int, target: str) -> bool:
    """Whether ``delivery_log`` (``meta.sync_log``, ``meta.export_log``: table_name, table_version, target) says
    this version of ``table`` already went to ``target``."""
    if not ctx.store.exists(delivery_log):
        return False
    done = ctx.store.read(delivery_log).where((F.col("table_name") == table) & (F.col("table_version") == version)
                                              & (F.col("target") == target))
    return done.limit(1).count() > 0
