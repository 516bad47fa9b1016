"""Candidate pairs: blocking rules plus a multi-pass, adaptive Sorted Neighbourhood Method (docs/design.md §4).

``block_keys(records, rules)``
    in:  record_id + the rules' fields;  out: (record_id, rule, block_key), one row per record and rule whose
    fields are all non-null. ``any_order`` rules sort the values first, so swapped names share a key.
``oversized_blocks(records, rules, max_block_size)``
    out: (rule, block_key, records) for blocks larger than their rule's limit: they give no pairs. Small
    (placeholder values, very common names), collected by the caller to report them and to ignore junk
    identifiers in comparisons.
``block_pairs(records, rules, max_block_size, sources=None)``
    out: (record_a, record_b, source) with record_a < record_b: every pair inside each block within the
    limit (one aggregation per rule and key, the pairs generated from the block's sorted ids). ``source`` is
    the rule's label, or its entry of ``sources`` (``candidate_masks`` passes each source's bit).
``snm_pairs(records, passes, sources=None)``
    Per pass: key = the pass's SQL expression; records are sorted by (key, record_id) inside partitions of
    the key's first ``prefix_length`` characters, and each record is paired with the next ``window - 1``
    records, or up to ``max_window - 1`` while the next record's key shares its first ``dense_prefix``
    characters (the adaptive window: dense regions of similar keys look further). All passes share one
    shuffle and sort: a row per (record, pass), partitioned by (pass, prefix).
``candidate_masks`` is their union, each pair once, with a bit mask of the rules and passes that proposed it
    (``source_labels`` names the bits); ``candidate_pairs`` the same with the labels as an array.
``key_pairs(records, keys, max_group)``
    the exact-key mode (no probabilistic matching): every record of a key value linked to the value's
    smallest record_id (k-1 pairs per value, not k²); values shared by more than ``max_group`` records give
    none.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from cdp_spark.config import BlockingRule, SnmPass

KEY_SEPARATOR = "\u241f"


def _ordered(a: str, b: str) -> list[Column]:
    return [F.least(F.col(a), F.col(b)).alias("record_a"), F.greatest(F.col(a), F.col(b)).alias("record_b")]


def _per_row(values: Sequence[object], index: Column) -> Column:
    """The value for each row's 0-based ``index`` out of a literal list."""
    return F.element_at(F.array(*[F.lit(v) for v in values]), index + 1)


def block_key(rule: BlockingRule) -> Column:
    """The rule's key for one record: its fields' values joined (sorted first for ``any_order``); null when
    any field is null or empty."""
    values = [F.nullif(F.col(f).cast("string"), F.lit("")) for f in rule.fields]
    complete = F.lit(True)
    for value in values:
        complete = complete & value.isNotNull()
    joined = (F.array_join(F.array_sort(F.array(*values)), KEY_SEPARATOR) if rule.any_order
              else F.concat_ws(KEY_SEPARATOR, *values))
    return F.when(complete, joined)


def block_keys(records: DataFrame, rules: Sequence[BlockingRule]) -> DataFrame:
    entries = F.array(*[F.struct(F.lit(i).alias("rule"), block_key(rule).alias("block_key"))
                        for i, rule in enumerate(rules)])
    return records.select("record_id", F.inline(entries)).where(F.col("block_key").isNotNull())


def _limits(rules: Sequence[BlockingRule], max_block_size: int) -> Column:
    return _per_row([r.max_block_size or max_block_size for r in rules], F.col("rule"))


def oversized_blocks(records: DataFrame, rules: Sequence[BlockingRule], max_block_size: int) -> DataFrame:
    sizes = block_keys(records, rules).groupBy("rule", "block_key").agg(F.count(F.lit(1)).alias("records"))
    return sizes.where(F.col("records") > _limits(rules, max_block_size)).select(
        _per_row([r.name for r in rules], F.col("rule")).alias("rule"), "block_key", "records")


def block_pairs(records: DataFrame, rules: Sequence[BlockingRule], max_block_size: int,
                sources: Sequence[object] | None = None) -> DataFrame | None:
    """``sources``: the value of ``source`` per rule (default: its label, ``block:<name>``)."""
    if not rules:
        return None
    blocks = (block_keys(records, rules).groupBy("rule", "block_key")
              .agg(F.array_sort(F.collect_list("record_id")).alias("ids"))
              .withColumn("size", F.size("ids"))
              .where((F.col("size") >= 2) & (F.col("size") <= _limits(rules, max_block_size))))
    # each id but the last (0-based position i) paired with every later id: two explodes, which Spark compiles
    # (lambda functions over arrays run interpreted; docs/identity.md, "Speed")
    firsts = blocks.select("rule", "ids", "size",
                           F.posexplode(F.slice("ids", 1, F.col("size") - 1)).alias("i", "record_a"))
    later = F.slice("ids", F.col("i") + 2, F.col("size") - F.col("i") - 1)
    labels = _per_row(sources if sources is not None else [f"block:{r.name}" for r in rules], F.col("rule"))
    return firsts.select("record_a", F.explode(later).alias("record_b"), labels.alias("source"))


