"""The report tables: small aggregates over the gold tables, for the HTML report and for analysts.

``segment_metrics(customers, grouping)``
    in:  one row per customer with at least one order: person_id, <grouping>, orders_total_count,
         orders_total_amount, days_since_last_order
    out: grouping, segment, customers, orders, average_ticket, average_recency_days, total_spend,
         orders_per_customer, spend_per_customer, customers_share, revenue_share (Pleasepoint's 9 metrics)
``clv_tiers(clv, tiers)``: person_id, clv_tier ("top 10%", "10-30%", ...) by predicted CLV
``rfm_grid(scores)``: rfm_recency, rfm_frequency, customers, average_amount
``persona_heatmap(model)``: persona_id, persona_name, persons, category, share, level
``funnel(events, registry, spec, ...)``: funnel, step_number, step, actors, customers, pct_of_first,
    pct_of_previous
``repeat_purchase_timing(categories)``: category, buyers, repeat_buyers, repeat_purchases,
    average_days_between, median_days_between (``categories`` from ``scores.orders.category_orders``)
``order_products(facts, items)``: person_id, order_id, order_ts, order_date, products (distinct, per purchase)
``next_order_products(orders, top, min_orders)``: product_id, next_product_id, orders, share, rank
``same_cart_products(orders, top, min_orders)``: product_id, other_product_id, orders, confidence,
    lift, rank (both count product pairs over the orders' product lists: :mod:`cdp_spark.pairs`)

``headline_figures(scores, ingestion, quality)``: persons, buyers, revenue, files and quarantined rows
    of the last ingest run, tables passing their suite, as (metric, value) rows
``headlines_with_change(current, previous)``: metric, value, previous_value, previous_as_of
``ingestion_summary(ingestion_log)``: per source, the last ingest run's files, rejected files, rows read,
    accepted and quarantined
``quarantine_reasons(quarantines)``: entity, reason, rows, over every quarantine table given
``quality_summary(results, published)``: per table, its last validated version: expectations, failed,
    warnings, published, validated_at

Shares are fractions (0..1), rounded to 4 decimals; amounts to 2.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import reduce
from itertools import pairwise

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from cdp_spark.config import FunnelSettings
from cdp_spark.pairs import pair_counts


def segment_metrics(customers: DataFrame, grouping: str) -> DataFrame:
    totals = customers.agg(F.count("*").alias("all_customers"),
                           F.sum("orders_total_amount").alias("all_spend"))
    per_segment = customers.groupBy(F.col(grouping).alias("segment")).agg(
        F.count("*").alias("customers"),
        F.sum("orders_total_count").cast("long").alias("orders"),
        F.sum("orders_total_amount").alias("total_spend"),
        F.avg("days_since_last_order").alias("recency"))
    return per_segment.crossJoin(F.broadcast(totals)).select(
        F.lit(grouping).alias("grouping"),
        F.coalesce(F.col("segment").cast("string"), F.lit("(none)")).alias("segment"),
        "customers", "orders",
        F.round(F.col("total_spend") / F.col("orders"), 2).cast("decimal(16,2)").alias("average_ticket"),
        F.round("recency", 1).alias("average_recency_days"),
        F.col("total_spend").cast("decimal(18,2)").alias("total_spend"),
        F.round(F.col("orders") / F.col("customers"), 2).alias("orders_per_customer"),
        F.round(F.col("total_spend") / F.col("customers"), 2).cast("decimal(16,2)").alias("spend_per_customer"),
        F.round(F.col("customers") / F.col("all_customers"), 4).alias("customers_share"),
        F.round(F.col("total_spend") / F.col("all_spend"), 4).cast("double").alias("revenue_share"))


def tier_labels(tiers: Sequence[float]) -> list[str]:
    bounds = [0.0, *tiers, 1.0]
    labels = [f"{round(lo * 100)}-{round(hi * 100)}%" for lo, hi in pairwise(bounds)]
    return [f"top {round(tiers[0] * 100)}%", *labels[1:]] if tiers else labels


def clv_tiers(clv: DataFrame, tiers: Sequence[float]) -> DataFrame:
    """Tier k holds the customers whose predicted CLV is above the (1 - tiers[k]) quantile and not above the
    previous tier's cut; cut points from ``approxQuantile`` (no single-partition window)."""
    labels = tier_labels(tiers)
    cuts = clv.approxQuantile("predicted_clv", [1 - t for t in tiers], 0.0001) if tiers else []
    tier = F.lit(labels[-1])
    for label, cut in reversed(list(zip(labels, cuts, strict=False))):
        tier = F.when(F.col("predicted_clv") > F.lit(cut), F.lit(label)).otherwise(tier)
    return clv.select("person_id", tier.alias("clv_tier"))


