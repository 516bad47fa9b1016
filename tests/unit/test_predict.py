"""Personas and recommendations on literal data with hand-computed results."""

from __future__ import annotations

import random
from datetime import date, datetime

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from cdp_spark.config import PersonaSettings, RecommendationSettings
from cdp_spark.predict.clv import PredictionError
from cdp_spark.predict.personas import category_matrix, personas
from cdp_spark.predict.recommend import co_occurrence, person_products, recommendations
from cdp_spark.scores.orders import category_orders


def purchase_facts(spark, rows):
    return spark.createDataFrame([(p, o, datetime(2026, 1, d), date(2026, 1, d), True) for p, o, d in rows],
                                 "person_id string, order_id string, order_ts timestamp, order_date date, "
                                 "is_purchase boolean")


def test_category_matrix_counts_orders_per_category(spark):
    facts = purchase_facts(spark, [("p1", "o1", 1), ("p1", "o2", 2), ("p2", "o3", 3)])
    items = spark.createDataFrame([("o1", "garden"), ("o1", "garden"), ("o1", "home"), ("o2", "garden"),
                                   ("o3", "home"), ("o3", None)], "order_id string, category string")
    items = items.withColumn("quantity", F.lit(1))
    got = category_matrix(category_orders(facts, items)).orderBy("person_id", "category")
    assert_df_equality(got, spark.createDataFrame([("p1", "garden", 2.0), ("p1", "home", 1.0), ("p2", "home", 1.0)],
                                                  "person_id string, category string, orders double"),
                       ignore_nullable=True)


def persona_counts(spark, garden_people=12, home_people=8):
    # two clear tastes: garden buyers (5 garden orders, 1 home) and home buyers (4 home orders)
    rows = [(f"g{i:02d}", "garden", 5.0) for i in range(garden_people)]
    rows += [(f"g{i:02d}", "home", 1.0) for i in range(garden_people)]
    rows += [(f"h{i:02d}", "home", 4.0) for i in range(home_people)]
    return spark.createDataFrame(rows, "person_id string, category string, orders double")


def test_personas_levels_names_and_stable_ids(spark):
    settings = PersonaSettings(k=2, scaling="normalise", seed=1)
    result = personas(spark, persona_counts(spark), settings)
    model = {r.persona_id: r for r in result.model.collect()}
    # garden persona: shares 5/6 garden, 1/6 home; home persona: 0 garden, 1 home. Largest is persona 1.
    assert model[1].persona_name == "garden & home" and model[1].persons == 12
    assert model[2].persona_name == "home & garden" and model[2].persons == 8
    assert model[1].share == {"garden": pytest.approx(0.833333), "home": pytest.approx(0.166667)}
    # non-zero propensities 1/6, 5/6, 1: tertile cuts at 0.611 and 0.889
    assert result.cut_points == pytest.approx([1 / 6 + (5 / 6 - 1 / 6) * 2 / 3, 5 / 6 + (1 - 5 / 6) / 3])
    assert model[1].levels == {"garden": "medium", "home": "low"}
    assert model[2].levels == {"garden": "zero", "home": "high"}
    members = {r.person_id: r.persona_id for r in result.members.collect()}
    assert {p for p, i in members.items() if i == 1} == {f"g{i:02d}" for i in range(12)}
    # next run: the home buyers are now the majority; ids follow the previous personas, not the sizes
    previous = {pid: dict(r.share) for pid, r in model.items()}
    again = personas(spark, persona_counts(spark, garden_people=6, home_people=14), settings, previous)
    names = {r.persona_id: (r.persona_name, r.persons) for r in again.model.collect()}
    assert names == {1: ("garden & home", 6), 2: ("home & garden", 14)}


def test_personas_refuse_too_few_customers(spark):
    with pytest.raises(PredictionError, match=r"at least 25 customers .* for k=5; got 20"):
        personas(spark, persona_counts(spark), PersonaSettings(k=5))


def test_person_products_keep_the_most_recent_distinct_products(spark):
    facts = purchase_facts(spark, [("p1", "o1", 1), ("p1", "o2", 3), ("p1", "o3", 2), ("p2", "o4", 5)])
    lines = spark.createDataFrame([("o1", "B"), ("o1", "A"), ("o2", "C"), ("o2", "A"), ("o3", "D"), ("o3", None),
                                   ("o4", "E"), ("o4", "E")], "order_id string, product_id string")
    # p1 newest first: o2 (A, C: ties by id), o3 (D), o1 (B; A already kept); at most 3; no null product
    got = person_products(facts, lines, 3).orderBy("person_id")
    assert_df_equality(got, spark.createDataFrame([("p1", ["A", "C", "D"]), ("p2", ["E"])],
                                                  "person_id string, products array<string>"),
                       ignore_nullable=True)


