"""The score library of the seed documents, with the definitions fixed in docs/design.md §5.

``score_library(persons, facts, categories, as_of, lifecycle)``
    persons:    person_id
    facts:      order facts (person_id, order_id, order_date, order_ts, store_name, channel, net_amount,
                gross_amount, discount_amount, is_purchase) as built by ``scores.orders.order_facts``
    categories: (person_id, category, orders, last_ts, quantity) per person and category of their
                purchases, null category included, as built by ``scores.orders.category_orders``
    out:     one row per person with every score in ``SCORES`` (column names as listed there)

Purchases are orders with a net amount > 0 (refunds count in no score). Ties (favourite store, top-3
categories): most orders, then the most recent order, then the name.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from cdp_spark.config import LifecycleSettings


@dataclass(frozen=True)
class Score:
    column: str
    name: str
    definition: str
    type: str


SCORES: tuple[Score, ...] = (
    Score("purchase_timing_deviation", "Purchase timing deviation",
          "recent | approaching | late | significantly_late from the days since the last order t, the mean gap mu "
          "between distinct order days and sigma = max(sample std, 0.25 mu) (0.5 mu with 2 order days): recent "
          "t < 0.5mu; approaching < mu; late < mu + 2 sigma; else significantly_late. one_order / no_order "
          "for customers with one order day / none", "string"),
    Score("all_ordered_categories", "All ordered product categories", "sorted distinct categories ordered",
          "array<string>"),
    Score("top3_categories", "Top 3 product categories",
          "the three categories in most orders (ties: most recent order, then name)", "array<string>"),
    Score("distinct_categories_count", "Nb of distinct product categories", "number of distinct categories", "int"),
    Score("favourite_store", "Favourite store", "store with most orders (ties: most recent, then name)", "string"),
    Score("all_stores", "All stores with 1+ order", "sorted distinct stores with at least one order",
          "array<string>"),
    Score("distinct_stores_count", "Number of distinct stores with 1+ order", "number of distinct stores", "int"),
    Score("first_order_store", "First order store", "store of the earliest order (ties: order id)", "string"),
    Score("last_order_store", "Last order store", "store of the latest order (ties: order id)", "string"),
    Score("multi_buyer", "Segmentation - Multi-buyer", "2 or more orders (docs/design.md §5)", "boolean"),
    Score("multi_category", "Segmentation - Multi-category", "2 or more categories", "boolean"),
    Score("new_customer", "Segmentation - New customer", "exactly 1 order", "boolean"),
    Score("regular_customer", "Segmentation - Regular customer", "3 or more orders", "boolean"),
    Score("omnichannel", "Segmentation - Omnichannel", "orders from 2 or more channels", "boolean"),
    Score("multi_store", "Segmentation - Multi-store", "orders in 2 or more stores", "boolean"),
    Score("active_customer", "Segmentation - Active customer", "at least one order", "boolean"),
    Score("orders_total_amount", "Orders - Total amount", "sum of net amounts (gross - discount)", "decimal"),
    Score("orders_average_value", "Orders - Average value", "total amount / total count, 2 decimals", "decimal"),
    Score("orders_total_count", "Orders - Total count", "number of orders", "long"),
    Score("orders_total_items", "Orders - Total number of items", "sum of line quantities", "long"),
    Score("orders_average_items", "Orders - Average items per order", "total items / total count, 2 decimals",
          "double"),
    Score("orders_average_days_between", "Orders - Average time between orders",
          "mean gap in days between consecutive distinct order days; null below 2 order days", "double"),
    Score("discounted_orders_count", "Orders - Number of discounted orders", "orders with a discount > 0", "long"),
    Score("discounted_orders_rate", "Orders - Rate of discounted orders", "discounted orders / orders, 4 decimals",
          "double"),
    Score("average_discount_rate", "Orders - Average discount rate",
          "mean over orders of discount / gross, 4 decimals", "double"),
    Score("days_since_last_order", "Days since last order", "as-of date - last order date", "int"),
    Score("days_since_first_order", "Days since first order", "as-of date - first order date", "int"),
    Score("rfm_recency", "RFM - Recency score", "1..groups from the stored cut points of days since the last "
          "order (fewer days score higher; equal values share a score)", "int"),
    Score("rfm_frequency", "RFM - Frequency score", "1..groups from the cut points of the order count", "int"),
    Score("rfm_monetary", "RFM - Monetary score", "1..groups from the cut points of the total amount", "int"),
    Score("rfm_score", "RFM", "recency, frequency and monetary scores side by side, e.g. 545", "string"),
    Score("rfm_segment", "RFM segment", "first rule of scores.rfm.segments that holds (Champions ... Lost)",
          "string"),
    Score("hibernation_state", "Hibernation state (Pleasepoint)",
          "active < inactive_after <= inactive < hibernating_after <= hibernating <= lost_after < lost, on days "
          "since the last order (defaults 182 / 365 / 730); no_order without orders", "string"),
)


def _negated_micros(ts: Column) -> Column:
    """Later timestamps sort first: for ``min_by`` / ascending sorts that want the most recent first."""
    return -F.unix_micros(ts)


def timing_label(days_since_last: Column, mean_gap: Column, std_gap: Column, order_days: Column) -> Column:
    sigma = F.when(order_days == 2, 0.5 * mean_gap).otherwise(
        F.greatest(F.coalesce(std_gap, F.lit(0.0)), 0.25 * mean_gap))
    return (F.when(order_days.isNull() | (order_days == 0), F.lit("no_order"))
            .when(order_days == 1, F.lit("one_order"))
            .when(days_since_last < 0.5 * mean_gap, F.lit("recent"))
            .when(days_since_last < mean_gap, F.lit("approaching"))
            .when(days_since_last < mean_gap + 2 * sigma, F.lit("late"))
            .otherwise(F.lit("significantly_late")))


def _size_or_zero(column: str) -> Column:
    """The array's size as an int, 0 for a null array (``size(null)`` is -1 in Spark, not null)."""
    return F.when(F.col(column).isNull(), F.lit(0)).otherwise(F.size(column)).cast("int")


