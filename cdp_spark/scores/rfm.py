"""RFM: recency, frequency and monetary scores from stored quantile cut points, and named segments
(docs/design.md §5).

``cut_points(scores, groups)``
    in:  person scores with days_since_last_order, orders_total_count, orders_total_amount
    out: {metric: [cut_1, ..., cut_{groups-1}]}, the exact values at ranks ceil(k / groups * n) of the
         customers with orders (``percentile_approx`` only narrows the search)
``rfm(scores, cuts, groups, segments)``
    out: scores + rfm_recency, rfm_frequency, rfm_monetary (1..groups, higher is better), rfm_score (e.g.
    "545") and rfm_segment (the first rule of the ordered table that holds; null without orders).

A value's bucket is 1 + the number of cut points strictly below it, so equal values always share a score
(ties are kept together). Recency is reversed: fewer days since the last order is better.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from cdp_spark.config import RfmSegment

METRICS = {"recency": "days_since_last_order", "frequency": "orders_total_count",
           "monetary": "orders_total_amount"}


APPROX_ACCURACY = 10_000
"""``percentile_approx`` accuracy of the first pass: its rank error is at most n / APPROX_ACCURACY"""


def exact_ranks(n: int, groups: int) -> list[int]:
    """The 1-based ranks of the cut points among ``n`` sorted values: ceil(k / groups * n), k = 1..groups-1."""
    return [max(1, math.ceil(k * n / groups)) for k in range(1, groups)]


def cut_points(scores: DataFrame, groups: int) -> dict[str, list[float]]:
    """For each metric, the values at ranks ``exact_ranks`` among the customers with orders (the same
    definition as the DuckDB reference: the smallest value such that at least k / groups of the values are
    at most it), exact at any size: ``percentile_approx`` brackets each cut point by rank (its error is
    bounded), then one aggregation counts the values below each bracket and returns the few distinct values
    inside it, and the driver picks the rank. Should a bracket miss (it cannot by the error bound), the
    metric's whole value histogram is used."""
    customers = scores.where(F.col("orders_total_count") > 0).select(
        *[F.col(column).cast("double").alias(metric) for metric, column in METRICS.items()])
    # rank ceil(p n) lies within 1/n of p n: a slack of 3 / accuracy covers the approximation's error (at
    # most n / accuracy ranks) and that step for n >= accuracy; below, the approximation is exact
    slack = 3.0 / APPROX_ACCURACY
    probabilities = [q for k in range(1, groups) for q in (max(0.0, k / groups - slack), min(1.0, k / groups + slack))]
    bounds = customers.agg(F.count(F.lit(1)).alias("n"), *[
        F.percentile_approx(metric, probabilities, APPROX_ACCURACY).alias(metric) for metric in METRICS]).first()
    assert bounds is not None
    n = int(bounds["n"])
    if n == 0:
        return {metric: [] for metric in METRICS}
    ranks = exact_ranks(n, groups)
    brackets = {m: list(zip(bounds[m][0::2], bounds[m][1::2], strict=True)) for m in METRICS}
    counted = []
    for metric, pairs in brackets.items():
        for i, (low, _high) in enumerate(pairs):
            counted.append(F.count(F.when(F.col(metric) < F.lit(low), 1)).alias(f"{metric}_{i}"))
    below = customers.agg(*counted).first()
    assert below is not None
    values = customers.select(F.inline(F.array(*[F.struct(F.lit(m).alias("metric"), F.col(m).alias("value"))
                                                 for m in METRICS])))
    inside = F.lit(False)
    for metric, pairs in brackets.items():
        for low, high in pairs:
            inside = inside | ((F.col("metric") == metric) & F.col("value").between(low, high))
    near: dict[str, list[tuple[float, int]]] = {}
    for row in values.where(inside).groupBy("metric", "value").count().collect():
        near.setdefault(row["metric"], []).append((row["value"], row["count"]))
    cuts: dict[str, list[float]] = {}
    for metric, pairs in brackets.items():
        found = [_at_rank(rank, below[f"{metric}_{i}"], near.get(metric, []), low, high)
                 for i, ((low, high), rank) in enumerate(zip(pairs, ranks, strict=True))]
        if any(value is None for value in found):
            histogram = values.where(F.col("metric") == metric).groupBy("value").count().collect()
            found = [_at_rank(rank, 0, [(r["value"], r["count"]) for r in histogram], float("-inf"), float("inf"))
                     for rank in ranks]
        cuts[metric] = [float(v) for v in found if v is not None]
    return cuts


def _at_rank(rank: int, below: int, counts: Sequence[tuple[float, int]], low: float, high: float) -> float | None:
    """The value at 1-based ``rank`` given ``below`` values smaller than ``low`` and the (value, count) of
    the values in [low, high]; None when the rank is not inside the bracket."""
    seen = below
    for value, count in sorted(c for c in counts if low <= c[0] <= high):
        seen += count
        if seen >= rank:
            return value if below < rank else None
    return None


def _bucket(value: Column, cuts: Sequence[float]) -> Column:
    above = F.lit(1)
    for cut in cuts:
        above = above + F.when(value > F.lit(cut), 1).otherwise(0)
    return above


def rfm(scores: DataFrame, cuts: Mapping[str, Sequence[float]], groups: int,
        segments: Sequence[RfmSegment]) -> DataFrame:
    active = F.col("orders_total_count") > 0
    r = F.when(active, F.lit(groups + 1) - _bucket(F.col(METRICS["recency"]).cast("double"), cuts["recency"]))
    f = F.when(active, _bucket(F.col(METRICS["frequency"]).cast("double"), cuts["frequency"]))
    m = F.when(active, _bucket(F.col(METRICS["monetary"]).cast("double"), cuts["monetary"]))
    # rules are SQL over r, f and m: evaluated on temporary columns of those names
    with_scores = scores.withColumn("r", r.cast("int")).withColumn("f", f.cast("int")).withColumn("m", m.cast("int"))
    segment = F.lit(None).cast("string")
    for rule in reversed(segments):  # the first matching rule wins
        segment = F.when(F.coalesce(F.expr(rule.rule), F.lit(False)), F.lit(rule.name)).otherwise(segment)
    return (with_scores
            .withColumn("rfm_score", F.when(active, F.concat_ws("", "r", "f", "m")))
            .withColumn("rfm_segment", F.when(active, segment))
            .withColumnRenamed("r", "rfm_recency").withColumnRenamed("f", "rfm_frequency")
            .withColumnRenamed("m", "rfm_monetary"))
