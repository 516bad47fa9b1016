"""Great Expectations suites and the write-audit-publish gate (docs/design.md §6).

A suite is a YAML file in ``conf/expectations/<layer>.<table>.yaml``::

    table: gold.person_scores
    expectations:
      - type: expect_column_values_to_be_unique
        kwargs: {column: person_id}
      - type: expect_column_values_to_be_between          # any Great Expectations 1.x expectation
        kwargs: {column: orders_total_amount, min_value: 0}
        action: quarantine                                # fail (default) | quarantine | warn
      - type: cdp_row_count_change                        # against the previous published version
        kwargs: {max_decrease: 0.5, max_increase: 3.0}
      - type: cdp_referential                             # every value exists in another table
        kwargs: {column: person_id, table: gold.person_profile}

Actions: ``fail`` blocks publishing; ``warn`` is recorded and logged only; ``quarantine`` moves the rows
that break the rule out of the table (``split``) so the rest can be published; it is available for the
row-level rules in ``ROW_RULES``. ``cdp_row_count_change`` runs as GE's
``expect_table_row_count_to_be_between`` with bounds from the previous published row count;
``cdp_referential`` is a Spark anti-join on the job's session.

``validate(spark, df, suite)`` runs it with GE on the job's Spark DataFrame (the job's session) and
returns per-expectation outcomes that hold counts only, never values (``exclude_unexpected_values``).
An expectation that cannot run (unknown type, missing column) raises :class:`SuiteError`: a broken
suite is an error, not bad data.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import math
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from cdp_spark.log import quiet

log = logging.getLogger(__name__)

SUMMARY_FORMAT = {"result_format": "SUMMARY", "exclude_unexpected_values": True, "partial_unexpected_count": 0,
                  "include_unexpected_rows": False}
COUNT_FIELDS = ("element_count", "unexpected_count", "missing_count")


class SuiteError(ValueError):
    """The suite itself is broken (bad YAML, unknown expectation, missing column)."""


ACTIONS = ("fail", "quarantine", "warn")
ROW_RULES = ("expect_column_values_to_not_be_null", "expect_column_values_to_be_between",
             "expect_column_values_to_be_in_set", "expect_column_values_to_match_regex", "cdp_referential")
CUSTOM = ("cdp_row_count_change", "cdp_referential")


@dataclass(frozen=True)
class Expectation:
    type: str
    kwargs: dict[str, Any]
    action: str = "fail"

    @property
    def label(self) -> str:
        return f"{self.type}({json.dumps(self.kwargs, sort_keys=True, default=str)})"


@dataclass(frozen=True)
class GateContext:
    """What the custom rules need besides the table: the previous published row count and a reader for
    the tables a referential rule names; and the Great Expectations context of the run (from
    :func:`ge_context`, made once for all the suites of a run; a new one when absent)."""

    previous_rows: int | None = None
    read: Callable[[str], DataFrame] | None = None
    ge: Any = None


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
    action: str = "fail"


def load_suite(path: Path) -> Suite:
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SuiteError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(content, dict) or set(content) - {"table", "expectations"} or "table" not in content:
        raise SuiteError(f"{path}: a suite has exactly the keys 'table' and 'expectations'")
    items = []
    for index, item in enumerate(content.get("expectations") or []):
        if not isinstance(item, dict) or "type" not in item or set(item) - {"type", "kwargs", "action"}:
            raise SuiteError(f"{path}: expectation #{index + 1} needs 'type' and optional 'kwargs' and 'action' only")
        expectation = Expectation(str(item["type"]), dict(item.get("kwargs") or {}), str(item.get("action", "fail")))
        if expectation.action not in ACTIONS:
            raise SuiteError(f"{path}: expectation #{index + 1}: action '{expectation.action}' is not one of {ACTIONS}")
        if expectation.action == "quarantine" and expectation.type not in ROW_RULES:
            raise SuiteError(f"{path}: expectation #{index + 1}: action quarantine needs a row-level rule "
                             f"({', '.join(ROW_RULES)}), not {expectation.type}")
        if expectation.type == "cdp_referential" and not {"column", "table"} <= set(expectation.kwargs):
            raise SuiteError(f"{path}: expectation #{index + 1}: cdp_referential needs kwargs column and table")
        items.append(expectation)
    return Suite(str(content["table"]), tuple(items), str(path))


def suites_fingerprint(directory: str) -> str:
    """A hash of the suite files' names and contents (a changed suite validates again)."""
    digest = hashlib.sha256()
    for path in sorted(Path(directory).glob("*.yaml")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


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


def _kwargs_text(kwargs: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in kwargs.items() if k != "batch_id"}, sort_keys=True, default=str)


