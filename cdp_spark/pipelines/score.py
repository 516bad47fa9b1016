"""Scores as of a date -> ``gold.person_scores`` (one row per person), segments, measures, history.

The run reads the registry and silver orders at their current versions (recorded in the manifest),
keeps orders dated on or before ``as_of`` in the business time zone, and overwrites the table; every
version of ``gold.person_scores`` therefore holds one as-of snapshot, and its history keeps the others.

Also written:
    gold.segment_membership  (person_id, segment, as_of)                     overwrite
    gold.segment_changes     (person_id, segment, change, as_of, run_id)     entered / left; per as-of date
    gold.measures            (as_of, measure, segment, value, run_id)        per as-of date (a rerun replaces it)
    gold.person_state_history (person_id, state, value, valid_from, valid_to) overwrite (SCD type 2)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from cdp_spark.catalog import (
    MEASURES,
    PERSON_PROFILE,
    PERSON_REGISTRY,
    PERSON_SCORES,
    RFM_CUT_POINTS,
    SEGMENT_CHANGES,
    SEGMENT_MEMBERSHIP,
    STATE_HISTORY,
    declared_schema,
    silver_of,
)
from cdp_spark.config import CdpConfig
from cdp_spark.pipelines.common import RunContext, StageError, record_manifest, stage
from cdp_spark.scores.enrichment import EnrichmentError, computed_fields, custom_aggregate
from cdp_spark.scores.library import score_library
from cdp_spark.scores.orders import category_orders, order_facts, order_items
from cdp_spark.scores.rfm import cut_points, rfm
from cdp_spark.scores.segments import measures, membership_before, segment_changes, segment_membership, state_history
from cdp_spark.session import streaming_aggregation

log = logging.getLogger("cdp.score")



@dataclass
class Purchases:
    """What score, predict and report read of the orders as of the run's date."""

    facts: DataFrame  # order facts (``scores.orders.order_facts``), shared
    categories: DataFrame  # per person and category of their purchases (``category_orders``), shared
    lines: DataFrame  # silver order lines as read


def purchase_facts(ctx: RunContext, cfg: CdpConfig) -> Purchases:
    """The run's purchases as of its date. The order facts and the per-category purchases are persisted once
    per run and as-of date and shared by score, predict and report (``ctx.shared``), keyed by the versions
    of the tables they are built from and the score settings."""
    orders_table = silver_of(cfg.scores.orders_entity)
    stores_table, lines_table, products_table = silver_of("stores"), silver_of("order_items"), silver_of("products")
    for needed in (PERSON_REGISTRY, orders_table, stores_table, lines_table, products_table):
        if not ctx.exists(needed):
            raise StageError(f"{needed} does not exist; run the earlier stages first")
    orders, registry, stores = ctx.read(orders_table), ctx.read(PERSON_REGISTRY), ctx.read(stores_table)
    lines, products = ctx.read(lines_table), ctx.read(products_table)

    def versions(*tables: str) -> tuple[tuple[str, int | None], ...]:
        return tuple((ctx.store.path(t), ctx.inputs[t]) for t in tables)

    settings = cfg.scores
    key = (versions(orders_table, PERSON_REGISTRY, stores_table), settings.business_timezone, ctx.as_of,
           settings.order_customer_source, settings.order_customer_key)
    facts = ctx.shared.get("order_facts", key, lambda: order_facts(
        orders, registry, stores, settings.business_timezone, ctx.as_of, settings.order_customer_source,
        settings.order_customer_key))
    categories = ctx.shared.get("category_orders", (key, versions(lines_table, products_table)),
                                lambda: category_orders(facts, order_items(lines, products)))
    return Purchases(facts, categories, lines)


