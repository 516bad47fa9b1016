"""The score library on a small literal dataset with hand-computed expected values (docs/design.md §5)."""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal

from chispa import assert_df_equality
from click.testing import CliRunner

from cdp_spark.config import LifecycleSettings
from cdp_spark.scores.library import SCORES, score_library
from cdp_spark.scores.orders import category_orders, order_facts, order_items
from cdp_spark.session import streaming_aggregation

AS_OF = date(2026, 6, 30)
d = Decimal
ORDERS = [  # order_id, source, key, store, channel, ts (UTC), gross, discount
    ("o1", "crm", "C1", "S1", "store", datetime(2026, 6, 1, 10), d("100.00"), d("10.00")),
    ("o2", "shop", "E1", "W1", "web", datetime(2026, 6, 11, 10), d("50.00"), d("0.00")),
    ("o3", "shop", "E1", "W1", "web", datetime(2026, 6, 15, 10), d("-50.00"), d("0.00")),   # refund
    ("o4", "crm", "C1", "S1", "store", datetime(2026, 6, 21, 10), d("60.00"), d("6.00")),
    ("o5", "crm", "C1", "S1", "store", datetime(2026, 6, 30, 22, 30), d("70.00"), d("0.00")),  # 1 July, Madrid
    ("o6", "crm", "C2", "S2", "store", datetime(2026, 1, 10, 9), d("20.00"), d("0.00")),
    ("o7", "crm", "C2", "S2", "store", datetime(2026, 1, 20, 9), d("30.00"), d("0.00")),
    ("o8", "crm", "C2", "S1", "store", datetime(2026, 1, 20, 15), d("10.00"), d("0.00")),  # same day as o7
    ("o9", "crm", "C3", "S1", "store", datetime(2025, 1, 1, 10), d("40.00"), d("4.00")),
    ("o10", "crm", "C5", "S2", "store", datetime(2024, 1, 1, 10), d("15.00"), d("0.00")),  # no lines
]
ITEMS = [("o1", "A", 2), ("o1", "B", 1), ("o2", "B", 1), ("o3", "B", 1), ("o4", "C", 3), ("o6", "A", 1),
         ("o7", "A", 1), ("o8", "C", 1), ("o9", "B", 2)]


def _inputs(spark):
    """(persons, facts, categories) of the literal dataset above."""
    orders = spark.createDataFrame(ORDERS, "order_id string, customer_source string, customer_key string, "
                                           "store_id string, channel string, order_ts timestamp, "
                                           "gross_amount decimal(12,2), discount_amount decimal(12,2)")
    registry = spark.createDataFrame([("crm", "C1", "P1"), ("shop", "E1", "P1"), ("crm", "C2", "P2"),
                                      ("crm", "C3", "P3"), ("crm", "C4", "P4"), ("crm", "C5", "P5")],
                                     "system string, source_key string, person_id string")
    stores = spark.createDataFrame([("S1", "Madrid"), ("S2", "Bilbao"), ("W1", "Online")],
                                   "store_id string, name string")
    products = spark.createDataFrame([("A", "Hogar"), ("B", "Plantas"), ("C", "Huerto ECO")],
                                     "product_id string, category string")
    items = order_items(spark.createDataFrame(ITEMS, "order_id string, product_id string, quantity int"), products)
    facts = order_facts(orders, registry, stores, "Europe/Madrid", AS_OF)
    return registry.select("person_id").distinct(), facts, category_orders(facts, items)


