"""Report stage: the gold.report_* tables and one self-contained HTML report (``cdp report``).

Reads gold.person_scores (required), and when present gold.clv, gold.person_personas, gold.persona_model,
gold.person_state_history, silver.<events entity>, the order tables and silver.<products entity> (names);
for its ingestion and quality sections meta.ingestion_log, quarantine.<entity>, quality.results and
meta.published. Writes (overwrite, with ``as_of``):

    gold.report_headlines          persons, buyers, revenue, files and quarantined rows of the last ingest,
                                   tables passing their suite; each with the previous as-of date's value
                                   (merged on metric and as_of: one set of figures per as-of date)
    gold.report_segment_metrics    Pleasepoint's 9 metrics per RFM segment, lifecycle state, CLV tier, persona
    gold.report_rfm_grid           customers per (R, F) score
    gold.report_state_movement     persons moving between states (rfm_segment, hibernation_state) since the
                                   previous as-of date in the history
    gold.report_persona_heatmap    personas x categories: share of purchases and propensity level
    gold.report_funnel             each configured funnel over the events up to the as-of date: actors per
                                   step, % of the first and of the previous step
    gold.report_repeat_purchase    per category: repeat buyers and days between purchases
    gold.report_next_order_products / gold.report_same_cart_products   catalog insights

and ``<reports.output_dir>/report-<as_of>.html`` (a local folder or an s3:// prefix).
"""

from __future__ import annotations

import logging
from datetime import date
from functools import reduce

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from cdp_spark.catalog import (
    CLV,
    INGESTION_LOG,
    PERSON_PERSONAS,
    PERSON_REGISTRY,
    PERSON_SCORES,
    PERSONA_MODEL,
    PUBLISHED,
    QUALITY_RESULTS,
    STATE_HISTORY,
    quarantine_of,
    report_table,
    silver_of,
)
from cdp_spark.config import CdpConfig
from cdp_spark.io.object_store import text_exists, write_text
from cdp_spark.pipelines.common import RunContext, StageError, record_manifest, stage
from cdp_spark.pipelines.score import purchase_facts
from cdp_spark.reports import html
from cdp_spark.reports.tables import (
    clv_tiers,
    funnel,
    headline_figures,
    headlines_with_change,
    ingestion_summary,
    next_order_products,
    order_products,
    persona_heatmap,
    quality_summary,
    quarantine_reasons,
    repeat_purchase_timing,
    rfm_grid,
    same_cart_products,
    segment_metrics,
)
from cdp_spark.scores.segments import movement

log = logging.getLogger("cdp.report")

MOVEMENT_SCHEMA = "state string, from_value string, to_value string, persons long, from_date date, to_date date"


def report_location(cfg: CdpConfig, as_of: date) -> str:
    return f"{cfg.resolve(cfg.reports.output_dir).rstrip('/')}/report-{as_of.isoformat()}.html"


def html_present(ctx: RunContext) -> bool:
    """Whether the HTML report of the context's as-of date is where the stage writes it."""
    return text_exists(report_location(ctx.cfg, ctx.as_of), ctx.cfg.object_store)


def _customers(ctx: RunContext) -> DataFrame:
    customers = ctx.read(PERSON_SCORES).where(F.col("orders_total_count") > 0)
    if ctx.exists(CLV):
        customers = customers.join(clv_tiers(ctx.read(CLV), ctx.cfg.reports.clv_tiers), "person_id", "left")
    if ctx.exists(PERSON_PERSONAS):
        customers = customers.join(ctx.read(PERSON_PERSONAS).select("person_id", "persona_name"), "person_id", "left")
    return customers


def state_movement(spark: SparkSession, ctx: RunContext) -> DataFrame:
    """Movement of each history column between the previous as-of date in the history and this one."""
    empty = spark.createDataFrame([], MOVEMENT_SCHEMA)
    if not ctx.exists(STATE_HISTORY):
        return empty
    history = ctx.read(STATE_HISTORY).where(F.col("valid_from") <= F.lit(ctx.as_of))
    previous = history.where(F.col("valid_from") < F.lit(ctx.as_of)).agg(F.max("valid_from")).first()
    if previous is None or previous[0] is None:
        return empty
    frames = [movement(history, column, previous[0], ctx.as_of).select(
        F.lit(column).alias("state"), F.coalesce("from_value", F.lit("(none)")).alias("from_value"),
        F.coalesce("to_value", F.lit("(none)")).alias("to_value"), F.col("persons").cast("long"),
        F.lit(previous[0]).alias("from_date"), F.lit(ctx.as_of).alias("to_date"))
        for column in ctx.cfg.scores.history_columns]
    return reduce(DataFrame.unionByName, frames, empty)


