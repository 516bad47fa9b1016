"""Fellegi-Sunter estimation and scoring, and matching end to end on literal records."""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from cdp_spark.config import BlockingRule, ComparisonSettings, MatchingSettings, SnmPass
from cdp_spark.identity.fellegi_sunter import (
    U_SHRINKAGE,
    Agreement,
    FsModel,
    TrainingBlock,
    exact_agreements,
    exact_u,
    expectation_maximisation,
    field_weights,
    implied_match_share,
    level_shares,
    random_match_prior,
    random_pairs,
    score,
    train_sessions,
    with_exact_u,
)

LEVELS = {"a": ["different", "exact"], "b": ["different", "exact"], "c": ["different", "exact"]}


def test_em_recovers_hand_computed_parameters():
    # Two fields, u = [0.9, 0.1] each; truth: prior 0.2, m = [0.1, 0.9]. Expected counts of 1000 pairs:
    # (1,1): 1000*(0.2*0.81 + 0.8*0.01) = 170; (1,0) = (0,1): 1000*(0.2*0.09 + 0.8*0.09) = 90;
    # (0,0): 1000*(0.2*0.01 + 0.8*0.81) = 650. With exact expected counts the MLE is the truth.
    patterns = np.array([[1, 1], [1, 0], [0, 1], [0, 0]])
    counts = np.array([170.0, 90.0, 90.0, 650.0])
    u = {"a": [0.9, 0.1], "b": [0.9, 0.1]}
    result = expectation_maximisation(patterns, counts, u, ["a", "b"], LEVELS, iterations=5000, prior=0.5,
                                      tolerance=1e-14, pseudo_count=0.0)
    assert result.prior == pytest.approx(0.2, abs=2e-3)
    assert result.m["a"] == pytest.approx([0.1, 0.9], abs=5e-3) and result.m["b"] == pytest.approx([0.1, 0.9], abs=5e-3)
    assert result.iterations > 1


def test_em_fits_only_the_prior_when_m_is_fixed():
    patterns = np.array([[1, 1], [1, 0], [0, 1], [0, 0]])
    counts = np.array([170.0, 90.0, 90.0, 650.0])
    u = {"a": [0.9, 0.1], "b": [0.9, 0.1]}
    result = expectation_maximisation(patterns, counts, u, ["a", "b"], LEVELS, iterations=500, prior=0.5,
                                      m_start={"a": [0.1, 0.9], "b": [0.1, 0.9]}, update_m=False, tolerance=1e-12)
    assert result.m == {"a": [0.1, 0.9], "b": [0.1, 0.9]} and result.prior == pytest.approx(0.2, abs=1e-6)


def test_em_with_free_u_separates_non_matches_that_do_not_look_like_random_pairs():
    # an address block: 325 matches (mostly agreeing on given name a, surname b and e-mail c) and 300
    # people of the same households, of whom 200 share the surname. With u fixed to the random pairs'
    # [0.9, 0.1], sharing a surname looks like a match and the households join the matches (m of a
    # different given name 0.36); with the non-matches' u estimated too, they do not
    patterns = np.array([[1, 1, 1], [1, 1, 0], [0, 1, 1], [0, 1, 0], [0, 0, 0]])
    counts = np.array([300.0, 20.0, 5.0, 200.0, 100.0])
    levels = {f: ["different", "exact"] for f in "abc"}
    u = {f: [0.9, 0.1] for f in "abc"}
    fixed = expectation_maximisation(patterns, counts, u, list("abc"), levels, iterations=500, prior=0.5)
    free = expectation_maximisation(patterns, counts, u, list("abc"), levels, iterations=500, prior=0.5,
                                    update_u=True, u_shrinkage=200.0)
    assert fixed.prior > 0.75 and fixed.m["a"][0] > 0.3
    assert free.prior == pytest.approx(325 / 625, abs=0.03) and free.m["a"][0] < 0.02
    assert free.u["b"][1] > 0.4  # the households' surname agreement, pulled towards 0.1 by the shrinkage


def test_level_shares_count_non_null_levels_with_one_pseudo_pair_each():
    # field a: level 0 x 3 pairs, level 1 x 5, null x 2 (left out) -> (3+1, 5+1) / 10
    patterns = np.array([[0, 1], [1, 0], [-1, 0]])
    counts = np.array([3.0, 5.0, 2.0])
    u = level_shares(patterns, counts, ["a", "b"], LEVELS)
    assert u == {"a": pytest.approx([0.4, 0.6]), "b": pytest.approx([8 / 12, 4 / 12])}


