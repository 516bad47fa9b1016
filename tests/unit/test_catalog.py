"""The table catalog against what ships with it: suites, warehouse keys, the data dictionary."""

from __future__ import annotations

import pytest

from cdp_spark.catalog import TABLES, declared_schema, spec
from cdp_spark.config import load_config
from cdp_spark.quality.gate import load_suites
from tests.conftest import REPO_ROOT


def test_the_tables_with_a_suite_are_the_shipped_suites():
    cfg = load_config(REPO_ROOT / "conf", "local", data_dir="/tmp/unused")
    shipped = set(load_suites(cfg.resolve(cfg.quality.suites_dir)))
    assert shipped == {name for name, table in TABLES.items() if table.suite}


def test_synced_and_exported_tables_are_declared_with_their_keys():
    cfg = load_config(REPO_ROOT / "conf", "local", data_dir="/tmp/unused")
    assert {t: spec(t).keys for t in cfg.warehouse.tables} == {
        "gold.person_profile": ("person_id",), "gold.person_scores": ("person_id",),
        "gold.person_registry": ("record_id",)}
    assert all(spec(t).description for t in cfg.exports.tables)


def test_declared_schemas_and_unknown_names_fail_clearly():
    assert declared_schema("meta.published").fieldNames() == ["table_name", "table_version", "run_id",
                                                             "published_at"]
    with pytest.raises(KeyError, match=r"gold\.person_scores has no declared schema"):
        declared_schema("gold.person_scores")
    with pytest.raises(KeyError, match=r"gold\.nope is not in the table catalog"):
        spec("gold.nope")
