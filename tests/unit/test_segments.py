"""Segments, measures, state history and movement on literal data with hand-computed results."""

from __future__ import annotations

from datetime import date

import pytest
from chispa import assert_df_equality

from cdp_spark.config import Measure, SegmentRule
from cdp_spark.scores.enrichment import EnrichmentError
from cdp_spark.scores.segments import (
    measures,
    membership_before,
    movement,
    segment_changes,
    segment_membership,
    state_history,
)

D1, D2, D3 = date(2026, 1, 31), date(2026, 2, 28), date(2026, 3, 31)
SEGMENTS = [SegmentRule(name="vip", rule="loyalty_points > 1000"),
            SegmentRule(name="regulars", rule="orders_total_count >= 3")]


@pytest.fixture
def persons(spark):
    return spark.createDataFrame([("p1", 1500, 4, 300.0), ("p2", 200, 3, 90.0), ("p3", None, 0, 0.0)],
                                 "person_id string, loyalty_points int, orders_total_count long, "
                                 "orders_total_amount double")


def test_membership_changes_and_measures(spark, persons):
    now = segment_membership(persons, SEGMENTS, D2)
    assert_df_equality(now.orderBy("person_id", "segment"), spark.createDataFrame(
        [("p1", "regulars", D2), ("p1", "vip", D2), ("p2", "regulars", D2)],
        "person_id string, segment string, as_of date"), ignore_nullable=True)
    before = spark.createDataFrame([("p2", "vip", D1), ("p3", "regulars", D1), ("p1", "vip", D1)],
                                   "person_id string, segment string, as_of date")
    changes = segment_changes(now, before, D2).orderBy("person_id", "segment")
    assert_df_equality(changes, spark.createDataFrame(
        [("p1", "regulars", "entered", D2), ("p2", "regulars", "entered", D2), ("p2", "vip", "left", D2),
         ("p3", "regulars", "left", D2)], "person_id string, segment string, change string, as_of date"),
        ignore_nullable=True)
    got = measures(persons, now, [Measure(name="revenue", sql="sum(orders_total_amount)"),
                                  Measure(name="buyers", sql="count_if(orders_total_count > 0)")], D2)
    assert_df_equality(got.orderBy("segment", "measure"), spark.createDataFrame(
        [(D2, "buyers", "*", 2.0), (D2, "revenue", "*", 390.0), (D2, "buyers", "regulars", 2.0),
         (D2, "revenue", "regulars", 390.0), (D2, "buyers", "vip", 1.0), (D2, "revenue", "vip", 300.0)],
        "as_of date, measure string, segment string, value double"), ignore_nullable=True)


def test_rules_naming_other_tables_or_unknown_columns_are_rejected(persons):
    with pytest.raises(EnrichmentError, match="segment 'x' may use only"):
        segment_membership(persons, [SegmentRule(name="x", rule="person_id IN (SELECT id FROM orders)")], D1)
    with pytest.raises(EnrichmentError, match=r"segment 'y' is not valid over .*no_such_column"):
        segment_membership(persons, [SegmentRule(name="y", rule="no_such_column > 1")], D1)
    with pytest.raises(EnrichmentError, match="measure 'z' must be an aggregate"):
        measures(persons, persons.limit(0), [Measure(name="z", sql="orders_total_amount")], D1)


def scores(spark, rows):
    return spark.createDataFrame(rows, "person_id string, rfm_segment string")


def test_state_history_closes_and_opens_rows_and_reports_movement(spark):
    h1 = state_history(None, scores(spark, [("p1", "New"), ("p2", "Loyal")]), ["rfm_segment"], D1)
    h2 = state_history(h1, scores(spark, [("p1", "Champions"), ("p2", "Loyal"), ("p3", "New")]), ["rfm_segment"], D2)
    h3 = state_history(h2, scores(spark, [("p1", "Champions"), ("p3", "At risk")]), ["rfm_segment"], D3)
    schema = "person_id string, state string, value string, valid_from date, valid_to date"
    expected = spark.createDataFrame([
        ("p1", "rfm_segment", "New", D1, D2), ("p1", "rfm_segment", "Champions", D2, None),
        ("p2", "rfm_segment", "Loyal", D1, D3),                       # p2 gone (merged away) on D3
        ("p3", "rfm_segment", "New", D2, D3), ("p3", "rfm_segment", "At risk", D3, None)], schema)
    assert_df_equality(h3.orderBy("person_id", "valid_from"), expected, ignore_nullable=True)
    # rerunning D3 with other results replaces D3's changes only
    again = state_history(h3, scores(spark, [("p1", "Lost"), ("p2", "Loyal"), ("p3", "New")]), ["rfm_segment"], D3)
    assert_df_equality(again.orderBy("person_id", "valid_from"), spark.createDataFrame([
        ("p1", "rfm_segment", "New", D1, D2), ("p1", "rfm_segment", "Champions", D2, D3),
        ("p1", "rfm_segment", "Lost", D3, None), ("p2", "rfm_segment", "Loyal", D1, None),
        ("p3", "rfm_segment", "New", D2, None)], schema), ignore_nullable=True)
    moved = movement(h3, "rfm_segment", D1, D3)
    assert_df_equality(moved, spark.createDataFrame(
        [(None, "At risk", 1), ("Loyal", None, 1), ("New", "Champions", 1)],
        "from_value string, to_value string, persons long"), ignore_nullable=True)
    with pytest.raises(EnrichmentError, match="already runs to 2026-03-31; cannot insert 2026-02-28"):
        state_history(h3, scores(spark, [("p1", "New")]), ["rfm_segment"], D2)


def test_membership_before_a_rerun_of_the_date_undoes_that_dates_changes(spark):
    pairs = "person_id string, segment string"
    current = spark.createDataFrame([("p1", "vip"), ("p2", "vip"), ("p3", "lapsed")], pairs)
    changes = spark.createDataFrame([("p2", "vip", "entered"), ("p4", "vip", "left")],
                                    "person_id string, segment string, change string")
    expected = spark.createDataFrame([("p1", "vip"), ("p3", "lapsed"), ("p4", "vip")], pairs)
    assert_df_equality(membership_before(current, changes).orderBy("person_id"), expected, ignore_nullable=True)
    assert membership_before(current, None).collect() == []
