"""Bronze to silver: typed, normalised, one row per source key, merged on the key (DESIGN §1).

A silver table records the bronze version it was built from as its idempotency token
(``silver/<entity>``, bronze version + 1), so a rerun with no new bronze data writes nothing.
"""

from __future__ import annotations

import logging

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


def run(spark: SparkSession, cfg: CdpConfig, ctx: RunContext | None = None) -> dict[str, int]:
    ctx = ctx or make_context(spark, cfg)
    merged: dict[str, int] = {}
    by_entity = {s.entity: s for s in reversed(list(cfg.all_sources().values()))}  # first source's contract
    for source in by_entity.values():
        bronze_name, silver_name = f"bronze.{source.entity}", f"silver.{source.entity}"
        if not ctx.store.exists(bronze_name):
            log.warning("%s does not exist yet; nothing to normalise", bronze_name)
            continue
        bronze = ctx.read(bronze_name)
        bronze_version = ctx.inputs[bronze_name] or 0
        silver = to_silver(bronze, source, source.entity in cfg.identity.person_sources, cfg.identity)
        result = ctx.store.merge(silver_name, silver, keys=source.source_key,
                                 txn=Txn(f"silver/{source.entity}", bronze_version + 1), evolve_schema=True)
        ctx.wrote(silver_name, result.version)
        merged[silver_name] = result.rows_written
        log.info("%s: %s (version %d)", silver_name, "unchanged" if result.skipped else "merged", result.version)
    ctx.counts["normalise"] = merged
    record_manifest(spark, ctx, "normalise", "succeeded")
    return merged