def _sum_of_squared_gaps(days: Column) -> Column:
    """Sum of the squared day gaps between consecutive dates of a sorted date array (an exact integer)."""
    pairs = F.greatest(F.size(days) - 1, F.lit(0))
    gaps = F.zip_with(F.slice(days, 2, pairs), F.slice(days, 1, pairs),
                      lambda later, earlier: F.datediff(later, earlier).cast("long"))
    return F.aggregate(gaps, F.lit(0).cast("long"), lambda acc, gap: acc + gap * gap)


def score_library(persons: DataFrame, facts: DataFrame, by_category: DataFrame, as_of: date,
                  lifecycle: LifecycleSettings) -> DataFrame:
    purchases = facts.where("is_purchase")
    as_of_lit = F.lit(as_of)
    by_time = F.struct("order_ts", "order_id")
    per_order = purchases.groupBy("person_id").agg(
        F.count("*").alias("orders_total_count"),
        F.sum("net_amount").cast("decimal(16,2)").alias("orders_total_amount"),
        F.max("order_date").alias("last_order_date"), F.min("order_date").alias("first_order_date"),
        F.array_sort(F.collect_set("order_date")).alias("order_days_list"),
        F.array_sort(F.collect_set("store_name")).alias("all_stores"),
        # the size of a collected set, not COUNT(DISTINCT): distinct aggregates would expand every row
        F.size(F.collect_set("channel")).alias("channels"),
        F.sum(F.when(F.col("discount_amount") > 0, 1).otherwise(0)).alias("discounted_orders_count"),
        F.avg(F.when(F.col("gross_amount") > 0, F.col("discount_amount") / F.col("gross_amount"))).alias("disc_rate"),
        F.min_by("store_name", by_time).alias("first_order_store"),
        F.max_by("store_name", by_time).alias("last_order_store"))
    # k gaps between the distinct order days; their sum telescopes to last - first
    k = F.size("order_days_list") - 1
    total = F.datediff("last_order_date", "first_order_date").cast("long")
    squares = _sum_of_squared_gaps(F.col("order_days_list"))
    # sample variance from exact integer sums: (k * sum(g^2) - sum(g)^2) / (k (k - 1))
    per_order = per_order.select(
        "*", (k + 1).alias("order_days"), F.when(k > 0, total / k).alias("mean_gap"),
        F.when(k > 1, F.sqrt((k * squares - total * total) / (k * (k - 1)))).alias("std_gap")
    ).drop("order_days_list")
    # favourite store: most orders, then the most recent order, then the name
    favourite = (purchases.groupBy("person_id", "store_name")
                 .agg(F.count("*").alias("n"), F.max("order_ts").alias("last_ts"))
                 .groupBy("person_id").agg(F.min_by("store_name", F.struct(
                     -F.col("n"), _negated_micros(F.col("last_ts")), F.col("store_name"))).alias("favourite_store")))
    # top 3: most orders, then the most recent order, then the name; the items of every line, null
    # categories included
    ranked = F.when(F.col("category").isNotNull(), F.struct(
        -F.col("orders"), _negated_micros(F.col("last_ts")), F.col("category").alias("category")))
    categories = by_category.groupBy("person_id").agg(
        F.sum("quantity").cast("long").alias("orders_total_items"),
        F.array_sort(F.collect_list("category")).alias("all_ordered_categories"),
        F.transform(F.array_sort(F.collect_list(ranked)), lambda s: s["category"]).alias("_by_rank"))
    joined = persons.select("person_id").distinct()
    for frame in (per_order, favourite, categories):
        joined = joined.join(frame, "person_id", "left")
    count = F.coalesce(F.col("orders_total_count"), F.lit(0)).cast("long")
    since_last = F.datediff(as_of_lit, "last_order_date")
    categories_n = _size_or_zero("all_ordered_categories")
    items_n = F.coalesce(F.col("orders_total_items"), F.lit(0)).cast("long")
    stores_n = _size_or_zero("all_stores")
    hibernation = (F.when(count == 0, F.lit("no_order"))
                   .when(since_last < lifecycle.inactive_after_days, F.lit("active"))
                   .when(since_last < lifecycle.hibernating_after_days, F.lit("inactive"))
                   .when(since_last <= lifecycle.lost_after_days, F.lit("hibernating"))
                   .otherwise(F.lit("lost")))
    return joined.select(
        "person_id", as_of_lit.alias("as_of"),
        timing_label(since_last, F.col("mean_gap"), F.col("std_gap"), F.col("order_days"))
        .alias("purchase_timing_deviation"),
        F.coalesce("all_ordered_categories", F.array().cast("array<string>")).alias("all_ordered_categories"),
        F.coalesce(F.slice("_by_rank", 1, 3), F.array().cast("array<string>")).alias("top3_categories"),
        categories_n.alias("distinct_categories_count"),
        "favourite_store",
        F.coalesce("all_stores", F.array().cast("array<string>")).alias("all_stores"),
        stores_n.alias("distinct_stores_count"),
        "first_order_store", "last_order_store",
        (count >= 2).alias("multi_buyer"), (categories_n >= 2).alias("multi_category"),
        (count == 1).alias("new_customer"), (count >= 3).alias("regular_customer"),
        (F.coalesce(F.col("channels"), F.lit(0)) >= 2).alias("omnichannel"), (stores_n >= 2).alias("multi_store"),
        (count >= 1).alias("active_customer"),
        F.coalesce("orders_total_amount", F.lit(0)).cast("decimal(16,2)").alias("orders_total_amount"),
        F.round(F.col("orders_total_amount") / count, 2).cast("decimal(16,2)").alias("orders_average_value"),
        count.alias("orders_total_count"),
        items_n.alias("orders_total_items"),
        F.round(items_n / count, 2).alias("orders_average_items"),
        F.when(F.col("order_days") >= 2, F.round("mean_gap", 2)).alias("orders_average_days_between"),
        F.coalesce("discounted_orders_count", F.lit(0)).cast("long").alias("discounted_orders_count"),
        F.when(count > 0, F.round(F.col("discounted_orders_count") / count, 4)).alias("discounted_orders_rate"),
        F.round("disc_rate", 4).cast("double").alias("average_discount_rate"),
        since_last.alias("days_since_last_order"),
        F.datediff(as_of_lit, "first_order_date").alias("days_since_first_order"),
        hibernation.alias("hibernation_state"))