def rfm_grid(scores: DataFrame) -> DataFrame:
    return (scores.where(F.col("rfm_recency").isNotNull())
            .groupBy("rfm_recency", "rfm_frequency")
            .agg(F.count("*").alias("customers"),
                 F.round(F.avg("orders_total_amount"), 2).cast("decimal(16,2)").alias("average_amount"))
            .orderBy("rfm_recency", "rfm_frequency"))


def persona_heatmap(model: DataFrame) -> DataFrame:
    exploded = model.select("persona_id", "persona_name", "persons", F.explode("share").alias("category", "share"),
                            "levels")
    return (exploded.select("persona_id", "persona_name", "persons", "category",
                            F.round("share", 4).alias("share"), F.col("levels")[F.col("category")].alias("level"))
            .orderBy("persona_id", "category"))


def funnel(events: DataFrame, registry: DataFrame, spec: FunnelSettings, type_column: str, ts_column: str,
           anonymous_column: str | None, source_column: str = "customer_source",
           key_column: str = "customer_key") -> DataFrame:
    """Actors are persons (events linked through the registry) or anonymous visitors. Step 1 is an actor's
    first event of that type; step k is their first later event (or one at the same time) of type k after
    step k-1, within ``spec.within_days`` days of step 1; an event counts for one step only, and events
    without a time count for none. One pass: each actor's events of the funnel's types, sorted by time, are
    walked once."""
    linked = events.join(registry.select(F.col("system").alias(source_column),
                                         F.col("source_key").alias(key_column), "person_id"),
                         [source_column, key_column], "left")
    anonymous = F.concat(F.lit("anonymous:"), F.col(anonymous_column)) if anonymous_column else F.lit(None)
    names = F.array(*[F.lit(step) for step in spec.steps])
    # at equal times, the type earlier in the funnel comes first
    position = F.array_position(names, F.col(type_column))
    per_actor = (linked.where(F.col(type_column).isin(spec.steps) & F.col(ts_column).isNotNull())
                 .select(F.coalesce("person_id", anonymous).alias("actor"),
                         F.col("person_id").isNotNull().alias("known"),
                         F.struct(F.col(ts_column).alias("ts"), position.alias("position"),
                                  F.col(type_column).alias("step")).alias("event"))
                 .where(F.col("actor").isNotNull())
                 .groupBy("actor").agg(F.max("known").alias("known"),
                                       F.array_sort(F.collect_list("event")).alias("events")))
    window = F.expr(f"INTERVAL {spec.within_days} DAYS")
    start = F.struct(F.lit(0).alias("reached"), F.lit(None).cast("timestamp").alias("first_ts"))

    def walk(acc: Column, event: Column) -> Column:
        advances = ((acc["reached"] < len(spec.steps))
                    & (event["step"] == F.element_at(names, acc["reached"] + 1))
                    & (acc["first_ts"].isNull() | (event["ts"] <= acc["first_ts"] + window)))
        return F.when(advances, F.struct((acc["reached"] + 1).alias("reached"),
                                         F.coalesce(acc["first_ts"], event["ts"]).alias("first_ts"))).otherwise(acc)

    reached = per_actor.select("known", F.aggregate("events", start, walk)["reached"].alias("reached"))
    counts = (reached.where(F.col("reached") > 0)
              .select(F.explode(F.sequence(F.lit(1), F.col("reached"))).alias("step_number"), "known")
              .groupBy("step_number").agg(F.count("*").alias("actors"),
                                          F.sum(F.col("known").cast("int")).alias("customers")))
    steps = events.sparkSession.createDataFrame(list(enumerate(spec.steps, start=1)), "step_number int, step string")
    # a handful of steps: the first and the previous step's actors come from joins, not an unpartitioned window
    per_step = steps.join(counts, "step_number", "left").select(
        F.col("step_number").cast("int").alias("step_number"), "step",
        F.coalesce(F.col("actors"), F.lit(0)).cast("long").alias("actors"),
        F.coalesce("customers", F.lit(0)).cast("long").alias("customers"))
    first = per_step.where(F.col("step_number") == 1).select(F.col("actors").alias("_first"))
    previous = per_step.select((F.col("step_number") + 1).alias("step_number"), F.col("actors").alias("_previous"))
    return (per_step.crossJoin(first).join(previous, "step_number", "left").select(
        F.lit(spec.name).alias("funnel"), "step_number", "step", "actors", "customers",
        F.round(F.col("actors") / F.col("_first"), 4).alias("pct_of_first"),
        F.round(F.col("actors") / F.col("_previous"), 4).alias("pct_of_previous"))
        .orderBy("step_number"))


