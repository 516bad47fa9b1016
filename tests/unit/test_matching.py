from __future__ import annotations

import math
from datetime import date

import numpy as np
import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from cdp_spark.config import ComparisonSettings, MatchingSettings, SnmPass
from cdp_spark.identity.candidates import candidate_pairs, key_pairs, snm_pairs
from cdp_spark.identity.compare import attach_records, compare
from cdp_spark.identity.fellegi_sunter import (
    FsModel,
    expectation_maximisation,
    level_shares,
    random_pairs,
    score,
    train_sessions,
)

KINDS = {"a": "exact", "b": "exact"}


def test_em_recovers_hand_computed_parameters():
    # Two fields, u = [0.9, 0.1] each; truth: prior 0.2, m = [0.1, 0.9]. Expected counts of 1000 pairs:
    # (1,1): 1000*(0.2*0.81 + 0.8*0.01) = 170; (1,0) = (0,1): 1000*(0.2*0.09 + 0.8*0.09) = 90;
    # (0,0): 1000*(0.2*0.01 + 0.8*0.81) = 650. With exact expected counts the MLE is the truth.
    patterns = np.array([[1, 1], [1, 0], [0, 1], [0, 0]])
    counts = np.array([170.0, 90.0, 90.0, 650.0])
    u = {"a": [0.9, 0.1], "b": [0.9, 0.1]}
    m, prior, iterations = expectation_maximisation(patterns, counts, u, ["a", "b"], KINDS, iterations=5000,
                                                    prior=0.5, tolerance=1e-14, pseudo_count=0.0)
    assert prior == pytest.approx(0.2, abs=2e-3)
    assert m["a"] == pytest.approx([0.1, 0.9], abs=5e-3) and m["b"] == pytest.approx([0.1, 0.9], abs=5e-3)
    assert iterations > 1


def test_em_fits_only_the_prior_when_m_is_fixed():
    patterns = np.array([[1, 1], [1, 0], [0, 1], [0, 0]])
    counts = np.array([170.0, 90.0, 90.0, 650.0])
    u = {"a": [0.9, 0.1], "b": [0.9, 0.1]}
    m, prior, _ = expectation_maximisation(patterns, counts, u, ["a", "b"], KINDS, iterations=500, prior=0.5,
                                           m_start={"a": [0.1, 0.9], "b": [0.1, 0.9]}, update_m=False,
                                           tolerance=1e-12)
    assert m == {"a": [0.1, 0.9], "b": [0.1, 0.9]} and prior == pytest.approx(0.2, abs=1e-6)


def test_level_shares_count_non_null_levels_with_one_pseudo_pair_each():
    # field a: level 0 x 3 pairs, level 1 x 5, null x 2 (left out) -> (3+1, 5+1) / 10
    patterns = np.array([[0, 1], [1, 0], [-1, 0]])
    counts = np.array([3.0, 5.0, 2.0])
    u = level_shares(patterns, counts, ["a", "b"], KINDS)
    assert u == {"a": pytest.approx([0.4, 0.6]), "b": pytest.approx([8 / 12, 4 / 12])}


def test_training_sessions_leave_out_their_own_field_then_fit_the_prior():
    # one session on "a": its agreeing rows (a = 1) hold b's patterns 170 x 1 and 90 x 0, which alone cannot
    # separate matches from non-matches; EM from prior 0.9 gives b's m, and "a" (no session estimates it)
    # keeps the default start; the prior is then fitted on all rows with that m and u fixed
    patterns = np.array([[1, 1], [1, 0], [0, 1], [0, 0]])
    counts = np.array([170.0, 90.0, 90.0, 650.0])
    u = {"a": [0.9, 0.1], "b": [0.9, 0.1]}
    m, prior, _ = train_sessions(patterns, counts, u, ["a", "b"], KINDS, ["a"], 200)
    m_b, _, _ = expectation_maximisation(np.array([[1], [0]]), np.array([170.0, 90.0]), u, ["b"], KINDS, 200,
                                         prior=0.9)
    start = np.linspace(0.05, 1.0, 2) ** 3
    assert m == {"a": pytest.approx(list(start / start.sum())), "b": pytest.approx(m_b["b"])}
    _, expected_prior, _ = expectation_maximisation(patterns, counts, u, ["a", "b"], KINDS, 200, prior=0.1,
                                                    m_start=m, update_m=False)
    assert prior == pytest.approx(expected_prior)


SETTINGS = MatchingSettings(comparisons=[
    ComparisonSettings(field="first", kind="name", canonical="canon", term_frequency=True),
    ComparisonSettings(field="email", kind="email"), ComparisonSettings(field="phone", kind="phone"),
    ComparisonSettings(field="born", kind="date"), ComparisonSettings(field="postcode", kind="postcode"),
    ComparisonSettings(field="city", kind="exact")])