def report_tables(spark: SparkSession, ctx: RunContext, cfg: CdpConfig,
                  cached: list[DataFrame]) -> dict[str, DataFrame]:
    """The report tables (lazy); frames persisted on the way are added to ``cached``."""
    if not ctx.exists(PERSON_SCORES):
        raise StageError(f"{PERSON_SCORES} does not exist; run the score stage first")
    customers = _customers(ctx).persist()
    cached.append(customers)
    groupings = [c for c in ("rfm_segment", "hibernation_state", "clv_tier", "persona_name") if c in customers.columns]
    tables = {
        "report_segment_metrics": reduce(DataFrame.unionByName,
                                         [segment_metrics(customers, grouping) for grouping in groupings]),
        "report_rfm_grid": rfm_grid(customers),
        "report_state_movement": state_movement(spark, ctx),
    }
    if ctx.exists(PERSONA_MODEL):
        tables["report_persona_heatmap"] = persona_heatmap(ctx.read(PERSONA_MODEL))
    events_table = silver_of(cfg.reports.events_entity)
    if cfg.reports.funnels and ctx.exists(events_table):
        local_day = F.to_date(F.from_utc_timestamp(F.col(cfg.reports.event_ts_column), cfg.scores.business_timezone))
        events = ctx.read(events_table).where(local_day <= F.lit(ctx.as_of))
        tables["report_funnel"] = reduce(DataFrame.unionByName, [
            funnel(events, ctx.read(PERSON_REGISTRY), spec, cfg.reports.event_type_column, cfg.reports.event_ts_column,
                   cfg.reports.anonymous_id_column) for spec in cfg.reports.funnels])
    elif cfg.reports.funnels:
        log.warning("funnels skipped: %s does not exist", events_table)
    bought = purchase_facts(ctx, cfg)
    orders = order_products(bought.facts, bought.lines).persist()
    cached.append(orders)
    tables["report_repeat_purchase"] = repeat_purchase_timing(bought.categories)
    tables["report_next_order_products"] = next_order_products(orders, cfg.reports.top_products, cfg.reports.min_orders)
    tables["report_same_cart_products"] = same_cart_products(orders, cfg.reports.top_products, cfg.reports.min_orders)
    return tables


def operations_views(ctx: RunContext, cfg: CdpConfig) -> dict[str, DataFrame | None]:
    """The report's ingestion and quality sections: the last ingest run per source, quarantined rows by
    reason, each table's last validation. Read outside the run's lineage (``ctx.store``): validate runs after
    report, so a rerun that only validated again does not make the report stale for the stage's reuse check."""
    store = ctx.store
    log_rows = store.read(INGESTION_LOG) if store.exists(INGESTION_LOG) else None
    entities = dict.fromkeys(s.entity for s in cfg.all_sources().values())
    quarantines = {e: store.read(quarantine_of(e)) for e in entities if store.exists(quarantine_of(e))}
    quality = (quality_summary(store.read(QUALITY_RESULTS), store.read(PUBLISHED) if store.exists(PUBLISHED) else None)
               if store.exists(QUALITY_RESULTS) else None)
    return {"ingestion": ingestion_summary(log_rows) if log_rows is not None else None,
            "quarantine_reasons": quarantine_reasons(quarantines), "quality": quality}


def headlines(ctx: RunContext, views: dict[str, DataFrame | None]) -> DataFrame:
    """This report's figures beside those of the newest earlier as-of date in gold.report_headlines (which
    keeps one set of figures per as-of date)."""
    table = report_table("report_headlines")
    previous = None
    if ctx.exists(table):
        earlier = ctx.read(table).where(F.col("as_of") < F.lit(ctx.as_of))
        newest = earlier.agg(F.max("as_of")).first()
        if newest is not None and newest[0] is not None:
            previous = earlier.where(F.col("as_of") == F.lit(newest[0]))
    current = headline_figures(ctx.read(PERSON_SCORES), views["ingestion"], views["quality"])
    return headlines_with_change(current, previous)


def product_names(ctx: RunContext) -> dict[str, str]:
    """product id -> name from silver.products, when it has names."""
    products = silver_of("products")  # as the score stage reads the catalog
    if not ctx.exists(products):
        return {}
    catalog = ctx.read(products)
    if "name" not in catalog.columns:
        return {}
    rows = catalog.where(F.col("name").isNotNull()).select("product_id", "name").collect()
    return {r["product_id"]: r["name"] for r in rows}


@stage
def run(spark: SparkSession, cfg: CdpConfig, ctx: RunContext) -> dict[str, int]:
    collected: dict[str, pd.DataFrame | None] = {}
    counts: dict[str, int] = {}
    cached: list[DataFrame] = []
    views = operations_views(ctx, cfg)
    tables = {"report_headlines": headlines(ctx, views), **report_tables(spark, ctx, cfg, cached)}
    for name, frame in tables.items():
        dated = frame.withColumn("as_of", F.lit(ctx.as_of))
        if name == "report_headlines":  # one set of figures per as-of date
            local = dated.localCheckpoint()
            written = ctx.store.merge(report_table(name), local, keys=["metric", "as_of"])
            collected[name] = local.drop("as_of").toPandas()
        else:  # a few rows each: computed once, on the driver for the page and written from there
            rows = dated.toArrow()
            written = ctx.store.overwrite_arrow(report_table(name), rows, dated.schema)
            collected[name] = rows.drop_columns(["as_of"]).to_pandas()
        ctx.wrote(report_table(name), written.version)
        counts[name] = written.rows_written
    for frame in cached:
        frame.unpersist()
    collected["headlines"] = collected.pop("report_headlines")
    for name in ("ingestion", "quarantine_reasons", "quality"):
        view = views[name]
        collected[name] = view.toPandas() if view is not None else None
    page = html.render(collected, "cdp-spark report", f"as of {ctx.as_of} · run {ctx.run_id}",
                       product_names(ctx))
    target = f"{cfg.resolve(cfg.reports.output_dir).rstrip('/')}/report-{ctx.as_of.isoformat()}.html"
    location = write_text(target, page, cfg.object_store)
    ctx.counts["report"] = counts
    record_manifest(spark, ctx, "report", "succeeded")
    ctx.counts["report_file"] = location
    log.info("report written to %s", location)
    return counts
