"""Candidate pairs: deterministic keys plus a multi-pass Sorted Neighbourhood Method (DESIGN §4).

``key_pairs(records, keys, max_group)``
    in:  record_id + key columns;  out: (record_a, record_b, source) with record_a < record_b, linking
    every record of a key value to the value's smallest record_id (k-1 pairs per value, not k²); values
    shared by more than ``max_group`` records are junk identifiers and give no pairs.
``snm_pairs(records, passes)``
    Per pass: key = the pass's SQL expression; records are sorted by (key, record_id) inside partitions of
    the key's first ``prefix_length`` characters, and each record is paired with the next ``window - 1``
    records (Spark ``lead`` over the window), so no partition takes the whole table. All passes share
    one shuffle and sort: a row per (record, pass), partitioned by (pass, prefix).
``candidate_pairs`` is their union, each pair once, with the passes that proposed it (``candidate_masks``:
    the same as a bit mask, what matching carries through its shuffles).
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from cdp_spark.config import SnmPass


def _ordered(a: str, b: str) -> list[Column]:
    return [F.least(F.col(a), F.col(b)).alias("record_a"), F.greatest(F.col(a), F.col(b)).alias("record_b")]


def key_values(records: DataFrame, keys: Sequence[str]) -> DataFrame:
    """(record_id, key, value): one row per record and non-null key value."""
    return (records.select("record_id", F.explode(F.array(*[
        F.struct(F.lit(k).alias("key"), F.col(k).cast("string").alias("value")) for k in keys])).alias("k"))
            .select("record_id", "k.key", "k.value").where(F.col("value").isNotNull()))


def junk_values(records: DataFrame, keys: Sequence[str], max_group: int) -> DataFrame:
    """(rule, key_hash, records): key values shared by more than ``max_group`` records, reported by hash."""
    return (key_values(records, keys).groupBy("key", "value").agg(F.count("*").alias("records"))
            .where(F.col("records") > max_group)
            .select(F.col("key").alias("rule"), F.sha2("value", 256).alias("key_hash"), "records"))


def key_pairs(records: DataFrame, keys: Sequence[str], max_group: int) -> DataFrame:
    window = Window.partitionBy("key", "value")
    grouped = (key_values(records, keys)
               .withColumn("anchor", F.min("record_id").over(window))
               .withColumn("group_size", F.count("*").over(window))
               .where((F.col("group_size") <= max_group) & (F.col("record_id") != F.col("anchor"))))
    return grouped.select(*_ordered("anchor", "record_id"), F.concat(F.lit("key:"), F.col("key")).alias("source"))


def snm_pairs(records: DataFrame, passes: Sequence[SnmPass]) -> DataFrame | None:
    if not passes:
        return None
    # every pass in one shuffle: a row per (record, pass), windows partitioned by (pass, key prefix)
    entries = F.array(*[F.struct(F.lit(i).alias("pass"), F.expr(snm.key).cast("string").alias("sort_key"))
                        for i, snm in enumerate(passes)])
    keyed = records.select("record_id", F.inline(entries)).where(
        F.col("sort_key").isNotNull() & (F.col("sort_key") != ""))

    def per_pass(values: Sequence[object]) -> Column:
        return F.element_at(F.array(*[F.lit(v) for v in values]), F.col("pass") + 1)

    block = F.substring(F.col("sort_key"), F.lit(1), per_pass([snm.prefix_length for snm in passes]))
    window = Window.partitionBy("pass", block).orderBy("sort_key", "record_id")
    offsets = range(1, max(snm.window for snm in passes))
    with_next = keyed.select("record_id", "pass",
                             *[F.lead("record_id", o).over(window).alias(f"n{o}") for o in offsets])
    size = per_pass([snm.window for snm in passes])
    pairs = (with_next.select("record_id", "pass", F.explode(F.array(*[
        F.when(F.lit(o) < size, F.col(f"n{o}")) for o in offsets])).alias("other")).where(F.col("other").isNotNull()))
    labels = per_pass([f"snm:{snm.name}" for snm in passes])
    return pairs.select(*_ordered("record_id", "other"), labels.alias("source"))


def source_labels(keys: Sequence[str], passes: Sequence[SnmPass]) -> list[str]:
    """The labels a candidate pair's sources can carry, sorted; label i is bit i of ``source_mask``."""
    if len(keys) + len(passes) > 62:
        raise ValueError("at most 62 blocking keys and SNM passes together (one bit each in a long)")
    return sorted([f"key:{k}" for k in keys] + [f"snm:{p.name}" for p in passes])


def source_names(mask: Column, labels: Sequence[str]) -> Column:
    """The sorted labels whose bits are set in ``mask``."""
    return F.array_compact(F.array(*[F.when((mask.bitwiseAND(F.lit(1 << i).cast("long"))) != 0, F.lit(label))
                                     for i, label in enumerate(labels)]))


def candidate_masks(records: DataFrame, keys: Sequence[str], passes: Sequence[SnmPass], max_group: int) -> DataFrame:
    """(record_a, record_b, source_mask): every candidate pair once; bit i of the mask says that source
    ``source_labels(keys, passes)[i]`` proposed it (an integer OR aggregates far faster than a set)."""
    labels = source_labels(keys, passes)
    pairs = key_pairs(records, keys, max_group)
    snm = snm_pairs(records, passes)
    if snm is not None:
        pairs = pairs.unionByName(snm)
    bit = F.lit(0).cast("long")
    for i, label in enumerate(labels):
        bit = F.when(F.col("source") == label, F.lit(1 << i).cast("long")).otherwise(bit)
    return pairs.groupBy("record_a", "record_b").agg(F.bit_or(bit).alias("source_mask"))


def candidate_pairs(records: DataFrame, keys: Sequence[str], passes: Sequence[SnmPass], max_group: int) -> DataFrame:
    """(record_a, record_b, sources): every candidate pair once, with the keys/passes that proposed it."""
    masks = candidate_masks(records, keys, passes, max_group)
    return masks.select("record_a", "record_b", source_names(F.col("source_mask"), source_labels(keys, passes))
                        .alias("sources"))
