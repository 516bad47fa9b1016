from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from chispa import assert_df_equality

from cdp_spark.io.delta import open_store
from cdp_spark.pipelines import validate as validate_stage
from cdp_spark.pipelines.common import StageError, make_context
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
    store = open_store(spark, cfg.lake_root)
    store.write("gold.people", spark.createDataFrame([("P1",), ("P2",)], "person_id string"))
    assert validate_stage.run(spark, cfg, ctx.for_stage()) == {"gold.people": True}
    store.write("gold.people", spark.createDataFrame([("P1",), ("P1",)], "person_id string"), mode="overwrite")
    with pytest.raises(StageError, match=r"blocked publishing of \['gold.people'\]"):
        validate_stage.run(spark, cfg, ctx.for_stage())
    assert validate_stage.published_version(store, "gold.people") == 0
    results = store.read("quality.results").select("table_version", "expectation", "success", "unexpected_count")
    expected = spark.createDataFrame([
        (0, "expect_column_values_to_be_unique", True, 0), (0, "expect_column_values_to_not_be_null", True, 0),
        (1, "expect_column_values_to_be_unique", False, 2), (1, "expect_column_values_to_not_be_null", True, 0)],
        "table_version long, expectation string, success boolean, unexpected_count long")
    assert_df_equality(results.orderBy("table_version", "expectation"), expected, ignore_nullable=True)
