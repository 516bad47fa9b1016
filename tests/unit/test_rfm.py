from __future__ import annotations

from decimal import Decimal

from chispa import assert_df_equality
from pyspark.sql import functions as F

from cdp_spark.config import load_config
from cdp_spark.scores.rfm import _bucket, cut_points, rfm
from tests.conftest import REPO_ROOT


def test_rfm_scores_and_segments(spark):
    # person i (1..10): days since last order 10 * (11 - i), i orders, 10 * i euros; P11 has no orders
    rows = [(f"P{i:02d}", 10 * (11 - i), i, Decimal(10 * i)) for i in range(1, 11)] + [("P11", None, 0, Decimal(0))]
    scores = spark.createDataFrame(rows, "person_id string, days_since_last_order int, orders_total_count long, "
                                         "orders_total_amount decimal(16,2)")
    cuts = cut_points(scores, 5)
    assert cuts == {"recency": [20.0, 40.0, 60.0, 80.0], "frequency": [2.0, 4.0, 6.0, 8.0],
                    "monetary": [20.0, 40.0, 60.0, 80.0]}
    segments = load_config(REPO_ROOT / "conf", "local").scores.rfm.segments
    got = rfm(scores, cuts, 5, segments).select("person_id", "rfm_recency", "rfm_frequency", "rfm_monetary",
                                                "rfm_score", "rfm_segment").orderBy("person_id")
    names = {1: "Lost", 2: "About to sleep", 3: "Need attention", 4: "Champions", 5: "Champions"}
    expected = spark.createDataFrame(
        [(f"P{i:02d}", (i + 1) // 2, (i + 1) // 2, (i + 1) // 2, str((i + 1) // 2) * 3, names[(i + 1) // 2])
         for i in range(1, 11)] + [("P11", None, None, None, None, None)],
        "person_id string, rfm_recency int, rfm_frequency int, rfm_monetary int, rfm_score string, "
        "rfm_segment string")
    assert_df_equality(got, expected, ignore_nullable=True)


def test_equal_values_share_a_score_and_three_groups(spark):
    frame = spark.createDataFrame([(v,) for v in (1.0, 2.0, 2.0, 2.0, 3.0, 9.0)], "v double")
    buckets = [r.b for r in frame.select(_bucket(F.col("v"), [2.0, 3.0]).alias("b")).collect()]
    assert buckets == [1, 1, 1, 1, 2, 3]
    scores = spark.createDataFrame([(f"P{i}", 30 * i, i, Decimal(i)) for i in range(1, 7)],
                                   "person_id string, days_since_last_order int, orders_total_count long, "
                                   "orders_total_amount decimal(16,2)")
    cuts = cut_points(scores, 3)
    assert cuts["frequency"] == [2.0, 4.0]


def test_cut_points_are_the_exact_ranks_at_any_size(spark):
    # 300,000 customers: percentile_approx alone is off by a few ranks here, and with amounts that differ by
    # a cent a few ranks are another value. Exact: the value at rank ceil(k/5 * n) of the sorted values.
    import math

    from pyspark.sql import functions as F

    scores = spark.range(300_000).select(
        (F.pmod(F.xxhash64("id"), F.lit(1000)) + 1).alias("days_since_last_order"),
        (F.pmod(F.xxhash64(F.col("id") + 7), F.lit(9)) + 1).alias("orders_total_count"),  # ties: 9 values
        (F.pmod(F.xxhash64(F.col("id") + 13), F.lit(5_000_000)) / 100).cast("decimal(12,2)").alias(
            "orders_total_amount"))
    cuts = cut_points(scores, 5)
    columns = {"recency": "days_since_last_order", "frequency": "orders_total_count",
               "monetary": "orders_total_amount"}
    rows = scores.toPandas()  # through Arrow: 900,000 Row objects cost more than the cut points
    for metric, column in columns.items():
        values = sorted(float(value) for value in rows[column])
        ranks = [math.ceil(k * len(values) / 5) for k in range(1, 5)]
        assert cuts[metric] == [values[r - 1] for r in ranks], metric
    assert cut_points(scores.where("orders_total_count > 100"), 5) == {m: [] for m in columns}


def test_the_rank_is_read_inside_its_bracket_or_reported_missing():
    from cdp_spark.scores.rfm import _at_rank

    counts = [(5.0, 2), (3.0, 1), (4.0, 3)]  # in [3, 5], after 10 smaller values: ranks 11, 12-14, 15-16
    assert [_at_rank(r, 10, counts, 3.0, 5.0) for r in (11, 12, 14, 15, 16)] == [3.0, 4.0, 4.0, 5.0, 5.0]
    assert _at_rank(17, 10, counts, 3.0, 5.0) is None  # past the bracket's top
    assert _at_rank(10, 10, counts, 3.0, 5.0) is None  # below the bracket's bottom
    assert _at_rank(2, 0, [(9.0, 1), (1.0, 1)], float("-inf"), float("inf")) == 9.0  # the whole histogram
