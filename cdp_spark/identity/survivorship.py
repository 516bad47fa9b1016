"""Survivorship: one profile row per person from its source records (DESIGN §1, gold.person_profile).

``survive(records, attributes, default_rule, rules)``
    in:  person_id, record_id, system, updated_at and the attribute columns
    out: person_id, one column per attribute, ``<attribute>_source`` (the system it came from),
         ``record_count``, ``systems`` (sorted distinct systems), ``updated_at`` (latest record)

Rules, per attribute (only non-null values compete):
    most_recent      the value of the most recently updated record
    source_priority  the first system in ``source_priority`` holding a value, then most recent
    most_frequent    the value held by most records, then most recent
    most_complete    the longest value (as text), then most recent
Every rule ends its ordering with record_id, so the result never depends on row order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from cdp_spark.config import SurvivorshipRule

MAX_LONG = (1 << 63) - 1


def _sort_key(attribute: str, rule: SurvivorshipRule) -> Column:
    """Ascending sort key of a candidate value: the smallest wins. Null when the value is null, so
    ``min_by`` skips it."""
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
    key = F.struct(first.alias("first"), recency.alias("recency"), F.col("record_id").alias("record_id"))
    return F.when(F.col(attribute).isNotNull(), key)


def survive(records: DataFrame, attributes: Sequence[str], default_rule: SurvivorshipRule,
            rules: Mapping[str, SurvivorshipRule]) -> DataFrame:
    candidates = records
    for attribute in attributes:
        if rules.get(attribute, default_rule).rule == "most_frequent":
            candidates = candidates.withColumn(
                f"_freq_{attribute}", F.count(attribute).over(Window.partitionBy("person_id", attribute)))
    winners = []
    for attribute in attributes:
        key = _sort_key(attribute, rules.get(attribute, default_rule))
        winner = F.min_by(F.struct(F.col(attribute).alias("v"), F.col("system").alias("s")), key)
        winners += [winner.getField("v").alias(attribute), winner.getField("s").alias(f"{attribute}_source")]
    return candidates.groupBy("person_id").agg(
        *winners,
        F.count("*").alias("record_count"),
        F.array_sort(F.collect_set("system")).alias("systems"),
        F.max("updated_at").alias("updated_at"),
    )
