"""Scores as of a date -> ``gold.person_scores`` (one row per person).

The run reads the registry and silver orders at their current versions (recorded in the manifest),
keeps orders dated on or before ``as_of`` in the business time zone, and overwrites the table; every
version of ``gold.person_scores`` therefore holds one as-of snapshot, and its history keeps the others.
"""

from __future__ import annotations

import logging

from pyspark.sql import SparkSession

from cdp_spark.config import CdpConfig
from cdp_spark.pipelines.common import RunContext, StageError, make_context, record_manifest
from cdp_spark.pipelines.resolve import PROFILE, REGISTRY
from cdp_spark.scores.enrichment import computed_fields, custom_aggregate
from cdp_spark.scores.library import score_library
from cdp_spark.scores.orders import order_facts, order_items
from cdp_spark.scores.rfm import cut_points, rfm

log = logging.getLogger("cdp.score")

SCORES = "gold.person_scores"
RFM_CUTS = "gold.rfm_cut_points"
CUTS_SCHEMA = "run_id string, as_of date, metric string, cut_points array<double>, groups int"


def run(spark: SparkSession, cfg: CdpConfig, ctx: RunContext | None = None) -> dict[str, int]:
    ctx = ctx or make_context(spark, cfg)
    orders_table = f"silver.{cfg.scores.orders_entity}"
    for needed in (REGISTRY, PROFILE, orders_table, "silver.stores", "silver.order_items", "silver.products"):
        if not ctx.store.exists(needed):
            raise StageError(f"{needed} does not exist; run the earlier stages first")
    facts = order_facts(ctx.read(orders_table), ctx.read(REGISTRY), ctx.read("silver.stores"),
                        cfg.scores.business_timezone, ctx.as_of, cfg.scores.order_customer_source,
                        cfg.scores.order_customer_key)
    items = order_items(ctx.read("silver.order_items"), ctx.read("silver.products"))
    scores = score_library(ctx.read(PROFILE), facts, items, ctx.as_of, cfg.scores.lifecycle)
    if cfg.scores.rfm:
        scores = scores.persist()
        cuts = cut_points(scores, cfg.scores.rfm.groups)
        stored = spark.createDataFrame([(ctx.run_id, ctx.as_of, metric, values, cfg.scores.rfm.groups)
                                        for metric, values in cuts.items()], CUTS_SCHEMA)
        ctx.wrote(RFM_CUTS, ctx.store.write(RFM_CUTS, stored).version)
        scores = rfm(scores, cuts, cfg.scores.rfm.groups, cfg.scores.rfm.segments)
    registry = ctx.read(REGISTRY)
    for spec in cfg.scores.custom_aggregates:
        if not ctx.store.exists(spec.table):
            raise StageError(f"custom aggregate '{spec.name}' reads {spec.table}, which does not exist")
        scores = scores.join(custom_aggregate(ctx.read(spec.table), registry, spec), "person_id", "left")
    scores = computed_fields(scores, cfg.scores.computed_fields, SCORES, ctx.as_of)
    result = ctx.store.write(SCORES, scores, mode="overwrite")
    ctx.wrote(SCORES, result.version)
    counts = {"persons_scored": result.rows_written}
    ctx.counts["score"] = counts
    record_manifest(spark, ctx, "score", "succeeded")
    log.info("scored %d persons as of %s", result.rows_written, ctx.as_of)
    return counts
