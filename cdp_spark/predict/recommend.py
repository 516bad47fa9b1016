"""Product recommendations from purchase co-occurrence (Dynamics CI "people who bought X also bought Y").

``recommendations(facts, lines, settings)``
    in:  order facts (person_id, order_id, order_ts, is_purchase), order lines (order_id, product_id)
    out: (person_id, rank, product_id, score): per person the ``top_n`` products they have not bought,
         scored by the number of customers who bought both the candidate and one of the person's products
         (summed over the person's products; pairs with fewer than ``min_co_buyers`` common buyers are
         ignored). Ties: higher score, then product id. Each person's ``max_products_per_person`` most
         recent distinct products are considered, which bounds the pair count.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from cdp_spark.config import RecommendationSettings


def person_products(facts: DataFrame, lines: DataFrame, max_products: int) -> DataFrame:
    """(person_id, product_id): distinct products bought, the person's most recent ``max_products``."""
    bought = (facts.where("is_purchase").select("person_id", "order_id", "order_ts")
              .join(lines.select("order_id", "product_id"), "order_id")
              .groupBy("person_id", "product_id").agg(F.max("order_ts").alias("last_ts")))
    recent = Window.partitionBy("person_id").orderBy(F.col("last_ts").desc(), "product_id")
    return (bought.withColumn("_n", F.row_number().over(recent)).where(F.col("_n") <= max_products)
            .select("person_id", "product_id"))


def co_occurrence(owned: DataFrame, min_co_buyers: int) -> DataFrame:
    """(product_id, other_id, co_buyers) for both orientations of every pair bought by one customer."""
    left, right = owned.withColumnRenamed("product_id", "product_a"), owned.withColumnRenamed("product_id", "product_b")
    return (left.join(right, "person_id").where(F.col("product_a") != F.col("product_b"))
            .groupBy("product_a", "product_b").agg(F.count("*").alias("co_buyers"))
            .where(F.col("co_buyers") >= min_co_buyers))


def recommendations(facts: DataFrame, lines: DataFrame, settings: RecommendationSettings) -> DataFrame:
    owned = person_products(facts, lines, settings.max_products_per_person).persist()
    pairs = co_occurrence(owned, settings.min_co_buyers)
    scored = (owned.withColumnRenamed("product_id", "product_a").join(pairs, "product_a")
              .groupBy("person_id", F.col("product_b").alias("product_id"))
              .agg(F.sum("co_buyers").cast("long").alias("score"))
              .join(owned, ["person_id", "product_id"], "left_anti"))
    ranked = scored.withColumn("rank", F.row_number().over(
        Window.partitionBy("person_id").orderBy(F.col("score").desc(), "product_id")))
    return ranked.where(F.col("rank") <= settings.top_n).select("person_id", F.col("rank").cast("int"), "product_id",
                                                                "score")