def _row_count_bounds(item: Expectation, previous_rows: int) -> dict[str, int]:
    decrease = float(item.kwargs.get("max_decrease", 1.0))
    increase = item.kwargs.get("max_increase")
    bounds = {"min_value": math.ceil(previous_rows * (1 - decrease))}
    if increase is not None:
        bounds["max_value"] = math.floor(previous_rows * (1 + float(increase)))
    return bounds


def _referential_missing(df: DataFrame, item: Expectation, read: Callable[[str], DataFrame]) -> DataFrame:
    """Rows of ``df`` whose non-null ``column`` is not in ``table``.``table_column``, plus ``_row_present``."""
    column, table = item.kwargs["column"], item.kwargs["table"]
    target_column = item.kwargs.get("table_column", column)
    try:
        keys = read(table).select(F.col(target_column).alias("_ref_key")).distinct()
    except Exception as exc:
        raise SuiteError(f"cdp_referential: cannot read {table}.{target_column}: {str(exc).splitlines()[0]}") from None
    return df.join(keys, df[column] == keys["_ref_key"], "left").withColumn(
        "_ref_missing", F.col(column).isNotNull() & F.col("_ref_key").isNull()).drop("_ref_key")


def validate(df: DataFrame, suite: Suite, context: GateContext | None = None) -> list[Outcome]:
    """Runs the suite; the outcomes come in the suite's order."""
    context = context or GateContext()
    missing = sorted({e.kwargs["column"] for e in suite.expectations
                      if "column" in e.kwargs and e.kwargs["column"] not in df.columns})
    if missing:
        raise SuiteError(f"{suite.path}: columns {missing} are not in {suite.table} (columns: {df.columns})")
    standard: list[Expectation] = []
    custom: dict[int, Outcome] = {}
    for index, item in enumerate(suite.expectations):
        if item.type == "cdp_row_count_change":
            if context.previous_rows is None:
                custom[index] = Outcome(item.type, _kwargs_text(item.kwargs), True, None, None, None, item.action)
            else:
                standard.append(Expectation("expect_table_row_count_to_be_between",
                                            _row_count_bounds(item, context.previous_rows), item.action))
        elif item.type == "cdp_referential":
            if context.read is None:
                raise SuiteError(f"{suite.path}: cdp_referential needs a table reader")
            checked = _referential_missing(df, item, context.read)
            total, bad = checked.agg(F.count("*"), F.sum(F.col("_ref_missing").cast("long"))).first() or (0, 0)
            custom[index] = Outcome(item.type, _kwargs_text(item.kwargs), not bad, int(total), int(bad or 0), None,
                                    item.action)
        else:
            standard.append(item)
    ge_outcomes = iter(_run_ge(df, suite, standard, context.ge))
    outcomes = []
    for index, item in enumerate(suite.expectations):
        if index in custom:
            outcomes.append(custom[index])
            continue
        outcome = next(ge_outcomes)
        if item.type == "cdp_row_count_change":  # recorded under the suite's name, with the bounds used
            outcome = Outcome(item.type, _kwargs_text({**item.kwargs, **json.loads(outcome.kwargs),
                                                       "previous_rows": context.previous_rows}),
                              outcome.success, outcome.element_count, outcome.unexpected_count,
                              outcome.observed_value, item.action)
        outcomes.append(outcome)
    return outcomes