def order_products(facts: DataFrame, items: DataFrame) -> DataFrame:
    """(person_id, order_id, order_ts, order_date, products): the distinct products of each purchase."""
    return (facts.where("is_purchase").select("person_id", "order_id", "order_ts", "order_date")
            .join(items.where(F.col("product_id").isNotNull()).select("order_id", "product_id"), "order_id")
            .groupBy("person_id", "order_id", "order_ts", "order_date")
            .agg(F.collect_set("product_id").alias("products")))


def repeat_purchase_timing(categories: DataFrame) -> DataFrame:
    """Per category: buyers, buyers who bought it again on a later day, and the days between a buyer's
    consecutive purchase days of the category (count, average, median), from each buyer's sorted purchase
    days of the category (``order_days``): the gaps come from the array, not a window sort."""
    days = categories.where(F.col("category").isNotNull()).select("category", F.col("order_days").alias("days"))
    repeats = F.size("days") - 1
    gaps = F.zip_with(F.slice("days", F.lit(2), repeats), F.slice("days", F.lit(1), repeats), F.datediff)
    # one row per gap, or one null row for a buyer without a repeat: pos 0 or null marks each buyer once
    per_gap = days.select("category", F.posexplode_outer(gaps).alias("pos", "gap"))
    return (per_gap.groupBy("category").agg(
        F.count(F.when(F.col("pos").isNull() | (F.col("pos") == 0), 1)).alias("buyers"),
        F.count(F.when(F.col("pos") == 0, 1)).alias("repeat_buyers"),
        F.count("gap").alias("repeat_purchases"),
        F.round(F.avg("gap"), 1).alias("average_days_between"),
        F.percentile_approx("gap", 0.5, 10_000).alias("median_days_between"))
        .orderBy(F.col("repeat_buyers").desc(), "category"))


def _top_pairs(counted: DataFrame, left: str, right: str, base: DataFrame, top: int, min_orders: int) -> DataFrame:
    """counted: (left, right, orders); base: (left, base_orders). Top ``top`` per left, with share =
    orders / base_orders (unrounded)."""
    kept = counted.where(F.col("orders") >= min_orders).join(base, left)
    rank = F.row_number().over(Window.partitionBy(left).orderBy(F.col("orders").desc(), F.col(right)))
    return kept.withColumn("share", F.col("orders") / F.col("base_orders")).withColumn("rank", rank) \
        .where(F.col("rank") <= top)


def next_order_products(orders: DataFrame, top: int, min_orders: int) -> DataFrame:
    """For product A: the products in the same person's next purchase after an order with A. ``orders``
    from :func:`order_products`; the next order is the next by (order_ts, order_id)."""
    following = orders.withColumn("next_products", F.lead("products").over(
        Window.partitionBy("person_id").orderBy("order_ts", "order_id"))).where(F.col("next_products").isNotNull())
    base = (following.select(F.explode("products").alias("product_id"))
            .groupBy("product_id").agg(F.count("*").alias("base_orders")))
    counted = pair_counts(following, "products", "next_products", ("product_id", "next_product_id"))
    return (_top_pairs(counted.withColumnRenamed("rows", "orders"), "product_id", "next_product_id", base, top,
                       min_orders)
            .select("product_id", "next_product_id", F.col("orders").cast("long").alias("orders"),
                    F.round("share", 4).alias("share"),
                    F.col("rank").cast("int").alias("rank"))
            .orderBy("product_id", "rank"))


def same_cart_products(orders: DataFrame, top: int, min_orders: int) -> DataFrame:
    """Products bought in the same order (``orders`` from :func:`order_products`): orders together,
    confidence P(B | A) and lift."""
    total = orders.count()
    counted = pair_counts(orders, "products", "products", ("product_id", "other_product_id"))
    base = counted.where(F.col("product_id") == F.col("other_product_id")).select(
        "product_id", F.col("rows").alias("base_orders"))
    pairs = counted.where(F.col("product_id") != F.col("other_product_id")).withColumnRenamed("rows", "orders")
    other_base = base.select(F.col("product_id").alias("other_product_id"), F.col("base_orders").alias("other_orders"))
    return (_top_pairs(pairs, "product_id", "other_product_id", base, top, min_orders)
            .join(other_base, "other_product_id")
            .select("product_id", "other_product_id", F.col("orders").cast("long").alias("orders"),
                    F.round("share", 4).alias("confidence"),
                    F.round(F.col("share") / (F.col("other_orders") / F.lit(max(total, 1))), 4).alias("lift"),
                    F.col("rank").cast("int").alias("rank"))
            .orderBy("product_id", "rank"))


HEADLINES = ("persons", "buyers", "revenue", "files_ingested", "rows_quarantined")
"""the headline figures, in the order the report shows them"""


