"""Product recommendations from purchase co-occurrence (Dynamics CI "people who bought X also bought Y").

``recommendations(facts, lines, settings)``
    in:  order facts (person_id, order_id, order_ts, is_purchase), order lines (order_id, product_id)
    out: (person_id, rank, product_id, score): per person the ``top_n`` products they have not bought,
         scored by the number of customers who bought both the candidate and one of the person's products
         (summed over the person's products; pairs with fewer than ``min_co_buyers`` common buyers are
         ignored). Ties: higher score, then product id. Each person's ``max_products_per_person`` most
         recent distinct products are considered, which bounds the pair count.

The scoring is a sparse matrix product, persons x products (owned) times products x products
(co-buyers), done per batch of persons in a vectorised pandas function with scipy when the pair table
has at most ``max_in_memory_pairs`` rows (it is broadcast), else as a Spark join of owned products with
the pairs. Both give the same rows.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession, Window
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


RECOMMENDATION_SCHEMA = "person_id string, rank int, product_id string, score long"


def scored_by_join(owned: DataFrame, pairs: DataFrame, top_n: int) -> DataFrame:
    """Spark join of owned products (person_id, product_id) with the pairs -> the top ``top_n`` rows."""
    scored = (owned.withColumnRenamed("product_id", "product_a").join(pairs, "product_a")
              .groupBy("person_id", F.col("product_b").alias("product_id"))
              .agg(F.sum("co_buyers").cast("long").alias("score"))
              .join(owned, ["person_id", "product_id"], "left_anti"))
    ranked = scored.withColumn("rank", F.row_number().over(
        Window.partitionBy("person_id").orderBy(F.col("score").desc(), "product_id")))
    return ranked.where(F.col("rank") <= top_n).select("person_id", F.col("rank").cast("int"), "product_id", "score")


def top_products(person_ids: np.ndarray, owned_lists: pd.Series, product_ids: np.ndarray, co_buyers,
                 top_n: int) -> pd.DataFrame:
    """One batch of persons: (person_id, rank, product_id, score) from their owned products and the sparse
    co-buyer matrix over ``product_ids`` (sorted, so index order is product id order)."""
    from scipy.sparse import csr_matrix

    lengths = owned_lists.map(len).to_numpy()
    flat = np.concatenate(owned_lists.to_numpy()) if lengths.sum() else np.array([], dtype=object)
    columns = pd.Index(product_ids).get_indexer(flat)
    rows = np.repeat(np.arange(len(person_ids)), lengths)
    paired = columns >= 0  # products without any pair add nothing
    owned = csr_matrix((np.ones(paired.sum(), dtype=np.int64), (rows[paired], columns[paired])),
                       shape=(len(person_ids), len(product_ids)))
    scores = owned @ co_buyers
    scores = (scores - scores.multiply(owned)).tocoo()  # owned products are not recommended
    candidates = pd.DataFrame({"row": scores.row, "column": scores.col, "score": scores.data})
    candidates = candidates[candidates["score"] > 0].sort_values(["row", "score", "column"],
                                                                  ascending=[True, False, True])
    candidates["rank"] = candidates.groupby("row").cumcount() + 1
    best = candidates[candidates["rank"] <= top_n]
    return pd.DataFrame({"person_id": person_ids[best["row"].to_numpy()],
                         "rank": best["rank"].to_numpy(dtype=np.int32),
                         "product_id": product_ids[best["column"].to_numpy()],
                         "score": best["score"].to_numpy(dtype=np.int64)})


def scored_in_memory(spark: SparkSession, owned: DataFrame, pairs: pd.DataFrame, top_n: int) -> DataFrame:
    """The pairs as a broadcast sparse matrix; owned products collected per person and scored per batch."""
    from scipy.sparse import csr_matrix

    product_ids = np.sort(pd.unique(pd.concat([pairs["product_a"], pairs["product_b"]])).astype(object))
    index = pd.Index(product_ids)
    matrix = csr_matrix((pairs["co_buyers"].to_numpy(dtype=np.int64),
                         (index.get_indexer(pairs["product_a"]), index.get_indexer(pairs["product_b"]))),
                        shape=(len(product_ids), len(product_ids)))
    shared = spark.sparkContext.broadcast((product_ids, matrix))

    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        ids, co_buyers = shared.value
        for batch in batches:
            yield top_products(batch["person_id"].to_numpy(dtype=object), batch["products"], ids, co_buyers, top_n)

    per_person = owned.groupBy("person_id").agg(F.collect_list("product_id").alias("products"))
    return per_person.mapInPandas(score, RECOMMENDATION_SCHEMA)


def recommendations(facts: DataFrame, lines: DataFrame, settings: RecommendationSettings) -> DataFrame:
    owned = person_products(facts, lines, settings.max_products_per_person).persist()
    pairs = co_occurrence(owned, settings.min_co_buyers).persist()
    if pairs.count() > settings.max_in_memory_pairs:
        return scored_by_join(owned, pairs, settings.top_n)
    local_pairs = pairs.toPandas()
    pairs.unpersist()
    return scored_in_memory(facts.sparkSession, owned, local_pairs, settings.top_n)
