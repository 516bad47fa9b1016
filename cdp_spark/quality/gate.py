"""Great Expectations suites and the write-audit-publish gate (DESIGN §6).

A suite is a YAML file in ``conf/expectations/<layer>.<table>.yaml``::

    table: gold.person_profile
    expectations:
      - type: expect_column_values_to_be_unique
        kwargs: {column: person_id}

``validate(spark, df, suite)`` runs it with GE on the job's Spark DataFrame (the job's session) and
returns per-expectation outcomes that hold counts only, never values (``exclude_unexpected_values``).
An expectation that cannot run (unknown type, missing column) raises :class:`SuiteError`: a broken
suite is an error, not bad data.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pyspark.sql import DataFrame

log = logging.getLogger(__name__)

SUMMARY_FORMAT = {"result_format": "SUMMARY", "exclude_unexpected_values": True, "partial_unexpected_count": 0,
                  "include_unexpected_rows": False}
COUNT_FIELDS = ("element_count", "unexpected_count", "missing_count")


class SuiteError(ValueError):
    """The suite itself is broken (bad YAML, unknown expectation, missing column)."""


@dataclass(frozen=True)
class Expectation:
    type: str
    kwargs: dict[str, Any]


@dataclass(frozen=True)
class Suite:
    table: str
    expectations: tuple[Expectation, ...]
    path: str


@dataclass(frozen=True)
class Outcome:
    expectation: str
    kwargs: str
    success: bool
    element_count: int | None
    unexpected_count: int | None
    observed_value: float | None


def load_suite(path: Path) -> Suite:
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SuiteError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(content, dict) or set(content) - {"table", "expectations"} or "table" not in content:
        raise SuiteError(f"{path}: a suite has exactly the keys 'table' and 'expectations'")
    items = []
    for index, item in enumerate(content.get("expectations") or []):
        if not isinstance(item, dict) or "type" not in item or set(item) - {"type", "kwargs"}:
            raise SuiteError(f"{path}: expectation #{index + 1} needs 'type' and optional 'kwargs' only")
        items.append(Expectation(str(item["type"]), dict(item.get("kwargs") or {})))
    return Suite(str(content["table"]), tuple(items), str(path))


def load_suites(directory: str) -> dict[str, Suite]:
    suites = {}
    for path in sorted(Path(directory).glob("*.yaml")):
        suite = load_suite(path)
        suites[suite.table] = suite
    return suites


def _expectation_class(name: str):
    import great_expectations as gx

    class_name = "".join(part.capitalize() for part in name.split("_"))
    cls = getattr(gx.expectations, class_name, None)
    if cls is None or not re.fullmatch(r"expect_[a-z0-9_]+", name):
        raise SuiteError(f"unknown expectation type '{name}'")
    return cls


def _raised(exception_info: Any) -> str | None:
    """The first exception message GE recorded for a result, if any (its layout varies by metric)."""
    if isinstance(exception_info, dict):
        if exception_info.get("raised_exception"):
            return str(exception_info.get("exception_message") or "exception")
        for value in exception_info.values():
            if isinstance(value, dict) and (value.get("raised_exception") or value.get("exception_message")):
                return str(value.get("exception_message") or "exception")
    return None


def _numeric(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def validate(df: DataFrame, suite: Suite) -> list[Outcome]:
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    missing = sorted({e.kwargs["column"] for e in suite.expectations
                      if "column" in e.kwargs and e.kwargs["column"] not in df.columns})
    if missing:
        raise SuiteError(f"{suite.path}: columns {missing} are not in {suite.table} (columns: {df.columns})")
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    gx_suite = gx.ExpectationSuite(name=suite.table)
    for item in suite.expectations:
        try:
            gx_suite.add_expectation(_expectation_class(item.type)(**item.kwargs))
        except SuiteError:
            raise
        except Exception as exc:
            raise SuiteError(f"{suite.path}: expectation {item.type} {item.kwargs} is invalid: {exc}") from None
    batch = (context.data_sources.add_spark(name="cdp").add_dataframe_asset(name=suite.table.replace(".", "_"))
             .add_batch_definition_whole_dataframe("whole").get_batch(batch_parameters={"dataframe": df}))
    report = batch.validate(gx_suite, result_format=SUMMARY_FORMAT)
    outcomes = []
    for result in report.results:
        config = result.expectation_config
        if config is None:
            raise SuiteError(f"{suite.path}: GE returned a result without its expectation")
        error = _raised(result.exception_info)
        if error:
            raise SuiteError(f"{suite.path}: expectation {config.type} could not run on {suite.table}: "
                             f"{error.splitlines()[0][:300]}")
        stats = result.result or {}
        outcomes.append(Outcome(
            expectation=config.type,
            kwargs=json.dumps({k: v for k, v in config.kwargs.items() if k not in ("batch_id",)}, sort_keys=True,
                              default=str),
            success=bool(result.success),
            element_count=stats.get("element_count"),
            unexpected_count=stats.get("unexpected_count"),
            observed_value=_numeric(stats.get("observed_value"))))
    return outcomes
