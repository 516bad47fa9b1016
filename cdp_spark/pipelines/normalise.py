"""Bronze to silver: typed, normalised, one row per source key, merged on the key (DESIGN §1).

A silver table records the bronze version it was built from as its idempotency token
(``silver/<entity>``, bronze version + 1), so a rerun with no new bronze data writes nothing.
Incremental: when bronze has only had appends since that version, only the keys that arrived since are
rebuilt (from all their bronze rows, so the latest row per key wins exactly as in a full rebuild), and
the merge rewrites only the silver files holding those keys. After an erasure or a rewrite of bronze, or
with ``--full-refresh``, the whole of bronze is rebuilt.
"""

from __future__ import annotations

import logging
from functools import reduce

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from cdp_spark.config import CdpConfig, IdentitySettings, JdbcSourceSettings, SourceSettings
from cdp_spark.identity.normalise import latest_per_key, normalise_person
from cdp_spark.io.delta import Txn
from cdp_spark.pipelines.common import RunContext, make_context, record_manifest

log = logging.getLogger("cdp.normalise")


def to_silver(bronze: DataFrame, source: SourceSettings | JdbcSourceSettings, person_entity: bool,
              identity: IdentitySettings) -> DataFrame:
    """bronze columns -> contract columns (+ normalised person columns) + ``_system``, ``_source``,
    ``_ingested_at``, ``_row_hash``; the latest row per source key wins."""
    recency = [F.col("updated_at").desc_nulls_last()] if "updated_at" in source.columns else []
    recency += [F.col("_ingested_at").desc(), F.col("_row").desc()]
    latest = latest_per_key(bronze, source.source_key, recency)
    selected = latest.select(*[F.col(f"`{c}`") for c in source.columns], F.lit(source.system).alias("_system"),
                             "_source", "_ingested_at", "_row_hash")
    return normalise_person(selected, identity) if person_entity else selected


def rows_to_rebuild(ctx: RunContext, bronze_name: str, bronze: DataFrame, keys: list[str],
                    built_from: int | None) -> tuple[DataFrame, str]:
    """(bronze rows to rebuild silver from, ``incremental`` | ``full``): every bronze row of the keys in
    the files added after version ``built_from`` (the version silver was last built from), or all of
    bronze when there is no such version, bronze was rewritten since, or a full refresh is asked for."""
    added = None if ctx.full_refresh or built_from is None else ctx.store.added_since(bronze_name, built_from)
    if added is None:
        return bronze, "full"
    arrived = added.select(*[F.col(f"`{k}`").alias(f"_arrived_{k}") for k in keys]).distinct()
    same_key = reduce(lambda a, b: a & b, [bronze[f"`{k}`"].eqNullSafe(arrived[f"_arrived_{k}"]) for k in keys])
    return bronze.join(arrived, same_key, "left_semi"), "incremental"


def run(spark: SparkSession, cfg: CdpConfig, ctx: RunContext | None = None) -> dict[str, int]:
    ctx = ctx or make_context(spark, cfg)
    merged: dict[str, int] = {}
    modes: dict[str, str] = {}
    by_entity = {s.entity: s for s in reversed(list(cfg.all_sources().values()))}  # first source's contract
    for source in by_entity.values():
        bronze_name, silver_name = f"bronze.{source.entity}", f"silver.{source.entity}"
        if not ctx.store.exists(bronze_name):
            log.warning("%s does not exist yet; nothing to normalise", bronze_name)
            continue
        bronze = ctx.read(bronze_name)
        bronze_version = ctx.inputs[bronze_name] or 0
        txn = Txn(f"silver/{source.entity}", bronze_version + 1)
        token = ctx.store.txn_version(silver_name, txn.app_id)
        built_from = None if token is None or token >= txn.version else token - 1
        rows, mode = rows_to_rebuild(ctx, bronze_name, bronze, source.source_key, built_from)
        silver = to_silver(rows, source, source.entity in cfg.identity.person_sources, cfg.identity)
        refresh_again = ctx.full_refresh and token is not None and token >= txn.version
        result = ctx.store.merge(silver_name, silver, keys=source.source_key, txn=None if refresh_again else txn,
                                 evolve_schema=True)
        ctx.wrote(silver_name, result.version)
        merged[silver_name] = result.rows_written
        modes[silver_name] = "unchanged" if result.skipped else mode
        log.info("%s: %s (version %d)", silver_name, "unchanged" if result.skipped else f"merged, {mode}",
                 result.version)
    ctx.counts["normalise"] = merged
    ctx.counts["normalise_modes"] = modes
    record_manifest(spark, ctx, "normalise", "succeeded")
    return merged