def test_training_blocks_leave_out_their_own_fields_average_m_and_keep_their_u():
    # block "on_a" (rows 0-1) fixes a and estimates b and c; block "on_b" (rows 2-3) fixes b and estimates a, c
    patterns = np.array([[1, 1, 1], [1, 0, 0], [1, 1, 1], [0, 1, 0]])
    counts = np.array([80.0, 20.0, 70.0, 30.0])
    u = {f: [0.9, 0.1] for f in "abc"}
    blocks = [TrainingBlock("on_a", np.array([True, True, False, False]), frozenset({"a"})),
              TrainingBlock("on_b", np.array([False, False, True, True]), frozenset({"b"}))]
    trained = train_sessions(patterns, counts, u, ["a", "b", "c"], LEVELS, blocks, 200)
    on_a = expectation_maximisation(np.array([[1, 1], [0, 0]]), np.array([80.0, 20.0]), u, ["b", "c"], LEVELS, 200,
                                    prior=0.5, update_u=True, u_shrinkage=U_SHRINKAGE)
    on_b = expectation_maximisation(np.array([[1, 1], [0, 0]]), np.array([70.0, 30.0]), u, ["a", "c"], LEVELS, 200,
                                    prior=0.5, update_u=True, u_shrinkage=U_SHRINKAGE)
    c_mean = (np.asarray(on_a.m["c"]) + np.asarray(on_b.m["c"])) / 2
    assert trained.m["a"] == pytest.approx(on_b.m["a"]) and trained.m["b"] == pytest.approx(on_a.m["b"])
    assert trained.m["c"] == pytest.approx(list(c_mean / c_mean.sum()))
    assert trained.trained_by == {"a": ["on_b"], "b": ["on_a"], "c": ["on_a", "on_b"]}
    assert trained.conditional_u == {"on_a": {"b": pytest.approx(on_a.u["b"]), "c": pytest.approx(on_a.u["c"])},
                                     "on_b": {"a": pytest.approx(on_b.u["a"]), "c": pytest.approx(on_b.u["c"])}}
    share = expectation_maximisation(patterns, counts, u, ["a", "b", "c"], LEVELS, 200, prior=0.1,
                                     m_start=trained.m, update_m=False, update_u=True)
    assert trained.share == pytest.approx(share.prior)


def test_a_block_keeps_its_own_u_only_where_its_non_matches_are_many():
    # u of every field [0.99, 0.01]; both blocks fix a. An identifier's block: 10,000 matches, 300 matches with
    # typos in c and d, 50 non-matches. EM's non-match class takes the 300 typo matches, which agree on b: with
    # 200 pseudo-pairs its u of agreeing on b would be 0.55 (agreement on b given a worth almost nothing); the
    # shrinkage keeps it near the population's. A households' block: 15,000 non-matches share b (a surname):
    # its own u of agreeing on b stays high
    four = {f: ["different", "exact"] for f in "abcd"}
    u = {f: [0.99, 0.01] for f in "abcd"}
    patterns = np.array([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]])
    on_a = [TrainingBlock("on_a", np.array([True, True, True]), frozenset("a"))]
    identifier = train_sessions(patterns, np.array([10000.0, 300.0, 50.0]), u, list("abcd"), four, on_a, 500)
    households = train_sessions(patterns, np.array([3000.0, 15000.0, 5000.0]), u, list("abcd"), four, on_a, 500)
    assert identifier.conditional_u["on_a"]["b"] == pytest.approx([0.93458, 0.06542], abs=1e-4)
    assert households.conditional_u["on_a"]["b"] == pytest.approx([0.39800, 0.60200], abs=1e-4)


