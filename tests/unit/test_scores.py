from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from chispa import assert_df_equality

from cdp_spark.scores.orders import basic_scores, order_facts

AS_OF = date(2026, 6, 30)
ORDERS_SCHEMA = ("order_id string, customer_source string, customer_key string, store_id string, channel string, "
                 "order_ts timestamp, gross_amount decimal(12,2), discount_amount decimal(12,2)")


def test_basic_scores_with_refund_timezone_and_ties(spark):
    d = Decimal
    orders = spark.createDataFrame([
        ("o1", "crm", "C1", "S1", "store", datetime(2026, 6, 1, 10), d("100.00"), d("10.00")),
        ("o2", "shop", "E1", "W1", "web", datetime(2026, 6, 20, 10), d("50.00"), d("0.00")),
        ("o3", "shop", "E1", "W1", "web", datetime(2026, 6, 25, 10), d("-50.00"), d("0.00")),   # refund
        ("o4", "crm", "C1", "S1", "store", datetime(2026, 6, 30, 22, 30), d("70.00"), d("0.00")),  # 1 July in Madrid
        ("o5", "crm", "C2", "S2", "store", datetime(2026, 5, 1, 9), d("20.00"), d("0.00")),
        ("o6", "crm", "C2", "S1", "store", datetime(2026, 5, 2, 9), d("30.00"), d("0.00")),
        ("o7", "crm", "C9", "S1", "store", datetime(2026, 5, 2, 9), d("30.00"), d("0.00")),  # unknown record
    ], ORDERS_SCHEMA)
    registry = spark.createDataFrame([("crm", "C1", "P1"), ("shop", "E1", "P1"), ("crm", "C2", "P2"),
                                      ("crm", "C3", "P3")], "system string, source_key string, person_id string")
    stores = spark.createDataFrame([("S1", "Madrid"), ("S2", "Bilbao"), ("W1", "Online")],
                                   "store_id string, name string")
    facts = order_facts(orders, registry, stores, "Europe/Madrid", AS_OF)
    assert sorted(r.order_id for r in facts.collect()) == ["o1", "o2", "o3", "o5", "o6"]
    persons = spark.createDataFrame([("P1",), ("P2",), ("P3",)], "person_id string")
    scores = basic_scores(persons, facts, AS_OF).orderBy("person_id")
    expected = spark.createDataFrame([
        ("P1", AS_OF, 2, d("140.00"), d("70.00"), 10, 29, "Online", True),   # tie 1-1: most recent (W1) wins
        ("P2", AS_OF, 2, d("50.00"), d("25.00"), 59, 60, "Madrid", True),    # tie 1-1: S1 more recent
        ("P3", AS_OF, 0, d("0.00"), None, None, None, None, False),
    ], "person_id string, as_of date, orders_total_count long, orders_total_amount decimal(16,2), "
       "orders_average_value decimal(16,2), days_since_last_order int, days_since_first_order int, "
       "favourite_store string, active_customer boolean")
    assert_df_equality(scores, expected, ignore_nullable=True)


def test_favourite_store_tie_on_count_and_time_falls_back_to_name(spark):
    d = Decimal
    orders = spark.createDataFrame([
        ("o1", "crm", "C1", "S2", "store", datetime(2026, 6, 1, 10), d("10.00"), d("0.00")),
        ("o2", "crm", "C1", "S1", "store", datetime(2026, 6, 1, 10), d("10.00"), d("0.00")),
    ], ORDERS_SCHEMA)
    registry = spark.createDataFrame([("crm", "C1", "P1")], "system string, source_key string, person_id string")
    stores = spark.createDataFrame([("S1", "Zaragoza"), ("S2", "Almería")], "store_id string, name string")
    facts = order_facts(orders, registry, stores, "UTC", AS_OF)
    persons = spark.createDataFrame([("P1",)], "person_id string")
    assert basic_scores(persons, facts, AS_OF).first().favourite_store == "Almería"
