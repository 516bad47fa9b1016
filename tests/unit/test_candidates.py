"""Candidate generation: blocking rules, the block-size guard, adaptive SNM windows, the union of sources."""

from __future__ import annotations

from itertools import combinations

import pytest
from chispa import assert_df_equality

from cdp_spark.config import BlockingRule, SnmPass
from cdp_spark.identity.candidates import (
    block_pairs,
    candidate_masks,
    candidate_pairs,
    key_pairs,
    oversized_blocks,
    snm_pairs,
    source_labels,
)

PAIRS = "record_a string, record_b string, source string"


def test_blocking_rule_gives_every_pair_of_a_block_and_needs_every_field(spark):
    records = spark.createDataFrame([("r1", "ana", "ruiz"), ("r2", "ana", "ruiz"), ("r3", "ana", "ruiz"),
                                     ("r4", "ana", None), ("r5", "eva", "ruiz"), ("r6", "", "ruiz")],
                                    "record_id string, first string, last string")
    rule = BlockingRule(name="names", fields=["first", "last"])
    pairs = block_pairs(records, [rule], max_block_size=10)
    assert pairs is not None
    expected = spark.createDataFrame([("r1", "r2", "block:names"), ("r1", "r3", "block:names"),
                                      ("r2", "r3", "block:names")], PAIRS)
    assert_df_equality(pairs.orderBy("record_a", "record_b"), expected, ignore_nullable=True)


def test_any_order_rule_pairs_swapped_names(spark):
    records = spark.createDataFrame([("r1", "ana", "ruiz"), ("r2", "ruiz", "ana"), ("r3", "ana", "ana")],
                                    "record_id string, first string, last string")
    rule = BlockingRule(name="names", fields=["first", "last"], any_order=True)
    pairs = block_pairs(records, [rule], max_block_size=10)
    assert pairs is not None
    assert_df_equality(pairs, spark.createDataFrame([("r1", "r2", "block:names")], PAIRS), ignore_nullable=True)


def test_blocks_over_the_size_limit_give_no_pairs_and_are_reported(spark):
    rows = [(f"r{i}", "000000000" if i < 4 else f"6{i:08d}", "x") for i in range(6)] + [("r9", "611111111", "x"),
                                                                                         ("r8", "611111111", "x")]
    records = spark.createDataFrame(rows, "record_id string, phone string, city string")
    rules = [BlockingRule(name="phone", fields=["phone"], identifier=True),
             BlockingRule(name="city", fields=["city"], max_block_size=8)]
    pairs = block_pairs(records, rules, max_block_size=3)
    assert pairs is not None
    # the placeholder phone (4 records) is over the limit of 3; the city rule's own limit is 8 (8 records)
    got = sorted((r.record_a, r.record_b, r.source) for r in pairs.collect())
    assert [p for p in got if p[2] == "block:phone"] == [("r8", "r9", "block:phone")]
    city = sorted(f"r{i}" for i in (0, 1, 2, 3, 4, 5, 8, 9))
    assert [p for p in got if p[2] == "block:city"] == [(a, b, "block:city") for a, b in combinations(city, 2)]
    oversized = oversized_blocks(records, rules, max_block_size=3).collect()
    assert [(r.rule, r.block_key, r.records) for r in oversized] == [("phone", "000000000", 4)]


def test_snm_windows_give_exact_pairs(spark):
    records = spark.createDataFrame([("r1", "smith"), ("r2", "smyth"), ("r3", "smithe"), ("r4", "jones"),
                                     ("r5", "jonas"), ("r6", None)], "record_id string, surname string")
    passes = [SnmPass(name="surname", key="surname", window=3, prefix_length=1)]
    pairs = snm_pairs(records, passes)
    assert pairs is not None
    # partition "s": smith(r1), smithe(r3), smyth(r2) sorted; partition "j": jonas(r5), jones(r4)
    expected = spark.createDataFrame([("r1", "r2", "snm:surname"), ("r1", "r3", "snm:surname"),
                                      ("r2", "r3", "snm:surname"), ("r4", "r5", "snm:surname")], PAIRS)
    assert_df_equality(pairs.orderBy("record_a", "record_b"), expected, ignore_nullable=True)


def test_adaptive_window_grows_only_while_keys_share_their_dense_prefix(spark):
    # sorted: garcia1..garcia5 (dense: they share "garcia"), then gomez
    names = ["garcia1", "garcia2", "garcia3", "garcia4", "garcia5", "gomez"]
    records = spark.createDataFrame([(f"r{i}", n) for i, n in enumerate(names, 1)], "record_id string, key string")
    adaptive = [SnmPass(name="k", key="key", window=2, max_window=4, dense_prefix=6, prefix_length=1)]
    pairs = snm_pairs(records, adaptive)
    assert pairs is not None
    got = sorted((r.record_a, r.record_b) for r in pairs.collect())
    # each garcia pairs with up to the next 3 garcias; the next record always (window 2): garcia5 -> gomez
    assert got == [("r1", "r2"), ("r1", "r3"), ("r1", "r4"), ("r2", "r3"), ("r2", "r4"), ("r2", "r5"),
                   ("r3", "r4"), ("r3", "r5"), ("r4", "r5"), ("r5", "r6")]
    fixed = snm_pairs(records, [SnmPass(name="k", key="key", window=2, prefix_length=1)])
    assert fixed is not None and sorted((r.record_a, r.record_b) for r in fixed.collect()) == [
        ("r1", "r2"), ("r2", "r3"), ("r3", "r4"), ("r4", "r5"), ("r5", "r6")]