def test_a_level_no_block_can_contain_is_estimated_on_all_candidates():
    # "swap" of field a never occurs in the only block (which fixes b): its m comes from all the candidates,
    # where the 30 pairs at that level agree on b and c like the matches
    levels = {"a": ["different", "swap", "exact"], "b": ["different", "exact"], "c": ["different", "exact"]}
    patterns = np.array([[2, 1, 1], [0, 1, 0], [1, 1, 1], [0, 0, 0]])
    counts = np.array([300.0, 100.0, 30.0, 3000.0])
    u = {"a": [0.98, 0.0001, 0.0199], "b": [0.9, 0.1], "c": [0.9, 0.1]}
    block = TrainingBlock("on_b", np.array([True, True, False, False]), frozenset({"b"}))
    trained = train_sessions(patterns, counts, u, ["a", "b", "c"], levels, [block], 200)
    in_block = expectation_maximisation(patterns[:2][:, [0, 2]], counts[:2], u, ["a", "c"], levels, 200, prior=0.5,
                                        update_u=True, u_shrinkage=U_SHRINKAGE)
    assert in_block.m["a"][1] < 0.005  # the block saw no swap: one pseudo-pair's worth
    assert trained.m["a"][1] > 0.05 and sum(trained.m["a"]) == pytest.approx(1.0)
    assert trained.m["c"] == pytest.approx(in_block.m["c"])


def test_a_block_leaving_one_field_free_takes_the_share_of_matches_its_fields_imply():
    # the block fixes a and b; only c is free. 900 matches (m_c = [0.1, 0.9]) and 100 non-matches
    # (u_c = [0.99, 0.01]): c agrees in 900*0.9 + 100*0.01 = 811 pairs and differs in 90 + 99 = 189
    patterns = np.array([[1, 1, 1], [1, 1, 0]])
    counts = np.array([811.0, 189.0])
    u = {f: [0.99, 0.01] for f in "abc"}
    rows = np.array([True, True])
    implied = train_sessions(patterns, counts, u, list("abc"), LEVELS,
                             [TrainingBlock("on_ab", rows, frozenset("ab"), implied_share=0.9)], 500)
    # m given the share (one pseudo-pair per level): (90 + 1, 810 + 1) / 902; u is kept
    assert implied.m["c"] == pytest.approx([91 / 902, 811 / 902], abs=1e-3)
    assert implied.conditional_u == {"on_ab": {"c": [0.99, 0.01]}}
    # left to EM, one field cannot tell the share: it stops elsewhere on the likelihood's flat ridge
    free = train_sessions(patterns, counts, u, list("abc"), LEVELS,
                          [TrainingBlock("on_ab", rows, frozenset("ab"))], 500)
    assert abs(free.m["c"][0] - 0.1) > 0.05


def test_implied_match_share_is_what_chance_agreement_on_the_fields_leaves():
    # 1,000 pairs agree on both fields; 10^6 record pairs, 1 % agree on the first field and 0.1 % on the
    # second: 10 agree on both by chance, so 99 % of the block are matches
    assert implied_match_share(1000.0, 1e6, [0.01, 0.001]) == pytest.approx(0.99)
    assert implied_match_share(5.0, 1e6, [0.01, 0.001]) == pytest.approx(1e-6)  # more chance pairs than pairs


def test_training_blocks_fix_the_comparisons_of_their_fields_but_not_a_swap_partner():
    from cdp_spark.identity.matching import column_key, training_blocks

    settings = MatchingSettings(
        blocking_rules=[BlockingRule(name="surname_birth", fields=["last", "born"]),
                        BlockingRule(name="names", fields=["first", "last"], any_order=True)],
        comparisons=[ComparisonSettings(field="first", kind="name", swap_with="last"),
                     ComparisonSettings(field="last", kind="name", swap_with="first"),
                     ComparisonSettings(field="born", kind="date")])
    # labels sorted: bit 0 block:names, bit 1 block:surname_birth; rows: 30 pairs names only, 20 both, 50 surname_birth
    masks = np.array([1, 3, 2])
    counts = np.array([30.0, 20.0, 50.0])
    agreements = {column_key("first"): Agreement(100, 99.0), column_key("last"): Agreement(100, 49.5),
                  column_key("born"): Agreement(100, 9.9)}
    blocks = {b.name: b for b in training_blocks(settings, masks, counts, agreements, records=100)}
    assert blocks["surname_birth"].fixed == frozenset({"last", "born"})  # the given name is trained here
    assert blocks["names"].fixed == frozenset({"first", "last"})
    assert list(blocks["surname_birth"].rows) == [False, True, True]
    # 4,950 record pairs; shares 0.02 (first), 0.01 (last), 0.002 (born)
    assert blocks["surname_birth"].implied_share == pytest.approx(1 - 4950 * 0.01 * 0.002 / 70)
    assert blocks["names"].implied_share == pytest.approx(1 - 4950 * 0.02 * 0.01 / 50)
    unknown = training_blocks(settings, masks, counts, {}, records=100)
    assert [b.implied_share for b in unknown] == [None, None]


