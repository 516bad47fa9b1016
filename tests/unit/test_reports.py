"""Report tables on small literal data with hand-computed expected rows."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

from chispa import assert_df_equality
from pyspark.sql import functions as F

from cdp_spark.config import FunnelSettings
from cdp_spark.reports.tables import (
    clv_tiers,
    funnel,
    headline_figures,
    headlines_with_change,
    ingestion_summary,
    next_order_products,
    order_products,
    persona_heatmap,
    quality_summary,
    quarantine_reasons,
    repeat_purchase_timing,
    rfm_grid,
    same_cart_products,
    segment_metrics,
    tier_labels,
)
from cdp_spark.scores.orders import category_orders, order_items

d = Decimal
T0 = datetime(2026, 5, 1, 10)


def test_segment_metrics_are_pleasepoints_nine(spark):
    customers = spark.createDataFrame(
        [("P1", "A", 2, d("100.00"), 10), ("P2", "A", 1, d("50.00"), 20), ("P3", "B", 3, d("150.00"), 30)],
        "person_id string, rfm_segment string, orders_total_count long, orders_total_amount decimal(16,2), "
        "days_since_last_order int")
    got = segment_metrics(customers, "rfm_segment").orderBy("segment")
    expected = spark.createDataFrame([
        ("rfm_segment", "A", 2, 3, d("50.00"), 15.0, d("150.00"), 1.5, d("75.00"), 0.6667, 0.5),
        ("rfm_segment", "B", 1, 3, d("50.00"), 30.0, d("150.00"), 3.0, d("150.00"), 0.3333, 0.5)],
        got.schema)
    assert_df_equality(got, expected)
    grid = rfm_grid(customers.withColumn("rfm_recency", customers["orders_total_count"].cast("int"))
                    .withColumn("rfm_frequency", customers["orders_total_count"].cast("int") * 0 + 1))
    assert [tuple(r) for r in grid.collect()] == [(1, 1, 1, d("50.00")), (2, 1, 1, d("100.00")),
                                                  (3, 1, 1, d("150.00"))]


def test_clv_tiers_split_by_rank_and_keep_ties_together(spark):
    assert tier_labels([0.1, 0.3, 0.6]) == ["top 10%", "10-30%", "30-60%", "60-100%"]
    clv = spark.createDataFrame([(f"P{i:02d}", float(i)) for i in range(1, 11)] + [("P11", 4.0)],
                                "person_id string, predicted_clv double")
    got = {r["person_id"]: r["clv_tier"] for r in clv_tiers(clv, [0.1, 0.3, 0.6]).collect()}
    # 11 values: quantile cuts at ranks ceil(0.9*11)=10 -> 9, ceil(0.7*11)=8 -> 7, ceil(0.4*11)=5 -> 4
    assert got == {"P10": "top 10%", "P08": "10-30%", "P09": "10-30%", "P05": "30-60%", "P06": "30-60%",
                   "P07": "30-60%", "P01": "60-100%", "P02": "60-100%", "P03": "60-100%", "P04": "60-100%",
                   "P11": "60-100%"}


def test_persona_heatmap_one_row_per_persona_and_category(spark):
    model = spark.createDataFrame(
        [(1, "Hogar + Plantas", 10, {"Hogar": 0.61234, "Plantas": 0.3}, {"Hogar": "high", "Plantas": "medium"})],
        "persona_id int, persona_name string, persons long, share map<string,double>, levels map<string,string>")
    got = [tuple(r) for r in persona_heatmap(model).collect()]
    assert got == [(1, "Hogar + Plantas", 10, "Hogar", 0.6123, "high"), (1, "Hogar + Plantas", 10, "Plantas", 0.3,
                                                                          "medium")]


def test_funnel_counts_ordered_steps_within_the_window(spark):
    h = timedelta(hours=1)
    rows = [  # customer_source, customer_key, anonymous_id, event_type, event_ts
        ("crm", "K1", None, "page_view", T0), ("crm", "K1", None, "product_view", T0 + h),
        ("crm", "K1", None, "add_to_cart", T0 + 2 * h), ("crm", "K1", None, "purchase", T0 + 3 * h),
        ("crm", "K2", None, "product_view", T0), ("crm", "K2", None, "page_view", T0 + h),
        ("crm", "K2", None, "product_view", T0 + 2 * h),
        (None, None, "a1", "page_view", T0), (None, None, "a1", "product_view", T0 + timedelta(days=40)),
        *[(None, None, "a2", step, T0 + i * h)
          for i, step in enumerate(["page_view", "product_view", "add_to_cart", "checkout", "purchase"])],
        ("crm", "UNKNOWN", None, "page_view", T0),  # no person, no visitor id: no actor
    ]
    events = spark.createDataFrame(rows, "customer_source string, customer_key string, anonymous_id string, "
                                         "event_type string, event_ts timestamp")
    registry = spark.createDataFrame([("crm", "K1", "P1"), ("crm", "K2", "P2")],
                                     "system string, source_key string, person_id string")
    spec = FunnelSettings(name="web", steps=["page_view", "product_view", "add_to_cart", "checkout", "purchase"],
                          within_days=30)
    got = funnel(events, registry, spec, "event_type", "event_ts", "anonymous_id")
    expected = spark.createDataFrame([
        ("web", 1, "page_view", 4, 2, 1.0, None), ("web", 2, "product_view", 3, 2, 0.75, 0.75),
        ("web", 3, "add_to_cart", 2, 1, 0.5, 0.6667), ("web", 4, "checkout", 1, 0, 0.25, 0.5),
        ("web", 5, "purchase", 1, 0, 0.25, 1.0)], got.schema)
    assert_df_equality(got, expected, ignore_nullable=True)


def test_funnel_counts_each_event_for_one_step_orders_equal_times_by_step_and_skips_untimed_events(spark):
    h = timedelta(hours=1)
    rows = [("v1", "page_view", T0),  # one view: step 1 only, not step 2 of a view-view funnel
            ("v2", "page_view", T0), ("v2", "page_view", T0 + h), ("v2", "purchase", T0 + h),
            ("v3", "purchase", T0), ("v3", "page_view", T0), ("v3", "page_view", T0),  # same time, any order
            ("v4", "page_view", T0), ("v4", "purchase", T0 + 2 * h), ("v4", "page_view", T0 + 3 * h),
            ("v5", "page_view", None)]  # no time: not in the funnel
    events = spark.createDataFrame([(None, None, *row) for row in rows],
                                   "customer_source string, customer_key string, anonymous_id string, "
                                   "event_type string, event_ts timestamp")
    registry = spark.createDataFrame([], "system string, source_key string, person_id string")
    spec = FunnelSettings(name="again", steps=["page_view", "page_view", "purchase"], within_days=1)
    got = funnel(events, registry, spec, "event_type", "event_ts", "anonymous_id")
    expected = spark.createDataFrame([
        ("again", 1, "page_view", 4, 0, 1.0, None), ("again", 2, "page_view", 3, 0, 0.75, 0.75),
        ("again", 3, "purchase", 2, 0, 0.5, 0.6667)], got.schema)
    assert_df_equality(got, expected, ignore_nullable=True)


def _catalog_inputs(spark):
    facts = spark.createDataFrame([  # person, order, day of May
        ("P1", "o1", 1), ("P1", "o2", 11), ("P1", "o3", 31), ("P2", "o4", 5), ("P2", "o5", 6)],
        "person_id string, order_id string, day int")
    facts = facts.selectExpr("person_id", "order_id", "make_timestamp(2026, 5, day, 10, 0, 0) AS order_ts",
                             "make_date(2026, 5, day) AS order_date", "true AS is_purchase")
    items = spark.createDataFrame([("o1", "A"), ("o1", "B"), ("o2", "A"), ("o2", "C"), ("o3", "B"), ("o4", "A"),
                                   ("o4", "B"), ("o5", "C")], "order_id string, product_id string")
    products = spark.createDataFrame([("A", "X"), ("B", "X"), ("C", "Y")], "product_id string, category string")
    return facts, items, products


def _catalog(spark):
    facts, items, products = _catalog_inputs(spark)
    return order_products(facts, items), products


def test_repeat_purchase_timing_per_category(spark):
    facts, items, products = _catalog_inputs(spark)
    same_day = spark.createDataFrame([("P1", "o6", datetime(2026, 5, 11, 18), date(2026, 5, 11), True),
                                      ("P3", "o7", datetime(2026, 5, 2, 9), date(2026, 5, 2), True)],
                                     facts.schema)
    more_items = spark.createDataFrame([("o6", "B"), ("o7", "Z"), ("o7", None)], items.schema)
    lines = order_items(items.unionByName(more_items).withColumn("quantity", F.lit(1)), products)
    got = repeat_purchase_timing(category_orders(facts.unionByName(same_day), lines))
    # X: P1 on days 1, 11, 11, 31 (distinct days: gaps 10, 20), P2 once; Y: P1 once, P2 once; P3's lines have
    # no category
    expected = spark.createDataFrame([("X", 2, 1, 2, 15.0, 10), ("Y", 2, 0, 0, None, None)], got.schema)
    assert_df_equality(got, expected)


def test_next_order_and_same_cart_products(spark):
    orders, _ = _catalog(spark)
    got = next_order_products(orders, top=2, min_orders=1)
    # next orders: o1 -> o2 {A, C}, o2 -> o3 {B}, o4 -> o5 {C}; A is in o1, o2, o4
    expected = spark.createDataFrame([("A", "C", 2, 0.6667, 1), ("A", "A", 1, 0.3333, 2), ("B", "C", 2, 1.0, 1),
                                      ("B", "A", 1, 0.5, 2), ("C", "B", 1, 1.0, 1)], got.schema)
    assert_df_equality(got, expected)
    cart = same_cart_products(orders, top=5, min_orders=1)
    # 5 orders; A in 3, B in 3, C in 2; A+B in o1 and o4, A+C in o2
    expected_cart = spark.createDataFrame([("A", "B", 2, 0.6667, 1.1111, 1), ("A", "C", 1, 0.3333, 0.8333, 2),
                                           ("B", "A", 2, 0.6667, 1.1111, 1), ("C", "A", 1, 0.5, 0.8333, 1)],
                                          cart.schema)
    assert_df_equality(cart, expected_cart)
    assert same_cart_products(orders, top=5, min_orders=2).count() == 2  # only A+B, both directions


LOG_SCHEMA = ("run_id string, source string, status string, rows_read long, rows_accepted long, "
              "rows_quarantined long, ingested_at timestamp")


def ingestion_log(spark):
    t = datetime(2026, 6, 30, 8, 0)
    return spark.createDataFrame([
        ("r1", "crm", "ingested", 10, 9, 1, t), ("r1", "shop", "ingested", 5, 5, 0, t),
        ("r2", "crm", "ingested", 4, 2, 2, t + timedelta(days=1)),
        ("r2", "crm", "rejected", 0, 0, 0, t + timedelta(days=1)),
        ("r2", "shop", "ingested", 3, 3, 0, t + timedelta(days=1, minutes=1))], LOG_SCHEMA)


def test_ingestion_summary_is_the_last_ingest_run_per_source(spark):
    expected = spark.createDataFrame([("crm", 1, 1, 4, 2, 2), ("shop", 1, 0, 3, 3, 0)],
                                     "source string, files long, rejected_files long, rows_read long, "
                                     "rows_accepted long, rows_quarantined long")
    assert_df_equality(ingestion_summary(ingestion_log(spark)), expected, ignore_nullable=True)


def test_quality_summary_takes_each_tables_last_check_and_whether_it_was_published(spark):
    t = datetime(2026, 6, 30, 9, 0)
    results = spark.createDataFrame([
        ("gold.a", 1, True, "fail", t), ("gold.a", 2, True, "fail", t), ("gold.a", 2, False, "warn", t),
        ("gold.b", 4, False, "fail", t),                                   # first check of v4: a failure ...
        ("gold.b", 4, True, "fail", t + timedelta(minutes=1)),             # ... passed after the quarantine split
        ("gold.c", 7, False, "quarantine", t)],
        "table_name string, table_version long, success boolean, action string, validated_at timestamp")
    published = spark.createDataFrame([("gold.a", 2), ("gold.b", 4)], "table_name string, table_version long")
    expected = spark.createDataFrame([
        ("gold.a", 2, 2, 0, 1, True, t), ("gold.b", 4, 1, 0, 0, True, t + timedelta(minutes=1)),
        ("gold.c", 7, 1, 1, 0, False, t)],
        "table_name string, table_version long, expectations long, failed long, warnings long, published boolean, "
        "validated_at timestamp")
    summary = quality_summary(results, published)
    assert_df_equality(summary, expected, ignore_nullable=True)

    scores = spark.createDataFrame([("p1", 2, Decimal("10.50")), ("p2", 0, None), ("p3", 1, Decimal("4.00"))],
                                   "person_id string, orders_total_count int, orders_total_amount decimal(12,2)")
    figures = headline_figures(scores, ingestion_summary(ingestion_log(spark)), summary)
    assert [(r.metric, r.value) for r in figures.collect()] == [
        ("persons", 3.0), ("buyers", 2.0), ("revenue", 14.5), ("files_ingested", 2.0), ("rows_quarantined", 2.0),
        ("suites_passed", 2.0)]
    previous = spark.createDataFrame([("persons", 2.0, date(2026, 6, 29)), ("revenue", 20.0, date(2026, 6, 29))],
                                     "metric string, value double, as_of date")
    changed = {r.metric: (r.value, r.previous_value, r.previous_as_of)
               for r in headlines_with_change(figures, previous).collect()}
    assert changed["persons"] == (3.0, 2.0, date(2026, 6, 29)) and changed["buyers"] == (2.0, None, None)
    assert [r.previous_value for r in headlines_with_change(figures, None).collect()] == [None] * 6


def test_quarantine_reasons_count_rows_per_entity_and_reason(spark):
    contacts = spark.createDataFrame([("invalid_value",), ("invalid_value",), ("wrong_column_count",)], "reason string")
    orders = spark.createDataFrame([("missing_source_key",)], "reason string")
    expected = spark.createDataFrame([("contacts", "invalid_value", 2), ("contacts", "wrong_column_count", 1),
                                      ("orders", "missing_source_key", 1)], "entity string, reason string, rows long")
    assert_df_equality(quarantine_reasons({"contacts": contacts, "orders": orders}), expected, ignore_nullable=True)
    assert quarantine_reasons({}) is None