def test_co_occurrence_counts_the_persons_owning_both_products(spark):
    per_person = spark.createDataFrame([("p1", ["A", "C", "D"]), ("p2", ["C", "A"]), ("p3", ["B"]), ("p4", [])],
                                       "person_id string, products array<string>")
    got = co_occurrence(per_person, 1).orderBy("product_a", "product_b")
    assert_df_equality(got, spark.createDataFrame(
        [("A", "C", 2), ("A", "D", 1), ("C", "A", 2), ("C", "D", 1), ("D", "A", 1), ("D", "C", 1)],
        "product_a string, product_b string, co_buyers long"), ignore_nullable=True)
    assert_df_equality(co_occurrence(per_person, 2).orderBy("product_a"), spark.createDataFrame(
        [("A", "C", 2), ("C", "A", 2)], "product_a string, product_b string, co_buyers long"), ignore_nullable=True)


@pytest.mark.parametrize("max_in_memory_pairs", [5_000_000, 0], ids=["sparse-matrix", "spark-join"])
def test_recommendations_from_co_buyers(spark, max_in_memory_pairs):
    facts = purchase_facts(spark, [("p1", "o1", 1), ("p2", "o2", 2), ("p3", "o3", 3), ("p4", "o4", 4)])
    lines = spark.createDataFrame([("o1", "A"), ("o1", "B"), ("o1", "C"), ("o2", "A"), ("o2", "B"),
                                   ("o3", "A"), ("o3", "C"), ("o3", "D"), ("o4", "A")],
                                  "order_id string, product_id string")
    settings = RecommendationSettings(top_n=2, min_co_buyers=2, max_in_memory_pairs=max_in_memory_pairs)
    got = recommendations(facts, lines, settings).orderBy("person_id", "rank")
    # co-buyers: A-B 2, A-C 2, others 1 (ignored). p2 owns A,B -> C (via A: 2); p4 owns A -> B 2, C 2 (tie: id)
    assert_df_equality(got, spark.createDataFrame(
        [("p2", 1, "C", 2), ("p3", 1, "B", 2), ("p4", 1, "B", 2), ("p4", 2, "C", 2)],
        "person_id string, rank int, product_id string, score long"), ignore_nullable=True)


def test_sparse_matrix_and_spark_join_give_the_same_recommendations(spark):
    rng = random.Random(11)
    orders = [(f"p{p:03d}", f"o{p:03d}-{n}", rng.randint(1, 28)) for p in range(300) for n in range(rng.randint(1, 4))]
    lines = [(order_id, f"SKU-{rng.randint(1, 30):02d}") for _, order_id, _ in orders for _ in range(rng.randint(1, 5))]
    facts = purchase_facts(spark, orders)
    lines_frame = spark.createDataFrame(lines, "order_id string, product_id string")
    by = {limit: recommendations(facts, lines_frame, RecommendationSettings(top_n=4, min_co_buyers=3,
                                                                            max_products_per_person=6,
                                                                            max_in_memory_pairs=limit))
          for limit in (5_000_000, 0)}
    assert by[0].count() > 900
    assert_df_equality(by[5_000_000], by[0], ignore_row_order=True, ignore_nullable=True)



def _persistent(spark):
    return set(spark.sparkContext._jsc.getPersistentRDDs().keySet())


def test_personas_and_recommendations_hand_back_every_frame_they_keep_cached(spark):
    before = _persistent(spark)
    for scaling in ("normalise", "standardise"):
        result = personas(spark, persona_counts(spark), PersonaSettings(k=2, scaling=scaling))
        result.members.collect()
        for frame in result.cached:
            frame.unpersist()
    facts = purchase_facts(spark, [("p1", "o1", 1), ("p2", "o2", 2), ("p3", "o3", 3)])
    lines = spark.createDataFrame([("o1", "A"), ("o1", "B"), ("o2", "A"), ("o2", "B"), ("o3", "A")],
                                  "order_id string, product_id string")
    for limit in (5_000_000, 0):  # the joined pair table (limit 0) is handed back too
        cached: list = []
        recommendations(facts, lines, RecommendationSettings(min_co_buyers=1, max_in_memory_pairs=limit),
                        cached).collect()
        for frame in cached:
            frame.unpersist()
    assert _persistent(spark) == before