def test_exact_agreement_is_counted_from_value_frequencies_and_corrected_for_matches(spark):
    records = spark.createDataFrame([("a", "x"), ("b", "x"), ("c", "x"), ("d", "y"), ("e", "y"), ("f", None)],
                                    "record_id string, v string")
    agreements = exact_agreements(records, {"v": F.col("v")})
    # x: 3 records -> 3 pairs, y: 2 -> 1 pair; 5 records with a value -> 10 pairs
    assert agreements == {"v": Agreement(records=5, agreeing_pairs=4.0)}
    assert agreements["v"].share == pytest.approx(0.4)
    # 3 matching pairs expected among 6 records; both hold a value in (5/6)^2 of them; m_exact 0.9
    both = 3 * (5 / 6) ** 2
    assert exact_u(agreements["v"], 3.0, 6, 0.9) == pytest.approx((4 - both * 0.9) / (10 - both))
    # never below 1 % of the uncorrected share, however many matches are expected
    assert exact_u(agreements["v"], 100.0, 6, 1.0) == pytest.approx(0.004)
    assert with_exact_u({"v": [0.5, 0.3, 0.2], "w": [0.6, 0.4]}, {"v": 0.1}) == {
        "v": pytest.approx([0.5 / 0.8 * 0.9, 0.3 / 0.8 * 0.9, 0.1]), "w": [0.6, 0.4]}


def test_random_match_prior_is_the_expected_matches_over_all_record_pairs():
    assert random_match_prior(0.05, 2000.0, 101) == pytest.approx(0.05 * 2000 / (101 * 100 / 2))


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


def model_two_fields(**extra):
    return FsModel(fields=["first", "city"], levels={"first": ["different", "exact"], "city": ["different", "exact"]},
                   m={"first": [0.2, 0.8], "city": [0.4, 0.6]}, u={"first": [0.95, 0.05], "city": [0.8, 0.2]},
                   prior=0.1, **extra)


def test_score_adds_prior_field_weights_and_term_frequency(spark):
    model = model_two_fields(tf_fields=["first"], tf_base={"first": 0.04})
    compared = spark.createDataFrame([("a", "b", 1, 1, "ana", None), ("a", "c", 0, -1, "ana", None)],
                                     "record_a string, record_b string, lvl_first int, lvl_city int, "
                                     "term_first string, anchor int")
    tf = {"first": spark.createDataFrame([("ana", 0.02)], "tf_value string, tf_first double")}
    got = {r.record_b: r for r in score(compared, model, tf).withColumn("field_weights", field_weights(model))
           .collect()}
    prior = math.log2(0.1 / 0.9)
    exact_first = math.log2(0.8 / 0.05) + math.log2(0.04 / 0.02)  # a rarer name than average weighs more
    assert got["b"].match_weight == pytest.approx(prior + exact_first + math.log2(0.6 / 0.2))
    assert got["c"].match_weight == pytest.approx(prior + math.log2(0.2 / 0.95))  # null city adds nothing
    assert got["b"].match_probability == pytest.approx(1 / (1 + 2 ** -got["b"].match_weight))
    assert got["c"].field_weights == {"first": round(math.log2(0.2 / 0.95), 4), "city": 0.0}


def test_score_given_an_anchor_rule_uses_that_rules_u(spark):
    # pairs agreeing on the "address" rule: among its non-matches half share the city (a household)
    model = model_two_fields(conditional_u={"address": {"city": [0.5, 0.5]}}, anchors=["address"])
    compared = spark.createDataFrame([("a", "b", 1, 1, 0), ("a", "c", 1, 1, None)],
                                     "record_a string, record_b string, lvl_first int, lvl_city int, anchor int")
    got = {r.record_b: r.match_weight for r in score(compared, model).collect()}
    base = math.log2(0.1 / 0.9) + math.log2(0.8 / 0.05)
    assert got == {"b": pytest.approx(base + math.log2(0.6 / 0.5)), "c": pytest.approx(base + math.log2(0.6 / 0.2))}
    assert model.weights("city", "address") == pytest.approx([math.log2(0.4 / 0.5), math.log2(0.6 / 0.5)])