RECORD_SCHEMA = ("record_id string, first string, canon string, email string, phone string, born date, "
                 "postcode string, city string")


def test_random_pairs_do_not_depend_on_partitioning_or_numbering(spark):
    names = spark.range(2000).select(F.format_string("crm:%05d", "id").alias("record_name"))
    # the same records numbered two ways and split into partitions two ways
    one = names.withColumn("record_id", F.monotonically_increasing_id()).repartition(1)
    other = names.withColumn("record_id", F.xxhash64("record_name")).repartition(5, "record_name")

    def drawn(frame):
        pairs = random_pairs(frame, 500, seed=11, draw_key="record_name")
        lookup = frame.select("record_id", "record_name")
        return sorted((r.a, r.b) for r in pairs.join(lookup.toDF("record_a", "a"), "record_a")
                      .join(lookup.toDF("record_b", "b"), "record_b").collect())

    first = drawn(one)
    assert first == drawn(other)
    assert all(a != b for a, b in first) and 400 <= len(first) <= 600  # about one pair per bucket


def test_comparison_levels_for_every_kind(spark):
    records = spark.createDataFrame([
        ("a1", "jose", "jose", "jo@x.es", "+34611222333", date(1990, 3, 4), "28013", "madrid"),
        ("a2", "jose", "jose", "jo@x.es", "+34611222333", date(1990, 3, 4), "28013", "madrid"),     # exact all
        ("b1", "pepe", "jose", "jo@y.es", "+34601222333", date(1990, 4, 3), "28099", "getafe"),    # near
        ("c1", "josep", "josep", "jo1@x.es", "+34611000000", date(1990, 3, 9), "08001", "madrid"),  # jw high
        ("d1", "josefa", "josefa", "zz@q.es", "+33611222000", date(1991, 5, 9), "46001", None),    # jw low
        ("e1", "maria", "maria", None, None, None, None, None),
    ], RECORD_SCHEMA)
    pairs = spark.createDataFrame([("a1", x) for x in ("a2", "b1", "c1", "d1", "e1")],
                                  "record_a string, record_b string")
    levels = compare(attach_records(pairs, records), SETTINGS.comparisons, SETTINGS).select(
        "record_b", *[f"lvl_{c.field}" for c in SETTINGS.comparisons]).orderBy("record_b")
    expected = spark.createDataFrame([
        ("a2", 4, 2, 2, 2, 2, 1),
        ("b1", 3, 1, 1, 1, 1, 0),     # nickname; same local part; last 7 digits; day-month swapped; same area
        ("c1", 2, 1, 0, 1, 0, 1),     # JW(jose, josep) = 0.96; edit distance 1; 2 of 3 date parts
        ("d1", 2, 0, 0, 0, 0, -1),    # JW(jose, josefa) = 0.933: high band; the rest differs, city null
        ("e1", 0, -1, -1, -1, -1, -1),
    ], "record_b string, lvl_first int, lvl_email int, lvl_phone int, lvl_born int, lvl_postcode int, lvl_city int")
    assert_df_equality(levels, expected, ignore_nullable=True)


def test_email_levels_near_is_same_local_part_or_one_edit(spark):
    records = spark.createDataFrame([("a", "jo@x.es"), ("b", "jo@y.org"), ("c", "jo@x.ez"), ("d", "oj@x.es"),
                                     ("e", "joxx@x.es"), ("f", "ajo@x.es")], "record_id string, email string")
    settings = MatchingSettings(comparisons=[ComparisonSettings(field="email", kind="email")])
    pairs = spark.createDataFrame([("a", x) for x in "bcdef"], "record_a string, record_b string")
    levels = compare(attach_records(pairs, records), settings.comparisons, settings).select("record_b", "lvl_email")
    # same local part; one substitution; two edits; two insertions; one insertion
    expected = spark.createDataFrame([("b", 1), ("c", 1), ("d", 0), ("e", 0), ("f", 1)],
                                     "record_b string, lvl_email int")
    assert_df_equality(levels, expected, ignore_nullable=True, ignore_row_order=True)


def test_jaro_winkler_bands(spark):
    records = spark.createDataFrame([("x", "martha", "martha"), ("y", "marhta", "marhta"), ("z", "dwayne", "dwayne"),
                                     ("w", "duane", "duane")], "record_id string, first string, canon string")
    settings = MatchingSettings(comparisons=[ComparisonSettings(field="first", kind="name")])
    pairs = spark.createDataFrame([("x", "y"), ("z", "w"), ("x", "z")], "record_a string, record_b string")
    got = {(r.record_a, r.record_b): r.lvl_first for r in compare(attach_records(pairs, records),
                                                                   settings.comparisons, settings).collect()}
    # JW(martha, marhta) = 0.961 (high); JW(dwayne, duane) = 0.84 (< 0.85: different); martha/dwayne: different
    assert got == {("x", "y"): 2, ("z", "w"): 0, ("x", "z"): 0}