def test_snm_passes_share_one_sort_with_their_own_windows_and_prefixes(spark):
    records = spark.createDataFrame([("r1", "smith", "b"), ("r2", "smyth", "a"), ("r3", "smithe", "c"),
                                     ("r4", "jones", "d"), ("r5", "jonas", None)],
                                    "record_id string, surname string, city string")
    passes = [SnmPass(name="surname", key="surname", window=3, prefix_length=1),
              SnmPass(name="city", key="city", window=2, prefix_length=0)]
    pairs = snm_pairs(records, passes)
    assert pairs is not None
    expected = spark.createDataFrame([("r1", "r2", "snm:city"), ("r1", "r2", "snm:surname"),
                                      ("r1", "r3", "snm:city"), ("r1", "r3", "snm:surname"),
                                      ("r2", "r3", "snm:surname"), ("r3", "r4", "snm:city"),
                                      ("r4", "r5", "snm:surname")], PAIRS)
    assert_df_equality(pairs.orderBy("record_a", "record_b", "source"), expected, ignore_nullable=True)


def test_candidates_union_rules_and_passes_once_with_their_sources(spark):
    records = spark.createDataFrame([("r1", "a@x", "smith"), ("r2", "a@x", "smyth"), ("r3", None, "smithe")],
                                    "record_id string, email string, surname string")
    rules = [BlockingRule(name="email", fields=["email"], identifier=True)]
    passes = [SnmPass(name="s", key="surname", window=2, prefix_length=0)]
    got = candidate_pairs(records, rules, passes, 10)
    # sorted: smith(r1), smithe(r3), smyth(r2): the pass pairs r1-r3 and r2-r3
    assert sorted((r.record_a, r.record_b, tuple(r.sources)) for r in got.collect()) == [
        ("r1", "r2", ("block:email",)), ("r1", "r3", ("snm:s",)), ("r2", "r3", ("snm:s",))]
    labels = source_labels(rules, passes)
    masks = {(r.record_a, r.record_b): r.source_mask for r in candidate_masks(records, rules, passes, 10).collect()}
    assert labels == ["block:email", "snm:s"] and masks == {("r1", "r2"): 1, ("r1", "r3"): 2, ("r2", "r3"): 2}


def test_candidate_masks_set_the_bit_of_every_source_that_proposed_a_pair(spark):
    records = spark.createDataFrame([("r1", "a@x", "smith", "x"), ("r2", "a@x", "smithe", None),
                                     ("r3", None, "smyth", "x")],
                                    "record_id string, email string, surname string, city string")
    # labels sort as block:city, block:email, snm:s (bits 1, 2, 4), not in the rules' order
    rules = [BlockingRule(name="email", fields=["email"]), BlockingRule(name="city", fields=["city"])]
    passes = [SnmPass(name="s", key="surname", window=2, prefix_length=0)]
    assert source_labels(rules, passes) == ["block:city", "block:email", "snm:s"]
    expected = spark.createDataFrame([("r1", "r2", 6), ("r1", "r3", 1), ("r2", "r3", 4)],
                                     "record_a string, record_b string, source_mask long")
    assert_df_equality(candidate_masks(records, rules, passes, 10).orderBy("record_a", "record_b"), expected,
                       ignore_nullable=True)


def test_key_pairs_link_each_value_to_its_smallest_record(spark):
    records = spark.createDataFrame([("b", "x"), ("a", "x"), ("c", "x"), ("d", "y")], "record_id string, email string")
    got = sorted((r.record_a, r.record_b, r.source) for r in key_pairs(records, ["email"], 5).collect())
    assert got == [("a", "b", "key:email"), ("a", "c", "key:email")]
    assert key_pairs(records, ["email"], 2).count() == 0  # x is shared by 3 > 2 records: a junk identifier


def test_rule_and_pass_names_must_be_unique():
    from cdp_spark.config import ComparisonSettings, MatchingSettings

    with pytest.raises(ValueError, match="must be unique: \\['x'\\]"):
        MatchingSettings(blocking_rules=[BlockingRule(name="x", fields=["a"])],
                         snm_passes=[SnmPass(name="x", key="a")],
                         comparisons=[ComparisonSettings(field="a", kind="exact")])
    with pytest.raises(ValueError, match="any_order needs at least two fields"):
        BlockingRule(name="x", fields=["a"], any_order=True)
