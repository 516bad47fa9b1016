"""Product recommendations from purchase co-occurrence (Dynamics CI "people who bought X also bought Y").

``recommendations(facts, lines, settings)``
    in:  order facts (person_id, order_id, order_ts, is_purchase), order lines (order_id, product_id)
    out: (person_id, rank, product_id, score): per person the ``top_n`` products they have not bought,
         scored by the number of customers who bought both the candidate and one of the person's products
         (summed over the person's products; pairs with fewer than ``min_co_buyers`` common buyers are
         ignored). Ties: higher score, then product id. Each person's ``max_products_per_person`` most
         recent distinct products are considered, which bounds the pair count.

The co-buyer counts are sparse pair counts over the persons' product lists (:mod:`cdp_spark.pairs`).
The scoring is a sparse matrix product too, persons x products (owned) times products x products
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
from cdp_spark.pairs import flat_lists, pair_counts


def person_products(facts: DataFrame, lines: DataFrame, max_products: int) -> DataFrame:
    """(person_id, products): the distinct products a person bought, most recent purchase first (ties:
    product id), at most ``max_products``. One aggregation per person: the purchase lines are sorted by
    (newest first, product id) and the first occurrence of each product kept."""
    newest_first = F.coalesce(-F.unix_micros("order_ts"), F.lit(2**63 - 1))  # no timestamp: oldest
    bought = (facts.where("is_purchase").select("person_id", "order_id", "order_ts")
              .join(lines.where(F.col("product_id").isNotNull()).select("order_id", "product_id"), "order_id"))
    ordered = F.sort_array(F.collect_list(F.struct(newest_first.alias("age"), F.col("product_id"))))
    distinct = F.array_distinct(F.transform(ordered, lambda line: line["product_id"]))
    return bought.groupBy("person_id").agg(F.slice(distinct, 1, max_products).alias("products"))


def co_occurrence(per_person: DataFrame, min_co_buyers: int) -> DataFrame:
    """(product_a, product_b, co_buyers) for both orientations of every pair bought by one customer, from
    (person_id, products): sparse pair counts over the persons' product lists (:mod:`cdp_spark.pairs`)."""
    return (pair_counts(per_person, "products", "products", ("product_a", "product_b"))
            .where((F.col("product_a") != F.col("product_b")) & (F.col("rows") >= min_co_buyers))
            .withColumnRenamed("rows", "co_buyers"))


RECOMMENDATION_SCHEMA = "person_id string, rank int, product_id string, score long"


def scored_by_join(per_person: DataFrame, pairs: DataFrame, top_n: int) -> DataFrame:
    """Spark join of owned products (person_id, products) with the pairs -> the top ``top_n`` rows."""
    owned = per_person.select("person_id", F.explode("products").alias("product_id"))
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

    rows, flat = flat_lists(owned_lists)
    columns = pd.Index(product_ids).get_indexer(flat)
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


def scored_in_memory(spark: SparkSession, per_person: DataFrame, pairs: pd.DataFrame, top_n: int) -> DataFrame:
    """The pairs as a broadcast sparse matrix; each batch of (person_id, products) scored with it."""
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

    return per_person.mapInPandas(score, RECOMMENDATION_SCHEMA)


def recommendations(facts: DataFrame, lines: DataFrame, settings: RecommendationSettings,
                    cached: list[DataFrame] | None = None) -> DataFrame:
    """The recommendations (lazy); the frames it reads that are persisted (the per-person product lists,
    and the pairs when they are joined) are added to ``cached``: unpersist them once the result is written."""
    per_person = person_products(facts, lines, settings.max_products_per_person).persist()
    if cached is not None:
        cached.append(per_person)
    pairs = co_occurrence(per_person, settings.min_co_buyers).persist()
    if pairs.count() > settings.max_in_memory_pairs:
        if cached is not None:
            cached.append(pairs)
        return scored_by_join(per_person, pairs, settings.top_n)
    local_pairs = pairs.toPandas()
    pairs.unpersist()
    return scored_in_memory(facts.sparkSession, per_person, local_pairs, settings.top_n)
