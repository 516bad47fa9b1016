"""Customer personas (Pleasepoint "matrix_freq", docs/design.md §5).

``category_matrix(categories)``
    in:  (person_id, category, orders) per person and category (``scores.orders.category_orders``)
    out: (person_id, category, orders as double): in how many purchases each person bought each category
``personas(spark, counts, settings, previous)``
    k-means (Spark ML, fixed seed) on the customer x category matrix, scaled as configured. Returns
    ``PersonaResult``: ``members`` (person_id, persona_id, persona_name, propensity map category -> level),
    ``model`` (persona_id, persona_name, persons, share map category -> mean share, levels map), the
    propensity cut points and the frames cached for ``members`` (to unpersist once it is written).

Propensity of a persona for a category = the mean, over its members, of the share of their purchases in
that category. Levels: ``zero`` when nobody bought it, else ``low`` / ``medium`` / ``high`` by the tertile
cut points of all non-zero propensities (stored with the model). The name joins the categories with the
highest lift (propensity / overall share). Persona ids stay stable across runs: new clusters are matched to
the previous run's personas by the distance between their share profiles (Hungarian assignment); unmatched
clusters get new ids. Without a previous model, ids follow cluster size (largest = 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pyspark.ml.clustering import KMeans
from pyspark.ml.feature import StandardScaler, VectorAssembler
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from scipy.optimize import linear_sum_assignment

from cdp_spark.config import PersonaSettings
from cdp_spark.predict.clv import PredictionError

LEVELS = ("zero", "low", "medium", "high")
MODEL_SCHEMA = ("persona_id int, persona_name string, persons long, share map<string,double>, "
                "levels map<string,string>, cut_points array<double>")


@dataclass
class PersonaResult:
    members: DataFrame
    model: DataFrame
    cut_points: list[float]
    cached: list[DataFrame]
    """frames persisted for ``members``: unpersist them once it is written"""


def category_matrix(categories: DataFrame) -> DataFrame:
    return categories.where(F.col("category").isNotNull()).select(
        "person_id", "category", F.col("orders").cast("double").alias("orders"))


def _level(value: float, cuts: list[float]) -> str:
    if value <= 0:
        return "zero"
    return LEVELS[1 + sum(value > c for c in cuts)]


def _names(shares: np.ndarray, overall: np.ndarray, categories: list[str], top: int) -> list[str]:
    names: list[str] = []
    lift = shares / np.where(overall > 0, overall, 1)
    for row in lift:
        order = sorted(range(len(categories)), key=lambda j: (-row[j], categories[j]))[:top]
        name = " & ".join(categories[j] for j in order)
        names.append(name if name not in names else f"{name} ({names.count(name) + 1})")
    return names


def _stable_ids(shares: np.ndarray, sizes: np.ndarray, categories: list[str],
                previous: dict[int, dict[str, float]] | None) -> list[int]:
    by_size = sorted(range(len(sizes)), key=lambda i: (-sizes[i], i))
    if not previous:
        ids = [0] * len(sizes)
        for rank, i in enumerate(by_size, start=1):
            ids[i] = rank
        return ids
    old_ids = sorted(previous)
    old = np.array([[previous[p].get(c, 0.0) for c in categories] for p in old_ids])
    distance = np.linalg.norm(shares[:, None, :] - old[None, :, :], axis=2)
    rows, cols = linear_sum_assignment(distance)
    assigned = {int(r): old_ids[c] for r, c in zip(rows, cols, strict=True)}
    next_id = max(old_ids) + 1
    for i in by_size:
        if i not in assigned:
            assigned[i] = next_id
            next_id += 1
    return [assigned[i] for i in range(len(sizes))]


def personas(spark: SparkSession, counts: DataFrame, settings: PersonaSettings,
             previous: dict[int, dict[str, float]] | None = None) -> PersonaResult:
    counts = counts.persist()  # read by the category list and the pivot
    categories = sorted(r["category"] for r in counts.select("category").distinct().collect())
    wide = counts.groupBy("person_id").pivot("category", categories).agg(F.first("orders")).fillna(0.0)
    total = sum((F.col(f"`{c}`") for c in categories), F.lit(0.0))
    shares = wide.select("person_id", *[(F.col(f"`{c}`") / total).alias(f"s{j}") for j, c in enumerate(categories)],
                         *[F.col(f"`{c}`").alias(f"n{j}") for j, c in enumerate(categories)])
    source = "s" if settings.scaling == "normalise" else "n"
    # computed once: counted here, then read by the scaler, every k-means pass and the assignment
    features = VectorAssembler(inputCols=[f"{source}{j}" for j in range(len(categories))],
                               outputCol="raw").transform(shares).persist()
    persons = features.count()
    counts.unpersist()
    if persons < settings.k * 5:
        features.unpersist()
        raise PredictionError(f"personas need at least {settings.k * 5} customers with categorised purchases "
                              f"for k={settings.k}; got {persons}")
    if settings.scaling == "standardise":
        vectors = StandardScaler(inputCol="raw", outputCol="features", withMean=True, withStd=True
                                 ).fit(features).transform(features).persist()
    else:
        vectors = features.withColumnRenamed("raw", "features")
    model = KMeans(k=settings.k, seed=settings.seed, maxIter=settings.max_iterations,
                   featuresCol="features", predictionCol="cluster").fit(vectors)
    assigned = model.transform(vectors).select("person_id", "cluster", *[f"s{j}" for j in range(len(categories))]
                                               ).persist()
    stats = assigned.groupBy("cluster").agg(F.count("*").alias("persons"),
                                            *[F.avg(f"s{j}").alias(f"s{j}") for j in range(len(categories))]
                                            ).orderBy("cluster").collect()
    features.unpersist()
    vectors.unpersist()
    clusters = [int(r["cluster"]) for r in stats]
    sizes = np.array([int(r["persons"]) for r in stats])
    share = np.array([[float(r[f"s{j}"]) for j in range(len(categories))] for r in stats])
    overall = (share * sizes[:, None]).sum(axis=0) / sizes.sum()
    nonzero = share[share > 0]
    cuts = [float(v) for v in np.quantile(nonzero, [1 / 3, 2 / 3])] if nonzero.size else [0.0, 0.0]
    ids = _stable_ids(share, sizes, categories, previous)
    names = _names(share, overall, categories, settings.top_categories_in_name)
    rows = []
    for i in range(len(clusters)):
        levels = {c: _level(share[i, j], cuts) for j, c in enumerate(categories)}
        profile = {c: round(float(share[i, j]), 6) for j, c in enumerate(categories)}
        rows.append((ids[i], names[i], int(sizes[i]), profile, levels, cuts))
    table = spark.createDataFrame(rows, MODEL_SCHEMA)
    lookup = spark.createDataFrame([(clusters[i], ids[i], names[i], rows[i][4]) for i in range(len(clusters))],
                                   "cluster int, persona_id int, persona_name string, propensity map<string,string>")
    members = assigned.join(F.broadcast(lookup), "cluster").select("person_id", "persona_id", "persona_name",
                                                                   "propensity")
    return PersonaResult(members, table.orderBy("persona_id"), cuts, [assigned])
