"""Segments, measures and state history (docs/design.md §5).

``segment_membership(persons, segments, as_of)``
    in:  one row per person with profile and score columns
    out: (person_id, segment, as_of): one row per person and segment whose rule holds
``segment_changes(current, previous, as_of)``
    out: (person_id, segment, change, as_of) with change ``entered`` or ``left`` since the previous run
``measures(persons, membership, measures, as_of)``
    out: (as_of, measure, segment, value): each measure over all persons (segment ``*``) and per segment
``state_history(previous, current, columns, as_of)``
    SCD type 2: (person_id, state, value, valid_from, valid_to) per history column; a person's open row
    (valid_to null) is closed at ``as_of`` when the value changed and a new row opens. Rerunning the same
    as-of date replaces that date's changes; an as-of date before the history's last one is refused.
``movement(history, column, from_date, to_date)``
    out: (from_value, to_value, persons): how persons moved between the states of two dates.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from pyspark.errors import AnalysisException
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from cdp_spark.config import Measure, SegmentRule
from cdp_spark.scores.enrichment import SUBQUERY, EnrichmentError

ALL = "*"


def _checked(df: DataFrame, sql: str, what: str) -> Column:
    if SUBQUERY.search(sql):
        raise EnrichmentError(f"{what} may use only person profile and score columns, not another table: {sql}")
    expression = F.expr(sql)
    try:
        df.select(expression).schema  # noqa: B018 - analyse now, to name the rule in the error
    except AnalysisException as exc:
        raise EnrichmentError(f"{what} is not valid over ({', '.join(df.columns)}): "
                              f"{str(exc).splitlines()[0][:300]}") from None
    return expression


def segment_membership(persons: DataFrame, segments: Sequence[SegmentRule], as_of: date) -> DataFrame:
    if not segments:
        return persons.sparkSession.createDataFrame([], "person_id string, segment string, as_of date")
    flags = [F.when(F.coalesce(_checked(persons, s.rule, f"segment '{s.name}'"), F.lit(False)), F.lit(s.name))
             for s in segments]
    return (persons.select("person_id", F.explode(F.array(*flags)).alias("segment"))
            .where(F.col("segment").isNotNull()).select("person_id", "segment", F.lit(as_of).alias("as_of")))


def segment_changes(current: DataFrame, previous: DataFrame | None, as_of: date) -> DataFrame:
    now = current.select("person_id", "segment")
    before = previous.select("person_id", "segment") if previous is not None else now.limit(0)
    entered = now.join(before, ["person_id", "segment"], "left_anti").withColumn("change", F.lit("entered"))
    left = before.join(now, ["person_id", "segment"], "left_anti").withColumn("change", F.lit("left"))
    return entered.unionByName(left).withColumn("as_of", F.lit(as_of))


def measures(persons: DataFrame, membership: DataFrame, specs: Sequence[Measure], as_of: date) -> DataFrame:
    schema = "as_of date, measure string, segment string, value double"
    if not specs:
        return persons.sparkSession.createDataFrame([], schema)
    _validate_aggregates(persons, specs)
    aggregates = [F.expr(s.sql).cast("double").alias(s.name) for s in specs]
    overall = persons.agg(*aggregates).withColumn("segment", F.lit(ALL))
    per_segment = persons.join(membership.select("person_id", "segment"), "person_id").groupBy("segment").agg(
        *aggregates)
    both = overall.unionByName(per_segment)
    stacked = F.explode(F.array(*[F.struct(F.lit(s.name).alias("measure"), F.col(s.name).alias("value"))
                                  for s in specs])).alias("m")
    return both.select(F.lit(as_of).alias("as_of"), "segment", stacked).select(
        "as_of", "m.measure", "segment", "m.value")


def _validate_aggregates(persons: DataFrame, specs: Sequence[Measure]) -> None:
    for spec in specs:
        if SUBQUERY.search(spec.sql):
            raise EnrichmentError(f"measure '{spec.name}' may use only person columns, not another table: {spec.sql}")
        try:
            persons.agg(F.expr(spec.sql)).schema  # noqa: B018
        except AnalysisException as exc:
            raise EnrichmentError(f"measure '{spec.name}' must be an aggregate over ({', '.join(persons.columns)}): "
                                  f"{str(exc).splitlines()[0][:300]}") from None


HISTORY_SCHEMA = "person_id string, state string, value string, valid_from date, valid_to date"


def state_history(previous: DataFrame | None, current: DataFrame, columns: Sequence[str], as_of: date) -> DataFrame:
    stacked = current.select("person_id", F.explode(F.array(*[
        F.struct(F.lit(c).alias("state"), F.col(c).cast("string").alias("value")) for c in columns])).alias("s")
    ).select("person_id", "s.state", "s.value")
    if previous is None:
        return stacked.select("*", F.lit(as_of).alias("valid_from"), F.lit(None).cast("date").alias("valid_to"))
    latest = previous.agg(F.max("valid_from")).first()
    if latest and latest[0] and latest[0] > as_of:
        raise EnrichmentError(f"state history already runs to {latest[0]}; cannot insert {as_of} before it "
                              "(rebuild the history in date order)")
    # a rerun of the same date first undoes that date: its rows go, the rows it closed reopen
    kept = previous.where(F.col("valid_from") < F.lit(as_of)).withColumn(
        "valid_to", F.when(F.col("valid_to") >= F.lit(as_of), F.lit(None).cast("date")).otherwise(F.col("valid_to")))
    closed = kept.where(F.col("valid_to").isNotNull())
    open_rows = kept.where(F.col("valid_to").isNull())
    old = open_rows.select(F.col("person_id").alias("o_person"), F.col("state").alias("o_state"),
                           F.col("value").alias("o_value"), F.col("valid_from").alias("o_from"))
    new = stacked.select(F.col("person_id").alias("n_person"), F.col("state").alias("n_state"),
                         F.col("value").alias("n_value"))
    joined = old.join(new, (F.col("o_person") == F.col("n_person")) & (F.col("o_state") == F.col("n_state")),
                      "full_outer")
    same = F.col("o_value").eqNullSafe(F.col("n_value"))
    has_old, has_new = F.col("o_person").isNotNull(), F.col("n_person").isNotNull()
    no_end = F.lit(None).cast("date")
    still_open = joined.where(has_old & has_new & same).select(
        F.col("o_person").alias("person_id"), F.col("o_state").alias("state"), F.col("o_value").alias("value"),
        F.col("o_from").alias("valid_from"), no_end.alias("valid_to"))
    ending = joined.where(has_old & (~has_new | ~same)).select(
        F.col("o_person").alias("person_id"), F.col("o_state").alias("state"), F.col("o_value").alias("value"),
        F.col("o_from").alias("valid_from"), F.lit(as_of).alias("valid_to"))
    starting = joined.where(has_new & (~has_old | ~same)).select(
        F.col("n_person").alias("person_id"), F.col("n_state").alias("state"), F.col("n_value").alias("value"),
        F.lit(as_of).alias("valid_from"), no_end.alias("valid_to"))
    return closed.unionByName(still_open).unionByName(ending).unionByName(starting)


def movement(history: DataFrame, column: str, from_date: date, to_date: date) -> DataFrame:
    def state_on(day: date) -> DataFrame:
        on = (F.col("valid_from") <= F.lit(day)) & (F.col("valid_to").isNull() | (F.col("valid_to") > F.lit(day)))
        return history.where((F.col("state") == column) & on).select("person_id", "value")

    before = state_on(from_date).withColumnRenamed("value", "from_value")
    after = state_on(to_date).withColumnRenamed("value", "to_value")
    return (before.join(after, "person_id", "full_outer").groupBy("from_value", "to_value")
            .agg(F.count("*").alias("persons")).orderBy("from_value", "to_value"))


def membership_before(current: DataFrame, changes_today: DataFrame | None) -> DataFrame:
    """(person_id, segment) as it was before today's run: today's entries (``gold.segment_changes`` rows of
    the date) removed, today's exits restored; empty without a changes log."""
    if changes_today is None:
        return current.select("person_id", "segment").limit(0)
    entered = changes_today.where("change = 'entered'").select("person_id", "segment")
    left = changes_today.where("change = 'left'").select("person_id", "segment")
    return (current.select("person_id", "segment").join(entered, ["person_id", "segment"], "left_anti")
            .unionByName(left).distinct())
