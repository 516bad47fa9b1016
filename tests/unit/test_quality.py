from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from chispa import assert_df_equality

from cdp_spark.io.tables import open_store
from cdp_spark.pipelines import validate as validate_stage
from cdp_spark.pipelines.common import QualityGateBlocked, make_context
from cdp_spark.quality.gate import Outcome, SuiteError, load_suite, validate

SUITE = """
table: gold.people
expectations:
  - type: expect_column_values_to_not_be_null
    kwargs: {column: person_id}
  - type: expect_column_values_to_be_unique
    kwargs: {column: person_id}
"""


def suite_file(tmp_path: Path, text: str = SUITE) -> Path:
    path = tmp_path / "expectations" / "gold.people.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_outcomes_hold_counts_never_values(spark, tmp_path):
    df = spark.createDataFrame([("P1", "ana@x.es"), ("P1", "bo@x.es"), (None, "cy@x.es")],
                               "person_id string, email string")
    outcomes = validate(df, load_suite(suite_file(tmp_path)))
    assert outcomes == [
        Outcome("expect_column_values_to_not_be_null", '{"column": "person_id"}', False, 3, 1, None),
        Outcome("expect_column_values_to_be_unique", '{"column": "person_id"}', False, 3, 2, None),
    ]
    assert "P1" not in repr(outcomes)


def test_missing_column_is_a_suite_error_not_bad_data(spark, tmp_path):
    df = spark.createDataFrame([("x",)], "other string")
    with pytest.raises(SuiteError, match=r"columns \['person_id'\] are not in gold.people"):
        validate(df, load_suite(suite_file(tmp_path)))


def test_unknown_expectation_and_bad_shape_are_suite_errors(spark, tmp_path):
    df = spark.createDataFrame([("x",)], "person_id string")
    bad_type = suite_file(tmp_path, "table: gold.people\nexpectations:\n  - type: expect_magic\n")
    with pytest.raises(SuiteError, match="unknown expectation type 'expect_magic'"):
        validate(df, load_suite(bad_type))
    with pytest.raises(SuiteError, match="exactly the keys"):
        load_suite(suite_file(tmp_path, "tabel: x\n"))


def test_gate_publishes_passing_version_and_blocks_failing_one(spark, cfg_factory, tmp_path):
    suite_file(tmp_path)
    cfg = cfg_factory(f"quality.suites_dir={tmp_path / 'expectations'}")
    ctx = make_context(spark, cfg, date(2026, 6, 30))
    store = open_store(spark, cfg.lake_root, cfg.storage.engine)
    store.write("gold.people", spark.createDataFrame([("P1",), ("P2",)], "person_id string"))
    assert validate_stage.run(spark, cfg, ctx.for_stage()) == {"gold.people": True}
    store.write("gold.people", spark.createDataFrame([("P1",), ("P1",)], "person_id string"), mode="overwrite")
    with pytest.raises(QualityGateBlocked, match=r"blocked publishing of \['gold.people'\]"):
        validate_stage.run(spark, cfg, ctx.for_stage())
    assert validate_stage.published_version(store, "gold.people") == 0
    results = store.read("quality.results").select("table_version", "expectation", "success", "unexpected_count")
    expected = spark.createDataFrame([
        (0, "expect_column_values_to_be_unique", True, 0), (0, "expect_column_values_to_not_be_null", True, 0),
        (1, "expect_column_values_to_be_unique", False, 2), (1, "expect_column_values_to_not_be_null", True, 0)],
        "table_version long, expectation string, success boolean, unexpected_count long")
    assert_df_equality(results.orderBy("table_version", "expectation"), expected, ignore_nullable=True)


GATED = """
table: gold.people
expectations:
  - type: expect_column_values_to_not_be_null
    kwargs: {column: person_id}
  - type: expect_column_values_to_be_between
    kwargs: {column: age, min_value: 0, max_value: 120}
    action: quarantine
  - type: cdp_referential
    kwargs: {column: person_id, table: gold.known, table_column: id}
    action: quarantine
  - type: expect_column_values_to_be_in_set
    kwargs: {column: tier, value_set: [gold, silver]}
    action: warn
  - type: cdp_row_count_change
    kwargs: {max_decrease: 0.4, max_increase: 1.0}
"""