def test_score_library_hand_computed(spark):
    persons, facts, categories = _inputs(spark)
    got = score_library(persons, facts, categories, AS_OF, LifecycleSettings()).orderBy("person_id")
    assert got.columns == ["person_id", "as_of", *[s.column for s in SCORES if not s.column.startswith("rfm_")]]
    expected = spark.createDataFrame([
        # P1: o1, o2, o4 (o3 refund, o5 after as-of): gaps 10, 10 -> mu 10, sigma max(0, 2.5); t = 9: approaching
        ("P1", AS_OF, "approaching", ["Hogar", "Huerto ECO", "Plantas"], ["Plantas", "Huerto ECO", "Hogar"], 3,
         "Madrid", ["Madrid", "Online"], 2, "Madrid", "Madrid", True, True, False, True, True, True, True,
         d("194.00"), d("64.67"), 3, 7, 2.33, 10.0, 2, 0.6667, 0.0667, 9, 29, "active"),
        # P2: days 10 and 20 January (o7, o8 same day): mu 10, sigma 0.5 mu = 5; t = 161 >= 20: significantly late
        ("P2", AS_OF, "significantly_late", ["Hogar", "Huerto ECO"], ["Hogar", "Huerto ECO"], 2, "Bilbao",
         ["Bilbao", "Madrid"], 2, "Bilbao", "Madrid", True, True, False, True, False, True, True,
         d("60.00"), d("20.00"), 3, 3, 1.0, 10.0, 0, 0.0, 0.0, 161, 171, "active"),
        ("P3", AS_OF, "one_order", ["Plantas"], ["Plantas"], 1, "Madrid", ["Madrid"], 1, "Madrid", "Madrid",
         False, False, True, False, False, False, True, d("36.00"), d("36.00"), 1, 2, 2.0, None, 1, 1.0, 0.1,
         545, 545, "hibernating"),
        ("P4", AS_OF, "no_order", [], [], 0, None, [], 0, None, None, False, False, False, False, False, False,
         False, d("0.00"), None, 0, 0, None, None, 0, None, None, None, None, "no_order"),
        ("P5", AS_OF, "one_order", [], [], 0, "Bilbao", ["Bilbao"], 1, "Bilbao", "Bilbao", False, False, True,
         False, False, False, True, d("15.00"), d("15.00"), 1, 0, 0.0, None, 0, 0.0, 0.0, 911, 911, "lost"),
    ], "person_id string, as_of date, purchase_timing_deviation string, all_ordered_categories array<string>, "
       "top3_categories array<string>, distinct_categories_count int, favourite_store string, "
       "all_stores array<string>, distinct_stores_count int, first_order_store string, last_order_store string, "
       "multi_buyer boolean, multi_category boolean, new_customer boolean, regular_customer boolean, "
       "omnichannel boolean, multi_store boolean, active_customer boolean, orders_total_amount decimal(16,2), "
       "orders_average_value decimal(16,2), orders_total_count long, orders_total_items long, "
       "orders_average_items double, orders_average_days_between double, discounted_orders_count long, "
       "discounted_orders_rate double, average_discount_rate double, days_since_last_order int, "
       "days_since_first_order int, hibernation_state string")
    assert_df_equality(got, expected, ignore_nullable=True)


def _outside_cached_frames(plan: str) -> list[tuple[int, str]]:
    """(depth, operator line) of a physical plan's text, without the plans of cached frames (the subtree under
    an InMemoryRelation) and without expression ids and plan ids."""
    nodes, cached_at = [], None
    for line in plan.splitlines():
        depth = len(line) - len(line.lstrip(" :+-"))
        if cached_at is not None and depth > cached_at:
            continue
        cached_at = depth if "InMemoryRelation" in line else None
        nodes.append((depth, re.sub(r"#\d+|, \[plan_id=\d+\]", "", line.strip(" :+-"))))
    return nodes


def _shuffles(plan: str) -> list[tuple[str, str]]:
    """(exchange, its child) of each shuffle in a physical plan's text, outside cached frames."""
    lines = [line for _, line in _outside_cached_frames(plan)]
    return [(line, lines[i + 1].split(" +- ")[0]) for i, line in enumerate(lines)
            if re.match(r"Exchange ", line)]