def snm_pairs(records: DataFrame, passes: Sequence[SnmPass],
              sources: Sequence[object] | None = None) -> DataFrame | None:
    """``sources``: the value of ``source`` per pass (default: its label, ``snm:<name>``)."""
    if not passes:
        return None
    # every pass in one shuffle: a row per (record, pass), windows partitioned by (pass, key prefix)
    entries = F.array(*[F.struct(F.lit(i).alias("pass"), F.expr(snm.key).cast("string").alias("sort_key"))
                        for i, snm in enumerate(passes)])
    keyed = records.select("record_id", F.inline(entries)).where(
        F.col("sort_key").isNotNull() & (F.col("sort_key") != ""))
    block = F.substring(F.col("sort_key"), F.lit(1), _per_row([snm.prefix_length for snm in passes], F.col("pass")))
    window = Window.partitionBy("pass", block).orderBy("sort_key", "record_id")
    widest = max(max(snm.window, snm.max_window or 0) for snm in passes)
    offsets = range(1, widest)
    adaptive = any(snm.max_window for snm in passes)
    with_next = keyed.select(
        "record_id", "pass", "sort_key",
        *[F.lead("record_id", o).over(window).alias(f"n{o}") for o in offsets],
        *([F.lead("sort_key", o).over(window).alias(f"k{o}") for o in offsets] if adaptive else []))
    size = _per_row([snm.window for snm in passes], F.col("pass"))
    grown = _per_row([snm.max_window or snm.window for snm in passes], F.col("pass"))
    dense = _per_row([snm.dense_prefix for snm in passes], F.col("pass"))

    def kept(o: int) -> Column:
        within = F.lit(o) < size
        if adaptive:
            shares = F.substring(F.col(f"k{o}"), F.lit(1), dense) == F.substring(F.col("sort_key"), F.lit(1), dense)
            within = within | ((F.lit(o) < grown) & F.coalesce(shares, F.lit(False)))
        return F.when(within, F.col(f"n{o}"))

    pairs = (with_next.select("record_id", "pass", F.explode(F.array(*[kept(o) for o in offsets])).alias("other"))
             .where(F.col("other").isNotNull()))
    labels = _per_row(sources if sources is not None else [f"snm:{snm.name}" for snm in passes], F.col("pass"))
    return pairs.select(*_ordered("record_id", "other"), labels.alias("source"))


def source_labels(rules: Sequence[BlockingRule], passes: Sequence[SnmPass]) -> list[str]:
    """The labels a candidate pair's sources can carry, sorted; label i is bit i of ``source_mask``."""
    if len(rules) + len(passes) > 62:
        raise ValueError("at most 62 blocking rules and SNM passes together (one bit each in a long)")
    return sorted([f"block:{r.name}" for r in rules] + [f"snm:{p.name}" for p in passes])


def source_names(mask: Column, labels: Sequence[str]) -> Column:
    """The sorted labels whose bits are set in ``mask``."""
    return F.array_compact(F.array(*[F.when((mask.bitwiseAND(F.lit(1 << i).cast("long"))) != 0, F.lit(label))
                                     for i, label in enumerate(labels)]))


def candidate_masks(records: DataFrame, rules: Sequence[BlockingRule], passes: Sequence[SnmPass],
                    max_block_size: int) -> DataFrame:
    """(record_a, record_b, source_mask): every candidate pair once; bit i of the mask says that source
    ``source_labels(rules, passes)[i]`` proposed it (an integer OR aggregates far faster than a set)."""
    labels = source_labels(rules, passes)
    # each pair generated with its source's bit, not its label: no string comparisons per pair
    block_bits = [1 << labels.index(f"block:{r.name}") for r in rules]
    snm_bits = [1 << labels.index(f"snm:{p.name}") for p in passes]
    parts = [p for p in (block_pairs(records, rules, max_block_size, block_bits), snm_pairs(records, passes, snm_bits))
             if p is not None]
    if not parts:
        raise ValueError("matching needs at least one blocking rule or SNM pass")
    pairs = parts[0] if len(parts) == 1 else parts[0].unionByName(parts[1])
    return pairs.groupBy("record_a", "record_b").agg(F.bit_or(F.col("source").cast("long")).alias("source_mask"))


def candidate_pairs(records: DataFrame, rules: Sequence[BlockingRule], passes: Sequence[SnmPass],
                    max_block_size: int) -> DataFrame:
    """(record_a, record_b, sources): every candidate pair once, with the rules/passes that proposed it."""
    masks = candidate_masks(records, rules, passes, max_block_size)
    return masks.select("record_a", "record_b", source_names(F.col("source_mask"), source_labels(rules, passes))
                        .alias("sources"))


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