def test_quarantine_warn_and_row_count_change(spark, cfg_factory, tmp_path):
    suite_file(tmp_path, GATED)
    cfg = cfg_factory(f"quality.suites_dir={tmp_path / 'expectations'}")
    ctx = make_context(spark, cfg, date(2026, 6, 30))
    store = open_store(spark, cfg.lake_root, cfg.storage.engine)
    store.write("gold.known", spark.createDataFrame([("P1",), ("P2",), ("P3",), ("P5",)], "id string"))
    people = spark.createDataFrame([("P1", 30, "gold"), ("P2", -5, "silver"), ("P3", None, "bronze"),
                                    ("P4", 40, "gold"), ("P5", 200, None)], "person_id string, age int, tier string")
    store.write("gold.people", people)

    assert validate_stage.run(spark, cfg, ctx.for_stage()) == {"gold.people": True}
    # version 0 broke two quarantine rules: its bad rows moved out, version 1 (the rest) is published
    assert validate_stage.published_version(store, "gold.people") == 1
    kept = store.read("gold.people").orderBy("person_id")
    assert_df_equality(kept, spark.createDataFrame([("P1", 30, "gold"), ("P3", None, "bronze")], people.schema))
    moved = store.read("quarantine.gold_people").select("table_version", "reason", "record").orderBy("record")
    between = 'expect_column_values_to_be_between({"column": "age", "max_value": 120, "min_value": 0})'
    referential = 'cdp_referential({"column": "person_id", "table": "gold.known", "table_column": "id"})'
    assert [tuple(r) for r in moved.collect()] == [
        (0, between, '{"person_id":"P2","age":-5,"tier":"silver"}'),
        (0, referential, '{"person_id":"P4","age":40,"tier":"gold"}'),
        (0, between, '{"person_id":"P5","age":200}')]
    assert people.count() == kept.count() + moved.count()
    results = {(r.table_version, r.expectation, r.action): (r.success, r.unexpected_count)
               for r in store.read("quality.results").collect()}
    assert results[(0, "expect_column_values_to_be_between", "quarantine")] == (False, 2)
    assert results[(0, "cdp_referential", "quarantine")] == (False, 1)
    assert results[(1, "expect_column_values_to_be_between", "quarantine")] == (True, 0)
    assert results[(1, "expect_column_values_to_be_in_set", "warn")] == (False, 1)  # bronze: recorded, not blocking
    assert results[(1, "cdp_row_count_change", "fail")] == (True, None)  # nothing published before

    # a new version with far fewer rows than the published one (2) is blocked by the row-count rule
    store.write("gold.people", spark.createDataFrame([("P1", 30, "gold")], people.schema), mode="overwrite")
    with pytest.raises(QualityGateBlocked, match=r"blocked publishing of \['gold.people'\]"):
        validate_stage.run(spark, cfg, ctx.for_stage())
    change = [r for r in store.read("quality.results").where("table_version = 2").collect()
              if r.expectation == "cdp_row_count_change"]
    assert [(r.success, r.observed_value, r.kwargs) for r in change] == [
        (False, 1.0, '{"max_decrease": 0.4, "max_increase": 1.0, "max_value": 4, "min_value": 2, '
                     '"previous_rows": 2}')]
    assert validate_stage.published_version(store, "gold.people") == 1


def test_quarantine_needs_a_row_level_rule(tmp_path):
    text = ("table: gold.people\nexpectations:\n  - type: expect_column_values_to_be_unique\n"
            "    kwargs: {column: person_id}\n    action: quarantine\n")
    with pytest.raises(SuiteError, match="action quarantine needs a row-level rule"):
        load_suite(suite_file(tmp_path, text))
    with pytest.raises(SuiteError, match="action 'drop' is not one of"):
        load_suite(suite_file(tmp_path, text.replace("quarantine", "drop")))


def test_column_types_are_checked(spark, tmp_path):
    text = ("table: gold.people\nexpectations:\n  - type: expect_column_values_to_be_of_type\n"
            "    kwargs: {column: n, type_: LongType}\n")
    suite = load_suite(suite_file(tmp_path, text))
    good = spark.createDataFrame([("P1", 3)], "person_id string, n long")
    bad = spark.createDataFrame([("P1", 3)], "person_id string, n int")
    assert [o.success for o in validate(good, suite)] == [True]
    assert [o.success for o in validate(bad, suite)] == [False]


def test_outcomes_follow_the_suite_order_with_their_actions(spark, tmp_path):
    text = """
table: gold.people
expectations:
  - type: expect_column_values_to_be_between
    kwargs: {column: n, min_value: 0}
    action: warn
  - type: expect_column_values_to_be_of_type
    kwargs: {column: n, type_: LongType}
  - type: expect_column_values_to_be_between
    kwargs: {column: n, min_value: 5}
  - type: expect_column_values_to_not_be_null
    kwargs: {column: person_id}
    action: quarantine
"""
    df = spark.createDataFrame([("P1", 3), (None, -1)], "person_id string, n long")
    outcomes = validate(df, load_suite(suite_file(tmp_path, text)))
    assert [(o.expectation, o.action, o.success, o.unexpected_count) for o in outcomes] == [
        ("expect_column_values_to_be_between", "warn", False, 1),
        ("expect_column_values_to_be_of_type", "fail", True, None),
        ("expect_column_values_to_be_between", "fail", False, 2),
        ("expect_column_values_to_not_be_null", "quarantine", False, 1)]
    assert json.loads(outcomes[2].kwargs)["min_value"] == 5