def test_the_library_shuffles_only_the_persons_once_facts_and_categories_are_persisted(spark):
    """The order facts and the per-category purchases come partitioned by person_id (docs/design.md §5,
    "Layout of the order facts"): over their persisted copies, as the score stage reads them, every
    aggregation and join of the library keeps that partitioning, and the only shuffle left is the persons'."""
    # more than one partition, or any layout would satisfy a join (the suite runs on one, set back after the
    # test); adaptive execution off, so the plan's text has no adaptive query stages
    spark.conf.set("spark.sql.shuffle.partitions", "4")
    spark.conf.set("spark.sql.adaptive.enabled", "false")
    persons, facts, categories = _inputs(spark)
    facts, categories = facts.persist(), categories.persist()
    try:
        library = score_library(persons, facts, categories, AS_OF, LifecycleSettings())
        library.collect()
        shuffles = _shuffles(str(library._jdf.queryExecution().executedPlan().toString()))
        assert shuffles == [("Exchange hashpartitioning(person_id, 4), ENSURE_REQUIREMENTS",
                             "HashAggregate(keys=[person_id], functions=[], output=[person_id])")]
    finally:
        facts.unpersist()
        categories.unpersist()


def _consumers_of_cached_frames(plan: str) -> list[str]:
    """The operator that reads each cached frame's rows in a physical plan's text: the first one above each
    ``InMemoryTableScan`` that is not a projection or a filter."""
    nodes = [(depth, re.split(r"[^A-Za-z]", line, maxsplit=1)[0]) for depth, line in _outside_cached_frames(plan)]
    consumers = []
    for i, (depth, name) in enumerate(nodes):
        if name != "InMemoryTableScan":
            continue
        for above_depth, above in reversed(nodes[:i]):  # the ancestors: each next one less indented
            if above_depth < depth:
                depth = above_depth
                if above not in ("Project", "Filter"):
                    consumers.append(above)
                    break
    return consumers


def test_the_librarys_aggregations_stream_over_the_sorted_facts_and_categories(spark):
    """The order facts come sorted by (person_id, store_name) and the per-category purchases by (person_id,
    category) within their partitions (docs/design.md §5, "Layout of the order facts"): with sort aggregations
    over sorted input, as the score stage builds the library, every aggregation of the library reads them as
    they stream by, with no sort and no hash table of their rows, and the values are the ones of the
    hand-computed test above."""
    spark.conf.set("spark.sql.shuffle.partitions", "4")
    spark.conf.set("spark.sql.adaptive.enabled", "false")
    persons, facts, categories = _inputs(spark)
    try:
        with streaming_aggregation(spark):  # as the score stage builds them: a frame's plan is made as it is persisted
            facts, categories = facts.persist(), categories.persist()
            library = score_library(persons, facts, categories, AS_OF, LifecycleSettings())
            plan = str(library._jdf.queryExecution().executedPlan().toString())
        got = library.select("person_id", "favourite_store", "top3_categories", "orders_total_count").collect()
        consumers = _consumers_of_cached_frames(plan)
        # per-order scores, the favourite store's counts per store, the categories' ranks
        assert consumers == ["SortAggregate", "SortAggregate", "SortAggregate"]
        assert "ObjectHashAggregate" not in plan  # the purchases' own per-category aggregation streams too
        assert sorted(tuple(r) for r in got) == [
            ("P1", "Madrid", ["Plantas", "Huerto ECO", "Hogar"], 3), ("P2", "Bilbao", ["Hogar", "Huerto ECO"], 3),
            ("P3", "Madrid", ["Plantas"], 1), ("P4", None, [], 0), ("P5", "Bilbao", [], 1)]
    finally:
        facts.unpersist()
        categories.unpersist()


def test_scores_list_prints_the_registry():
    from cdp_spark.cli import main

    result = CliRunner().invoke(main, ["scores", "list"])
    assert result.exit_code == 0
    assert all(score.column in result.output for score in SCORES)
    assert "Segmentation - Multi-buyer" in result.output and "2 or more orders" in result.output