def test_snm_windows_give_exact_pairs(spark):
    records = spark.createDataFrame([("r1", "smith"), ("r2", "smyth"), ("r3", "smithe"), ("r4", "jones"),
                                     ("r5", "jonas"), ("r6", None)], "record_id string, surname string")
    passes = [SnmPass(name="surname", key="surname", window=3, prefix_length=1)]
    pairs = snm_pairs(records, passes)
    assert pairs is not None
    # partition "s": smith(r1), smithe(r3), smyth(r2) sorted; partition "j": jonas(r5), jones(r4)
    expected = spark.createDataFrame([("r1", "r2", "snm:surname"), ("r1", "r3", "snm:surname"),
                                      ("r2", "r3", "snm:surname"), ("r4", "r5", "snm:surname")],
                                     "record_a string, record_b string, source string")
    assert_df_equality(pairs.orderBy("record_a", "record_b"), expected, ignore_nullable=True)


def test_snm_passes_share_one_sort_with_their_own_windows_and_prefixes(spark):
    records = spark.createDataFrame([("r1", "smith", "b"), ("r2", "smyth", "a"), ("r3", "smithe", "c"),
                                     ("r4", "jones", "d"), ("r5", "jonas", None)],
                                    "record_id string, surname string, city string")
    passes = [SnmPass(name="surname", key="surname", window=3, prefix_length=1),
              SnmPass(name="city", key="city", window=2, prefix_length=0)]
    pairs = snm_pairs(records, passes)
    assert pairs is not None
    # surname: s -> smith(r1), smithe(r3), smyth(r2), window 3; j -> jonas(r5), jones(r4)
    # city (one partition, window 2): a(r2), b(r1), c(r3), d(r4) -> neighbours only
    expected = spark.createDataFrame([("r1", "r2", "snm:city"), ("r1", "r2", "snm:surname"),
                                      ("r1", "r3", "snm:city"), ("r1", "r3", "snm:surname"),
                                      ("r2", "r3", "snm:surname"), ("r3", "r4", "snm:city"),
                                      ("r4", "r5", "snm:surname")],
                                     "record_a string, record_b string, source string")
    assert_df_equality(pairs.orderBy("record_a", "record_b", "source"), expected, ignore_nullable=True)


def test_matching_reads_only_compared_blocking_rule_and_snm_columns(spark):
    from cdp_spark.identity.matching import matched_columns

    records = spark.createDataFrame([], "record_id string, first string, email string, city string, "
                                        "city_code string, phone string, tier string, born date, loyalty long")
    settings = MatchingSettings(
        blocking_keys=["phone"], comparisons=[ComparisonSettings(field="first", kind="name")],
        snm_passes=[SnmPass(name="c", key="concat(city_code, 'city', first)", window=2, prefix_length=1)],
        force_nonmatch=["year(l.born) <> year(r.born)"])
    # city appears only inside a string literal and as part of city_code: a word match keeps it (never
    # too few columns); tier, email and loyalty are read by nothing
    assert matched_columns(records, settings).columns == ["record_id", "first", "born", "phone", "city",
                                                          "city_code"]


def test_candidates_union_keys_and_passes_once(spark):
    records = spark.createDataFrame([("r1", "a@x", "smith"), ("r2", "a@x", "smyth"), ("r3", None, "smithe")],
                                    "record_id string, email string, surname string")
    got = candidate_pairs(records, ["email"], [SnmPass(name="s", key="surname", window=2, prefix_length=0)], 10)
    assert sorted((r.record_a, r.record_b, tuple(r.sources)) for r in got.collect()) == [
        ("r1", "r2", ("key:email",)), ("r1", "r3", ("snm:s",)), ("r2", "r3", ("snm:s",))]
    assert sorted((r.record_a, r.record_b) for r in key_pairs(records, ["email"], 1).collect()) == []


