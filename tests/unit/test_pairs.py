"""Sparse pair counts over item lists."""

from __future__ import annotations

from chispa import assert_df_equality

from cdp_spark.pairs import pair_counts


def test_pair_counts_count_rows_holding_a_left_and_b_right(spark):
    rows = spark.createDataFrame([(["A", "B", None], ["C"]), (["A"], ["A", "C"]), ([], ["A"]), (None, ["B"]),
                                  (["B"], None)], "l array<string>, r array<string>")
    got = pair_counts(rows, "l", "r", ("item", "next_item")).orderBy("item", "next_item")
    # row 1: A-C, B-C (a null item pairs with nothing); row 2: A-A, A-C; rows 3 to 5 have an empty side
    assert_df_equality(got, spark.createDataFrame([("A", "A", 1), ("A", "C", 2), ("B", "C", 1)],
                                                  "item string, next_item string, rows long"), ignore_nullable=True)
    same = pair_counts(rows, "l", "l", ("a", "b")).orderBy("a", "b")
    # the diagonal counts the rows holding the item
    assert_df_equality(same, spark.createDataFrame([("A", "A", 2), ("A", "B", 1), ("B", "A", 1), ("B", "B", 2)],
                                                   "a string, b string, rows long"), ignore_nullable=True)