MATCHING = MatchingSettings(
    blocking_rules=[BlockingRule(name="email", fields=["email"], identifier=True, max_block_size=3)],
    snm_passes=[SnmPass(name="first", key="first", window=2, prefix_length=0)],
    comparisons=[ComparisonSettings(field="first", kind="exact"), ComparisonSettings(field="email", kind="exact"),
                 ComparisonSettings(field="born", kind="exact")],
    match_probability=0.5, force_nonmatch=["l.born < date'1900-01-01' OR r.born < date'1900-01-01'"])
GIVEN = FsModel(["first", "email", "born"],
                {f: ["different", "exact"] for f in ("first", "email", "born")},
                m={"first": [0.1, 0.9], "email": [0.1, 0.9], "born": [0.1, 0.9]},
                u={"first": [0.9, 0.1], "email": [0.99, 0.01], "born": [0.9, 0.1]}, prior=0.05)


def test_match_with_a_given_model_accepts_forces_ignores_junk_and_counts(spark):
    from cdp_spark.identity.matching import match

    records = spark.createDataFrame([
        ("crm:1", "ana", "a@x.es", date(1990, 1, 2)),
        ("web:1", "ana", "a@x.es", date(1990, 1, 2)),
        ("web:2", "bob", "a@x.es", date(1890, 5, 9)),    # shares the e-mail; a placeholder birth date
        ("web:3", "eva", "n@a.es", date(1980, 3, 3)),    # "n@a.es": a placeholder on 4 records (junk)
        ("web:4", "eva", "n@a.es", date(1980, 3, 3)),
        ("web:5", "zoe", "n@a.es", date(1970, 3, 3)),
        ("web:6", "zoe", "n@a.es", date(1970, 3, 3)),
    ], "record_id string, first string, email string, born date")
    result = match(records, MATCHING, model=GIVEN)
    w = {f: [math.log2(m / u) for m, u in zip(GIVEN.m[f], GIVEN.u[f], strict=True)] for f in GIVEN.fields}
    prior = math.log2(0.05 / 0.95)
    expected = spark.createDataFrame([
        ("crm:1", "web:1", ["block:email", "snm:first"],
         round(prior + w["first"][1] + w["email"][1] + w["born"][1], 4)),
        # the junk e-mail counts for nothing: names and birth dates decide (found by the SNM pass)
        ("web:3", "web:4", ["snm:first"], round(prior + w["first"][1] + w["born"][1], 4)),
        ("web:5", "web:6", ["snm:first"], round(prior + w["first"][1] + w["born"][1], 4)),
    ], "record_a string, record_b string, sources array<string>, match_weight double")
    assert_df_equality(result.edges.select("record_a", "record_b", "sources", "match_weight"), expected,
                       ignore_nullable=True, ignore_row_order=True)
    counts = result.counts
    # candidates: email block {crm:1, web:1, web:2} (3 pairs); first pass: ana-ana, ana-bob, bob-eva, eva-eva,
    # eva-zoe, zoe-zoe (sorted ana, ana, bob, eva, eva, zoe, zoe)
    assert {k: counts[k] for k in ("records", "candidate_pairs", "accepted_pairs", "forced_nonmatch",
                                   "junk_identifiers")} == {"records": 7, "candidate_pairs": 7, "accepted_pairs": 3,
                                                            "forced_nonmatch": 3, "junk_identifiers": 1}
    assert counts["pairs_per_source"] == {"block:email": 3, "snm:first": 6}
    assert counts["oversized_blocks"] == {"email": {"blocks": 1, "largest": 4}}
    assert sum(counts["weight_histogram"].values()) == 7