def headline_figures(scores: DataFrame, ingestion: DataFrame | None, quality: DataFrame | None = None,
                     ) -> DataFrame:
    """(metric, value) for ``HEADLINES``: persons and buyers (at least one order) in ``scores``, their revenue
    (sum of orders_total_amount), the files ingested and rows quarantined by the last ingest run (from
    ``ingestion``, :func:`ingestion_summary`), and with ``quality`` (:func:`quality_summary`) ``suites_passed``,
    the tables whose last validated version was published."""
    people = scores.agg(F.count(F.lit(1)).alias("persons"),
                        F.count(F.when(F.col("orders_total_count") > 0, 1)).alias("buyers"),
                        F.coalesce(F.sum("orders_total_amount"), F.lit(0)).cast("double").alias("revenue"))
    if ingestion is None:
        files = people.sparkSession.createDataFrame([(0, 0)], "files_ingested long, rows_quarantined long")
    else:
        files = ingestion.agg(F.coalesce(F.sum("files"), F.lit(0)).alias("files_ingested"),
                              F.coalesce(F.sum("rows_quarantined"), F.lit(0)).alias("rows_quarantined"))
    both = people.crossJoin(files)
    metrics = list(HEADLINES)
    if quality is not None:
        both = both.crossJoin(quality.agg(F.count(F.when(F.col("published"), 1)).alias("suites_passed")))
        metrics.append("suites_passed")
    return both.select(F.inline(F.array(*[F.struct(F.lit(m).alias("metric"), F.col(m).cast("double").alias("value"))
                                          for m in metrics])))


def headlines_with_change(current: DataFrame, previous: DataFrame | None) -> DataFrame:
    """``current`` (metric, value) with the previous report's value and as-of date (``previous``: metric,
    value, as_of; null when there is none)."""
    if previous is None:
        return current.select("metric", "value", F.lit(None).cast("double").alias("previous_value"),
                              F.lit(None).cast("date").alias("previous_as_of"))
    before = previous.select("metric", F.col("value").alias("previous_value"), F.col("as_of").alias("previous_as_of"))
    return current.join(before, "metric", "left").select("metric", "value", "previous_value", "previous_as_of")


def ingestion_summary(ingestion_log: DataFrame) -> DataFrame:
    """Per source, the last ingest run: files ingested and rejected, rows read, accepted and quarantined."""
    newest = ingestion_log.groupBy("run_id").agg(F.max("ingested_at").alias("at")).orderBy(F.col("at").desc()).limit(1)
    return (ingestion_log.join(newest.select("run_id"), "run_id").groupBy("source")
            .agg(F.count(F.when(F.col("status") == "ingested", 1)).alias("files"),
                 F.count(F.when(F.col("status") == "rejected", 1)).alias("rejected_files"),
                 F.sum("rows_read").alias("rows_read"), F.sum("rows_accepted").alias("rows_accepted"),
                 F.sum("rows_quarantined").alias("rows_quarantined"))
            .orderBy("source"))


def quarantine_reasons(quarantines: dict[str, DataFrame]) -> DataFrame | None:
    """entity, reason, rows over the given quarantine tables (entity -> its rows), most rows first."""
    frames = [rows.groupBy("reason").agg(F.count(F.lit(1)).alias("rows")).select(F.lit(entity).alias("entity"),
                                                                                   "reason", "rows")
              for entity, rows in quarantines.items()]
    if not frames:
        return None
    return reduce(DataFrame.unionByName, frames).orderBy(F.col("rows").desc(), "entity", "reason")


def quality_summary(results: DataFrame, published: DataFrame | None) -> DataFrame:
    """Per table, its last validated version: expectations checked, failed (blocking) and warnings, whether
    that version was published, when it was validated."""
    newest = results.groupBy("table_name").agg(F.max("table_version").alias("table_version"))
    last = results.join(newest, ["table_name", "table_version"])
    # a version validated twice (after a quarantine split) counts its last check
    latest = last.groupBy("table_name", "table_version").agg(F.max("validated_at").alias("validated_at"))
    checks = last.join(latest, ["table_name", "table_version", "validated_at"])
    summary = checks.groupBy("table_name", "table_version", "validated_at").agg(
        F.count(F.lit(1)).alias("expectations"),
        F.count(F.when(~F.col("success") & (F.col("action") != "warn"), 1)).alias("failed"),
        F.count(F.when(~F.col("success") & (F.col("action") == "warn"), 1)).alias("warnings"))
    if published is None:
        return summary.withColumn("published", F.lit(False)).orderBy("table_name")
    marks = published.select("table_name", "table_version", F.lit(True).alias("published")).distinct()
    return (summary.join(marks, ["table_name", "table_version"], "left")
            .withColumn("published", F.coalesce("published", F.lit(False)))
            .select("table_name", "table_version", "expectations", "failed", "warnings", "published", "validated_at")
            .orderBy("table_name"))
