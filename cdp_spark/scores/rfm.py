"""RFM: recency, frequency and monetary scores from stored quantile cut points, and named segments
(docs/design.md §5).

``cut_points(scores, groups)``
    in:  person scores with days_since_last_order, orders_total_count, orders_total_amount
    out: {metric: [cut_1, ..., cut_{groups-1}]}, from ``percentile_approx`` over customers with orders
``rfm(scores, cuts, groups, segments)``
    out: scores + rfm_recency, rfm_frequency, rfm_monetary (1..groups, higher is better), rfm_score (e.g.
    "545") and rfm_segment (the first rule of the ordered table that holds; null without orders).

A value's bucket is 1 + the number of cut points strictly below it, so equal values always share a score
(ties are kept together). Recency is reversed: fewer days since the last order is better.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from cdp_spark.config import RfmSegment

METRICS = {"recency": "days_since_last_order", "frequency": "orders_total_count",
           "monetary": "orders_total_amount"}


def cut_points(scores: DataFrame, groups: int) -> dict[str, list[float]]:
    probabilities = [k / groups for k in range(1, groups)]
    row = scores.where(F.col("orders_total_count") > 0).agg(*[
        F.percentile_approx(F.col(column).cast("double"), probabilities, 100_000).alias(metric)
        for metric, column in METRICS.items()]).first()
    return {metric: [float(v) for v in (row[metric] or [])] if row else [] for metric in METRICS}


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