def test_score_adds_prior_field_weights_and_term_frequency(spark):
    model = FsModel(fields=["first", "city"], kinds={"first": "exact", "city": "exact"},
                    m={"first": [0.2, 0.8], "city": [0.4, 0.6]}, u={"first": [0.95, 0.05], "city": [0.8, 0.2]},
                    prior=0.1, tf_fields=["first"])
    compared = spark.createDataFrame([("a", "b", 1, 1, "ana"), ("a", "c", 0, -1, "ana")],
                                     "record_a string, record_b string, lvl_first int, lvl_city int, term_first string")
    tf = {"first": spark.createDataFrame([("ana", 0.025)], "tf_value string, tf_first double")}
    got = {r.record_b: r for r in score(compared, model, tf).collect()}
    prior = math.log2(0.1 / 0.9)
    exact_first = math.log2(0.8 / 0.05) + math.log2(0.05 / 0.025)  # a rarer name than average weighs more
    assert got["b"].match_weight == pytest.approx(prior + exact_first + math.log2(0.6 / 0.2))
    assert got["c"].match_weight == pytest.approx(prior + math.log2(0.2 / 0.95))  # null city adds nothing
    assert got["b"].match_probability == pytest.approx(1 / (1 + 2 ** -got["b"].match_weight))
    assert got["c"].field_weights == {"first": round(math.log2(0.2 / 0.95), 4), "city": 0.0}


def test_match_with_a_given_model_accepts_forces_and_counts(spark):
    from cdp_spark.identity.matching import match

    records = spark.createDataFrame([
        ("crm:1", "ana", "a@x.es", date(1990, 1, 2)),
        ("web:1", "ana", "a@x.es", date(1990, 1, 2)),
        ("web:2", "bob", "a@x.es", date(1975, 5, 9)),   # shares the e-mail; every birth date part differs
        ("web:3", "eva", "e@x.es", date(1980, 3, 3)),   # no candidate
    ], "record_id string, first string, email string, born date")
    settings = MatchingSettings(
        blocking_keys=["email"], comparisons=[ComparisonSettings(field="first", kind="name"),
                                              ComparisonSettings(field="email", kind="email"),
                                              ComparisonSettings(field="born", kind="date")],
        force_nonmatch=["year(l.born) <> year(r.born) AND month(l.born) <> month(r.born) "
                        "AND day(l.born) <> day(r.born)"])
    model = FsModel(["first", "email", "born"], {"first": "name", "email": "email", "born": "date"},
                    m={"first": [0.05, 0.05, 0.05, 0.05, 0.8], "email": [0.05, 0.05, 0.9], "born": [0.05, 0.05, 0.9]},
                    u={"first": [0.9, 0.04, 0.03, 0.02, 0.01], "email": [0.98, 0.01, 0.01], "born": [0.9, 0.05, 0.05]},
                    prior=0.1)
    result = match(records, settings, model=model)
    weight = math.log2(0.1 / 0.9) + model.weight("first", 4) + model.weight("email", 2) + model.weight("born", 2)
    expected = spark.createDataFrame([("crm:1", "web:1", ["key:email"], round(weight, 4), None)],
                                     "record_a string, record_b string, sources array<string>, match_weight double, "
                                     "forced string")
    assert_df_equality(result.edges.select("record_a", "record_b", "sources", "match_weight", "forced"), expected,
                       ignore_nullable=True)
    assert {k: result.counts[k] for k in ("records", "candidate_pairs", "accepted_pairs", "forced_nonmatch")} == {
        "records": 4, "candidate_pairs": 2, "accepted_pairs": 1, "forced_nonmatch": 1}


def test_match_adjusts_exact_agreement_on_a_common_value_by_its_term_frequency(spark):
    from cdp_spark.identity.matching import match

    records = spark.createDataFrame([
        ("crm:1", "ana", "a@x.es"), ("web:1", "ana", "a@x.es"),   # "ana": 3 of 5 records
        ("web:2", "zoe", "z@x.es"), ("web:3", "zoe", "z@x.es"),   # "zoe": 2 of 5
        ("web:4", "ana", "q@x.es"),                               # no candidate
    ], "record_id string, first string, email string")
    settings = MatchingSettings(
        blocking_keys=["email"], comparisons=[ComparisonSettings(field="first", kind="name", term_frequency=True),
                                              ComparisonSettings(field="email", kind="email")],
        match_probability=0.5, tf_max_penalty=10.0, tf_max_boost=10.0)
    model = FsModel(["first", "email"], {"first": "name", "email": "email"},
                    m={"first": [0.05, 0.05, 0.05, 0.05, 0.8], "email": [0.05, 0.05, 0.9]},
                    u={"first": [0.9, 0.04, 0.03, 0.02, 0.01], "email": [0.98, 0.01, 0.01]},
                    prior=0.1, tf_fields=["first"])
    result = match(records, settings, model=model)
    base = math.log2(0.1 / 0.9) + model.weight("first", 4) + model.weight("email", 2)
    expected = spark.createDataFrame([
        ("crm:1", "web:1", round(base + math.log2(0.01 / 0.6), 4)),   # the common name weighs less
        ("web:2", "web:3", round(base + math.log2(0.01 / 0.4), 4)),
    ], "record_a string, record_b string, match_weight double")
    assert_df_equality(result.edges.select("record_a", "record_b", "match_weight"), expected,
                       ignore_nullable=True, ignore_row_order=True)