@pytest.mark.parametrize("broadcast_records", [500_000, 0])  # left values looked up again / kept in the cache
def test_match_weighs_an_exact_agreement_by_how_common_the_shared_value_is(spark, broadcast_records):
    from cdp_spark.identity.matching import match

    records = spark.createDataFrame([
        ("a:1", "ana", date(1990, 1, 2)), ("a:2", "ana", date(1990, 1, 2)),
        ("e:1", "eva", date(1980, 3, 3)), ("e:2", "eva", date(1980, 3, 3)),
        ("e:3", "eva", date(1970, 4, 4)), ("e:4", "eva", date(1960, 5, 5)),
    ], "record_id string, first string, born date")
    settings = MatchingSettings(
        blocking_rules=[BlockingRule(name="first", fields=["first"])],
        comparisons=[ComparisonSettings(field="first", kind="exact", term_frequency=True),
                     ComparisonSettings(field="born", kind="exact")], match_probability=0.5,
        broadcast_records=broadcast_records)
    model = FsModel(["first", "born"], {f: ["different", "exact"] for f in ("first", "born")},
                    m={"first": [0.1, 0.9], "born": [0.1, 0.9]}, u={"first": [0.9, 0.1], "born": [0.9, 0.1]},
                    prior=0.05, tf_fields=["first"], tf_base={"first": 0.25})
    result = match(records, settings, model=model)
    agree = math.log2(0.05 / 0.95) + 2 * math.log2(0.9 / 0.1)
    # "ana" is on 2 of 6 records, "eva" on 4: the commoner name weighs less (log2(base / tf) bits)
    expected = spark.createDataFrame([
        ("a:1", "a:2", round(agree + math.log2(0.25 / (2 / 6)), 4), round(math.log2(9) + math.log2(0.25 / (2 / 6)), 4)),
        ("e:1", "e:2", round(agree + math.log2(0.25 / (4 / 6)), 4), round(math.log2(9) + math.log2(0.25 / (4 / 6)), 4)),
    ], "record_a string, record_b string, match_weight double, first_weight double")
    assert_df_equality(result.edges.select("record_a", "record_b", "match_weight",
                                           F.col("field_weights")["first"].alias("first_weight")),
                       expected, ignore_nullable=True, ignore_row_order=True)
    assert result.counts["candidate_pairs"] == 7 and result.counts["accepted_pairs"] == 2


def test_match_fits_a_model_that_separates_matches_on_literal_records(spark):
    from cdp_spark.identity.matching import match, model_fits

    rows = []
    for i in range(60):  # 60 persons, two records each, one with a typo-free copy
        born = date(1950 + i % 40, 1 + i % 12, 1 + i % 28)
        rows += [(f"a:{i}", f"name{i % 45}", f"m{i}@x.es", born), (f"b:{i}", f"name{i % 45}", f"m{i}@x.es", born)]
    records = spark.createDataFrame(rows, "record_id string, first string, email string, born date")
    settings = MatchingSettings(
        blocking_rules=[BlockingRule(name="email", fields=["email"]), BlockingRule(name="first", fields=["first"])],
        comparisons=[ComparisonSettings(field="first", kind="exact"), ComparisonSettings(field="email", kind="exact"),
                     ComparisonSettings(field="born", kind="exact")], u_sample_pairs=5000)
    result = match(records, settings)
    pairs = sorted((r.record_a, r.record_b) for r in result.edges.collect())
    assert pairs == sorted((f"a:{i}", f"b:{i}") for i in range(60))
    assert model_fits(result.model, settings) and result.model.trained_by["born"] == ["email", "first"]
    assert 0 < result.model.prior < 0.05


def test_matching_reads_only_compared_blocking_rule_and_snm_columns(spark):
    from cdp_spark.identity.matching import matched_columns

    records = spark.createDataFrame([], "record_id string, first string, last string, email string, city string, "
                                        "city_code string, phone string, tier string, born date, loyalty long, "
                                        "street string, pc string")
    settings = MatchingSettings(
        blocking_rules=[BlockingRule(name="phone", fields=["phone"])],
        comparisons=[ComparisonSettings(field="first", kind="name", swap_with="last"),
                     ComparisonSettings(field="address", kind="address", parts={"street": "street", "postcode": "pc"})],
        snm_passes=[SnmPass(name="c", key="concat(city_code, 'city', first)", window=2, prefix_length=1)],
        force_nonmatch=["year(l.born) <> year(r.born)"])
    # city appears only inside a string literal and as part of city_code: a word match keeps it (never
    # too few columns); tier, email and loyalty are read by nothing
    assert matched_columns(records, settings).columns == ["record_id", "first", "last", "street", "pc", "born",
                                                          "phone", "city", "city_code"]


def test_weight_histogram_counts_each_whole_bit_bin_and_puts_the_tails_in_the_end_bins(spark):
    from cdp_spark.identity.matching import HISTOGRAM_BINS, weight_histogram

    weights = spark.createDataFrame([(-35.0,), (-20.5,), (-3.5,), (-3.0,), (0.2,), (6.99,), (6.0,), (50.0,), (80.0,)],
                                    "match_weight double")
    row = weights.agg(*weight_histogram("match_weight")).first().asDict()
    assert list(row) == [f"w{b}" for b in HISTOGRAM_BINS]
    assert {k: v for k, v in row.items() if v} == {"w-20": 2, "w-4": 1, "w-3": 1, "w0": 1, "w6": 2, "w50": 2}