@stage
def run(spark: SparkSession, cfg: CdpConfig, ctx: RunContext) -> dict[str, int]:
    if not ctx.exists(PERSON_PROFILE):
        raise StageError(f"{PERSON_PROFILE} does not exist; run the earlier stages first")
    # the library's aggregations stream over the sorted order facts (docs/design.md §5, "Layout of the order
    # facts"); a persisted frame's plan is made as it is persisted, so the frames are persisted inside
    with streaming_aggregation(spark):
        bought = purchase_facts(ctx, cfg)  # every score reads the order facts
        # read by the cut points and again by the scoring
        scores = library = score_library(ctx.read(PERSON_PROFILE), bought.facts, bought.categories, ctx.as_of,
                                         cfg.scores.lifecycle).persist()
    if cfg.scores.rfm:
        cuts = cut_points(scores, cfg.scores.rfm.groups)
        stored = [(ctx.run_id, ctx.as_of, metric, values, cfg.scores.rfm.groups) for metric, values in cuts.items()]
        cut_rows = ctx.store.append_rows(RFM_CUT_POINTS, stored, declared_schema(RFM_CUT_POINTS))
        ctx.wrote(RFM_CUT_POINTS, cut_rows.version)
        scores = rfm(scores, cuts, cfg.scores.rfm.groups, cfg.scores.rfm.segments)
    registry = ctx.read(PERSON_REGISTRY)
    for spec in cfg.scores.custom_aggregates:
        if not ctx.exists(spec.table):
            raise StageError(f"custom aggregate '{spec.name}' reads {spec.table}, which does not exist")
        scores = scores.join(custom_aggregate(ctx.read(spec.table), registry, spec), "person_id", "left")
    scores = computed_fields(scores, cfg.scores.computed_fields, PERSON_SCORES, ctx.as_of).persist()
    result = ctx.store.write(PERSON_SCORES, scores, mode="overwrite")
    ctx.wrote(PERSON_SCORES, result.version)
    counts = {"persons_scored": result.rows_written, **publish_segments(ctx, cfg, scores)}
    scores.unpersist()
    library.unpersist()
    ctx.counts["score"] = counts
    record_manifest(spark, ctx, "score", "succeeded")
    log.info("scored %d persons as of %s", result.rows_written, ctx.as_of)
    return counts


def publish_segments(ctx: RunContext, cfg: CdpConfig, scores: DataFrame) -> dict[str, int]:
    """Segment membership and its changes, measures and the state history, from this run's scores."""
    persons = ctx.read(PERSON_PROFILE).join(scores, "person_id", "left")
    membership = segment_membership(persons, cfg.scores.segments, ctx.as_of).persist()
    previous = ctx.read(SEGMENT_MEMBERSHIP) if ctx.exists(SEGMENT_MEMBERSHIP) else None
    if previous is not None and previous.where(F.col("as_of") == F.lit(ctx.as_of)).limit(1).count():
        # a rerun of the same date: compare with the membership before it, from the changes log
        today = (ctx.read(SEGMENT_CHANGES).where(F.col("as_of") == F.lit(ctx.as_of)) if ctx.exists(SEGMENT_CHANGES)
                 else None)
        previous = membership_before(previous, today)
    changes = segment_changes(membership, previous, ctx.as_of).withColumn("run_id", F.lit(ctx.run_id))
    figures = measures(persons, membership, cfg.scores.measures, ctx.as_of).withColumn("run_id", F.lit(ctx.run_id))
    _replace_as_of(ctx, SEGMENT_CHANGES, changes)
    _replace_as_of(ctx, MEASURES, figures)
    ctx.wrote(SEGMENT_MEMBERSHIP, ctx.store.write(SEGMENT_MEMBERSHIP, membership, mode="overwrite").version)
    counts = {"segment_memberships": membership.count(), "segment_changes": changes.count()}
    columns = [c for c in cfg.scores.history_columns if c in scores.columns]
    if columns:
        old = ctx.read(STATE_HISTORY) if ctx.exists(STATE_HISTORY) else None
        try:
            history = state_history(old, scores, columns, ctx.as_of)
        except EnrichmentError as exc:
            raise StageError(str(exc)) from None
        ctx.wrote(STATE_HISTORY, ctx.store.write(STATE_HISTORY, history.localCheckpoint(), mode="overwrite").version)
    membership.unpersist()
    return counts


def _replace_as_of(ctx: RunContext, table: str, rows: DataFrame) -> None:
    """The table's rows of other as-of dates plus ``rows``: a rerun of a date replaces that date's rows."""
    if ctx.exists(table):
        others = ctx.read(table).where(F.col("as_of") != F.lit(ctx.as_of))
        rows = others.unionByName(rows).localCheckpoint()
    ctx.wrote(table, ctx.store.write(table, rows, mode="overwrite").version)
