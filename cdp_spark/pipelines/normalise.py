"""Bronze to silver: typed, normalised, one row per source key, merged on the key (docs/design.md §1).

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

from cdp_spark.catalog import bronze_of, silver_of
from cdp_spark.config import CdpConfig, IdentitySettings, JdbcSourceSettings, SourceSettings
from cdp_spark.identity.normalise import latest_per_key, normalise_person
from cdp_spark.io.tables import Txn
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


def rows_of_arrived_keys(bronze: DataFrame, added: DataFrame, keys: list[str]) -> DataFrame:
    """Every ``bronze`` row whose key (null-safe) is the key of a row in ``added`` (the rows that arrived
    since the last build); same columns as ``bronze``."""
    arrived = added.select(*[F.col(f"`{k}`").alias(f"_arrived_{k}") for k in keys]).distinct()
    same_key = reduce(lambda a, b: a & b, [bronze[f"`{k}`"].eqNullSafe(arrived[f"_arrived_{k}"]) for k in keys])
    return bronze.join(arrived, same_key, "left_semi")


def run(spark: SparkSession, cfg: CdpConfig, ctx: RunContext | None = None) -> dict[str, int]:
    ctx = ctx or make_context(spark, cfg)
    merged: dict[str, int] = {}
    modes: dict[str, str] = {}
    by_entity = {s.entity: s for s in reversed(list(cfg.all_sources().values()))}  # first source's contract
    for source in by_entity.values():
        bronze_name, silver_name = bronze_of(source.entity), silver_of(source.entity)
        if not ctx.exists(bronze_name):
            log.warning("%s does not exist yet; nothing to normalise", bronze_name)
            continue
        bronze = ctx.read(bronze_name)
        bronze_version = ctx.inputs[bronze_name] or 0
        txn = Txn(f"silver/{source.entity}", bronze_version + 1)
        token = ctx.store.txn_version(silver_name, txn.app_id)  # bronze version silver was built from + 1
        up_to_date = token is not None and token >= txn.version
        added = (ctx.store.added_since(bronze_name, token - 1)
                 if token is not None and not up_to_date and not ctx.full_refresh else None)
        rows = bronze if added is None else rows_of_arrived_keys(bronze, added, source.source_key)
        mode = "full" if added is None else "incremental"
        silver = to_silver(rows, source, source.entity in cfg.identity.person_sources, cfg.identity)
        # a full refresh of an up-to-date table writes again: without the token, which it already has
        result = ctx.store.merge(silver_name, silver, keys=source.source_key,
                                 txn=None if ctx.full_refresh and up_to_date else txn, evolve_schema=True)
        ctx.wrote(silver_name, result.version)
        merged[silver_name] = result.rows_written
        modes[silver_name] = "unchanged" if result.skipped else mode
        log.info("%s: %s (version %d)", silver_name, "unchanged" if result.skipped else f"merged, {mode}",
                 result.version)
    ctx.counts["normalise"] = merged
    ctx.counts["normalise_modes"] = modes
    record_manifest(spark, ctx, "normalise", "succeeded")
    return merged
