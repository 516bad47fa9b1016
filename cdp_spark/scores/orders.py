"""Order facts: the per-order view every score is computed from (docs/design.md §5).

``order_facts(orders, registry, stores, timezone, as_of, ...)``
    in:  silver orders (order_id, <customer source>, <customer key>, store_id, channel, order_ts,
         gross_amount, discount_amount), registry (system, source_key, person_id), stores (store_id, name)
    out: person_id, order_id, order_date (business time zone), order_ts, store_id, store_name, channel,
         net_amount (gross - discount), gross_amount, discount_amount, is_purchase (net_amount > 0); only
         orders dated on or before as_of and linked to a person; hash-partitioned by person_id into the
         session's shuffle partitions and sorted by (person_id, store_name) within them, so the per-person
         aggregations and joins downstream (the score library, CLV, the report) shuffle none of it again once
         it is persisted, and aggregate it as it streams by (docs/design.md §5, "Layout of the order facts").

``order_items(items, products)``: (order_id, category, quantity) for every order line.

``category_orders(facts, items)``
    in:  order facts (person_id, order_id, order_ts, order_date, is_purchase), order lines (order_id,
         category, quantity)
    out: person_id, category, orders (purchases with a line of the category), last_ts (the latest such
         purchase), quantity (the lines' quantities), order_days (sorted distinct local dates of those
         purchases); one row per person and category of their purchases, null category for lines without one.
         Hash-partitioned by person_id as the facts are, sorted by (person_id, category) within partitions.
         Read by the score library, the personas' category matrix and the report's repeat-purchase timing.
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import DataFrame
from pyspark.sql import functions as F


def _person_partitions(frame: DataFrame) -> int:
    """The session's shuffle partitions. Partitioned by person_id into that many, a frame lines up with every
    other shuffle on person_id, so joins and aggregations on it keep its partitioning. A fixed number, which
    adaptive execution does not coalesce, so the partitioning stays the one those other shuffles produce."""
    return int(frame.sparkSession.conf.get("spark.sql.shuffle.partitions") or 1)


def order_facts(orders: DataFrame, registry: DataFrame, stores: DataFrame, timezone: str, as_of: date,
                customer_source: str = "customer_source", customer_key: str = "customer_key") -> DataFrame:
    linked = orders.join(
        registry.select(F.col("system").alias(customer_source), F.col("source_key").alias(customer_key),
                        "person_id"),
        [customer_source, customer_key])
    net = (F.coalesce(F.col("gross_amount"), F.lit(0)) - F.coalesce(F.col("discount_amount"), F.lit(0)))
    local_date = F.to_date(F.from_utc_timestamp(F.col("order_ts"), timezone))
    facts = (linked.join(stores.select("store_id", F.col("name").alias("store_name")), "store_id", "left")
             .select("person_id", "order_id", local_date.alias("order_date"), "order_ts", "store_id",
                     F.coalesce("store_name", "store_id").alias("store_name"), "channel",
                     net.cast("decimal(14,2)").alias("net_amount"),
                     F.coalesce("gross_amount", F.lit(0)).cast("decimal(14,2)").alias("gross_amount"),
                     F.coalesce("discount_amount", F.lit(0)).cast("decimal(14,2)").alias("discount_amount"))
             .withColumn("is_purchase", F.col("net_amount") > 0)
             .where(F.col("order_date") <= F.lit(as_of)))
    return (facts.repartition(_person_partitions(orders), "person_id")
            .sortWithinPartitions("person_id", "store_name"))


def order_items(items: DataFrame, products: DataFrame) -> DataFrame:
    return (items.join(products.select("product_id", "category"), "product_id", "left")
            .select("order_id", "category", F.coalesce("quantity", F.lit(0)).alias("quantity")))


def category_orders(facts: DataFrame, items: DataFrame) -> DataFrame:
    purchases = facts.where("is_purchase").select("person_id", "order_id", "order_ts", "order_date")
    per_order = (purchases.join(items, "order_id").groupBy("person_id", "category", "order_id")
                 .agg(F.sum("quantity").alias("quantity"), F.max("order_ts").alias("order_ts"),
                      F.max("order_date").alias("order_date")))
    # the join leaves the lines partitioned by order; one shuffle by person serves this aggregation and the
    # per-person ones that read the result, and the sort lets both stream (docs/design.md §5)
    by_person = per_order.repartition(_person_partitions(facts), "person_id").sortWithinPartitions(
        "person_id", "category")
    return by_person.groupBy("person_id", "category").agg(
        F.count("*").alias("orders"), F.max("order_ts").alias("last_ts"), F.sum("quantity").alias("quantity"),
        F.array_sort(F.collect_set("order_date")).alias("order_days"))