def ge_context() -> Any:
    """An ephemeral Great Expectations context (no progress bars) with the ``cdp`` Spark data source."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    if logging.getLogger("great_expectations").level >= logging.WARNING:  # quiet unless cdp -v
        quiet("great_expectations")  # its import set some of its loggers to INFO
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    context.data_sources.add_spark(name="cdp")
    return context


def preload_ge() -> threading.Thread:
    """Imports Great Expectations on a thread (seconds of module loading) while earlier stages run."""
    thread = threading.Thread(target=importlib.import_module, args=("great_expectations",), daemon=True,
                              name="preload-great-expectations")
    thread.start()
    return thread


def _ge_batch(context: Any, asset_name: str, df: DataFrame) -> Any:
    """The whole-frame batch of ``df`` under the data asset ``asset_name`` (made on first use)."""
    source = context.data_sources.get("cdp")
    try:
        definition = source.get_asset(asset_name).get_batch_definition("whole")
    except LookupError:
        definition = source.add_dataframe_asset(name=asset_name).add_batch_definition_whole_dataframe("whole")
    return definition.get_batch(batch_parameters={"dataframe": df})


def _run_ge(df: DataFrame, suite: Suite, expectations: list[Expectation], context: Any = None) -> list[Outcome]:
    import great_expectations as gx

    if not expectations:
        return []
    context = context or ge_context()
    gx_suite = gx.ExpectationSuite(name=suite.table)
    for item in expectations:
        try:
            gx_suite.add_expectation(_expectation_class(item.type)(**item.kwargs))
        except SuiteError:
            raise
        except Exception as exc:
            raise SuiteError(f"{suite.path}: expectation {item.type} {item.kwargs} is invalid: {exc}") from None
    batch = _ge_batch(context, suite.table.replace(".", "_"), df)
    try:
        report = batch.validate(gx_suite, result_format=SUMMARY_FORMAT)
    finally:
        df.unpersist()  # GE's Spark data source persists the frame it validates and never releases it
    if len(report.results) != len(expectations):
        raise SuiteError(f"{suite.path}: GE returned {len(report.results)} results for {len(expectations)} "
                         "expectations")
    outcomes = []
    for item, result in zip(expectations, _in_suite_order(report.results, expectations), strict=True):
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
            kwargs=_kwargs_text(dict(config.kwargs)),
            success=bool(result.success),
            element_count=stats.get("element_count"),
            unexpected_count=stats.get("unexpected_count"),
            observed_value=_numeric(stats.get("observed_value")),
            action=item.action))
    return outcomes


def _in_suite_order(results: list[Any], expectations: list[Expectation]) -> list[Any]:
    """GE's results matched back to the suite's expectations (GE may reorder them): by type and by the
    kwargs the suite gave; outcomes are recorded per rule, with the rule's action."""
    remaining = list(results)
    ordered = []
    for item in expectations:
        wanted = _kwargs_text(item.kwargs)
        same_type = [r for r in remaining
                     if r.expectation_config is not None and r.expectation_config.type == item.type]
        exact = [r for r in same_type if _kwargs_text({k: v for k, v in dict(r.expectation_config.kwargs).items()
                                                      if k in item.kwargs}) == wanted]
        chosen = (exact or same_type or [None])[0]
        if chosen is None:
            raise SuiteError(f"GE returned no result for {item.label}")
        remaining.remove(chosen)
        ordered.append(chosen)
    return ordered


def _row_failure(df: DataFrame, item: Expectation) -> Column:
    """True where a row breaks the row-level rule ``item`` (nulls break only the not-null rule, as in GE)."""
    column = F.col(item.kwargs.get("column", ""))
    if item.type == "expect_column_values_to_not_be_null":
        return column.isNull()
    if item.type == "expect_column_values_to_be_between":
        low, high = item.kwargs.get("min_value"), item.kwargs.get("max_value")
        broken = F.lit(False)
        if low is not None:
            broken = broken | (column < F.lit(low))
        if high is not None:
            broken = broken | (column > F.lit(high))
        return F.coalesce(broken, F.lit(False))
    if item.type == "expect_column_values_to_be_in_set":
        return F.coalesce(~column.isin(list(item.kwargs["value_set"])), F.lit(False))
    if item.type == "expect_column_values_to_match_regex":
        return F.coalesce(~column.rlike(str(item.kwargs["regex"])), F.lit(False))
    raise SuiteError(f"{item.type} cannot quarantine rows")


def split(df: DataFrame, rules: list[Expectation], read: Callable[[str], DataFrame] | None) -> tuple[DataFrame,
                                                                                                    DataFrame]:
    """(rows that keep every rule, rows that break one: the table's columns + ``reason``, the rules broken)."""
    marked = df
    reasons = []
    for number, item in enumerate(rules):
        flag = f"_broken_{number}"
        if item.type == "cdp_referential":
            if read is None:
                raise SuiteError("cdp_referential needs a table reader")
            marked = _referential_missing(marked, item, read).withColumnRenamed("_ref_missing", flag)
        else:
            marked = marked.withColumn(flag, _row_failure(marked, item))
        reasons.append(F.when(F.col(flag), F.lit(item.label)))
    marked = marked.withColumn("reason", F.concat_ws("; ", *reasons))
    flags = [f"_broken_{number}" for number in range(len(rules))]
    kept = marked.where(F.col("reason") == "").drop("reason", *flags)
    broken = marked.where(F.col("reason") != "").drop(*flags)
    return kept, broken
