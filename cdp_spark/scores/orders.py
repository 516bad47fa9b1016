"""Order facts and the first scores of the library (DESIGN §5).

``order_facts(orders, registry, stores, timezone, as_of, ...)``
    in:  silver orders (order_id, <customer source>, <customer key>, store_id, channel, order_ts,
         gross_amount, discount_amount), registry (system, source_key, person_id), stores (store_id, name)
    out: person_id, order_id, order_date (business time zone), store_id, store_name, channel,
         net_amount (gross - discount), is_purchase (net_amount > 0); only orders dated on or before as_of
         and linked to a person.
``basic_scores(persons, facts, as_of)``
    out: person_id, as_of, orders_total_count, orders_total_amount, orders_average_value,
         days_since_last_order, days_since_first_order, favourite_store, active_customer

Refunds (net amount <= 0) are not purchases: they count in no score. Favourite store: most orders,
then the most recent order, then the store name.
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F


def order_facts(orders: DataFrame, registry: DataFrame, stores: DataFrame, timezone: str, as_of: date,
                customer_source: str = "customer_source", customer_key: str = "customer_key") -> DataFrame:
    linked = orders.join(
        registry.select(F.col("system").alias(customer_source), F.col("source_key").alias(customer_key),
                        "person_id"),
        [customer_source, customer_key])
    net = (F.coalesce(F.col("gross_amount"), F.lit(0)) - F.coalesce(F.col("discount_amount"), F.lit(0)))
    local_date = F.to_date(F.from_utc_timestamp(F.col("order_ts"), timezone))
    return (linked.join(stores.select("store_id", F.col("name").alias("store_name")), "store_id", "left")
            .select("person_id", "order_id", local_date.alias("order_date"), "order_ts", "store_id",
                    F.coalesce("store_name", "store_id").alias("store_name"), "channel",
                    net.cast("decimal(14,2)").alias("net_amount"))
            .withColumn("is_purchase", F.col("net_amount") > 0)
            .where(F.col("order_date") <= F.lit(as_of)))


def favourite_store(facts: DataFrame) -> DataFrame:
    """(person_id, favourite_store): most purchase orders, then most recent order, then name."""
    per_store = (facts.where("is_purchase").groupBy("person_id", "store_name")
                 .agg(F.count("*").alias("orders"), F.max("order_ts").alias("last_ts")))
    ranked = Window.partitionBy("person_id").orderBy(F.col("orders").desc(), F.col("last_ts").desc(),
                                                     F.col("store_name"))
    return (per_store.withColumn("rank", F.row_number().over(ranked)).where("rank = 1")
            .select("person_id", F.col("store_name").alias("favourite_store")))


def basic_scores(persons: DataFrame, facts: DataFrame, as_of: date) -> DataFrame:
    purchases = facts.where("is_purchase")
    aggregates = purchases.groupBy("person_id").agg(
        F.count("*").alias("orders_total_count"),
        F.sum("net_amount").cast("decimal(16,2)").alias("orders_total_amount"),
        F.max("order_date").alias("last_order_date"),
        F.min("order_date").alias("first_order_date"))
    as_of_lit = F.lit(as_of)
    return (persons.select("person_id").distinct()
            .join(aggregates, "person_id", "left")
            .join(favourite_store(facts), "person_id", "left")
            .select(
                "person_id", as_of_lit.alias("as_of"),
                F.coalesce("orders_total_count", F.lit(0)).cast("long").alias("orders_total_count"),
                F.coalesce("orders_total_amount", F.lit(0)).cast("decimal(16,2)").alias("orders_total_amount"),
                F.round(F.col("orders_total_amount") / F.col("orders_total_count"), 2).cast("decimal(16,2)")
                .alias("orders_average_value"),
                F.datediff(as_of_lit, "last_order_date").alias("days_since_last_order"),
                F.datediff(as_of_lit, "first_order_date").alias("days_since_first_order"),
                "favourite_store",
                (F.coalesce("orders_total_count", F.lit(0)) > 0).alias("active_customer")))
