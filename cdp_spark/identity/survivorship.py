"""Survivorship: one profile row per person from its source records (docs/design.md §1, gold.person_profile).

``survive(records, attributes, default_rule, rules, systems=None)``
    in:  person_id, record_id, system, updated_at and the attribute columns; ``systems``: every system the
         records can come from (the configured sources'), when known
    out: person_id, one column per attribute, ``<attribute>_source`` (the system it came from),
         ``record_count``, ``systems`` (sorted distinct systems), ``updated_at`` (latest record)

Rules, per attribute (only non-null values compete):
    most_recent      the value of the most recently updated record
    source_priority  the first system in ``source_priority`` holding a value, then most recent
    most_frequent    the value held by most records, then most recent
    most_complete    the longest value (as text), then most recent
Every rule ends its ordering with record_id, so the result never depends on row order.

Each winner is the ``min`` of a struct (sort key, value, system). With ``systems`` given, ``systems`` is
one flag per known system instead of a ``collect_set``, so Spark aggregates by sorting instead of with its
object-hash aggregation: at 100k records this takes about 1.5 s against 3.5 s for ``min_by`` plus
``collect_set``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from cdp_spark.config import SurvivorshipRule

MAX_LONG = (1 << 63) - 1


def _sort_key(attribute: str, rule: SurvivorshipRule) -> Column:
    """Ascending sort key of a candidate value: the smallest wins."""
    recency = F.coalesce(-F.unix_micros(F.col("updated_at")), F.lit(MAX_LONG))
    if rule.rule == "source_priority":
        position = F.array_position(F.array(*[F.lit(s) for s in rule.source_priority]), F.col("system"))
        first = F.when(position == 0, F.lit(1 << 30)).otherwise(position).cast("long")
    elif rule.rule == "most_frequent":
        first = -F.col(f"_freq_{attribute}")
    elif rule.rule == "most_complete":
        first = -F.length(F.col(attribute).cast("string")).cast("long")
    else:
        first = F.lit(0).cast("long")
    return F.struct(first.alias("first"), recency.alias("recency"), F.col("record_id").alias("record_id"))


def survive(records: DataFrame, attributes: Sequence[str], default_rule: SurvivorshipRule,
            rules: Mapping[str, SurvivorshipRule], systems: Sequence[str] | None = None) -> DataFrame:
    candidates = records
    for attribute in attributes:
        if rules.get(attribute, default_rule).rule == "most_frequent":
            candidates = candidates.withColumn(
                f"_freq_{attribute}", F.count(attribute).over(Window.partitionBy("person_id", attribute)))
    winners = []
    for attribute in attributes:
        # null values do not compete: min skips nulls; record_id makes every key unique within a person
        entry = F.struct(_sort_key(attribute, rules.get(attribute, default_rule)).alias("key"),
                         F.col(attribute).alias("v"), F.col("system").alias("s"))
        winner = F.min(F.when(F.col(attribute).isNotNull(), entry))
        winners += [winner.getField("v").alias(attribute), winner.getField("s").alias(f"{attribute}_source")]
    if systems is None:
        held = F.array_sort(F.collect_set("system"))
    else:  # one flag per known system instead of a set: keeps the buffers fixed-size
        held = F.array_compact(F.array(*[F.when(F.bool_or(F.col("system") == s), F.lit(s))
                                         for s in sorted(set(systems))]))
    return candidates.groupBy("person_id").agg(
        *winners,
        F.count("*").alias("record_count"),
        held.alias("systems"),
        F.max("updated_at").alias("updated_at"),
    )
