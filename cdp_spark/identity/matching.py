"""Probabilistic matching end to end: candidates -> comparisons -> Fellegi-Sunter -> accepted edges.

``match(records, settings)``
    in:  records (record_id + the compared columns and the blocking rules' fields)
    out: ``MatchResult`` with the accepted edges (record_a, record_b, sources, levels, field_weights,
         match_weight, match_probability, forced), the fitted model, and counts for the run manifest and
         the diagnostics: candidate pairs per rule, oversized blocks per rule, the histogram of candidate
         match weights.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from pyspark.sql import Column, DataFrame, Observation
from pyspark.sql import functions as F

from cdp_spark.config import MatchingSettings
from cdp_spark.identity.candidates import candidate_masks, oversized_blocks, source_labels, source_names
from cdp_spark.identity.compare import attach_records, compare, exact_key, full_swap_fields, level_names
from cdp_spark.identity.fellegi_sunter import (
    Agreement,
    FsModel,
    TrainingBlock,
    exact_agreements,
    exact_u,
    field_weights,
    implied_match_share,
    level_shares,
    random_match_prior,
    random_pairs,
    score,
    term_column,
    term_frequencies,
    train_sessions,
    with_exact_u,
)
from cdp_spark.progress import activity

log = logging.getLogger(__name__)

HISTOGRAM_BINS = range(-20, 51)  # match weights in whole bits; lower and higher weights go to the end bins


@dataclass
class MatchResult:
    edges: DataFrame
    model: FsModel
    counts: dict[str, Any]


def _any_rule(rules: list[str]) -> Any:
    if not rules:
        return F.lit(False)
    combined = F.lit(False)
    for rule in rules:
        combined = combined | F.coalesce(F.expr(rule), F.lit(False))
    return combined


RULE_COLUMN = re.compile(r"\b[lr]\.([A-Za-z_][A-Za-z0-9_]*)")


def compared_columns(records: DataFrame, settings: MatchingSettings) -> DataFrame:
    """The records cut down to what comparisons and forced rules read (record_id, compared fields,
    their canonical and swap columns, every ``l.x``/``r.x`` column a rule names): pairs carry less through
    the shuffles."""
    wanted = ["record_id", *[x for c in settings.comparisons for x in c.columns()],
              *[m for rule in (*settings.force_match, *settings.force_nonmatch) for m in RULE_COLUMN.findall(rule)]]
    return records.select(*[c for c in dict.fromkeys(wanted) if c in records.columns])


def matched_columns(records: DataFrame, settings: MatchingSettings) -> DataFrame:
    """The records cut down to what matching reads: the compared columns, the blocking rules' fields and
    every column an SNM key expression names (a word match on the expression's text, so never too few):
    the numbering sort and its cached copy carry nothing else."""
    snm_text = " ".join(p.key for p in settings.snm_passes)
    named = [c for c in records.columns if re.search(rf"(?<![A-Za-z0-9_]){re.escape(c)}(?![A-Za-z0-9_])", snm_text)]
    wanted = [*compared_columns(records, settings).columns, *[f for r in settings.blocking_rules for f in r.fields],
              *named]
    return records.select(*[c for c in dict.fromkeys(wanted) if c in records.columns])


def numbered_records(records: DataFrame) -> DataFrame:
    """The records sorted by record_id and numbered in that order: ``record_id`` becomes a long (pairs,
    shuffles and joins carry 8 bytes instead of a string) and the string moves to ``record_name``. The
    numbers keep the strings' order, so windows and pair orientation are unchanged."""
    return (records.orderBy("record_id").withColumnRenamed("record_id", "record_name")
            .withColumn("record_id", F.monotonically_increasing_id()))


def model_levels(settings: MatchingSettings) -> dict[str, list[str]]:
    """Field -> level names, worst first, as the configuration defines them."""
    both_ways = full_swap_fields(settings.comparisons)
    return {c.field: level_names(c, c.field in both_ways) for c in settings.comparisons}


def term_frequency_fields(settings: MatchingSettings) -> list[str]:
    """The comparisons whose exact agreement is weighed by how common the shared value is."""
    return [c.field for c in settings.comparisons if c.term_frequency]


def model_fits(model: FsModel, settings: MatchingSettings) -> bool:
    """Whether a stored model was fitted for these comparisons (same fields and levels)."""
    return model.levels == model_levels(settings) and model.fields == [c.field for c in settings.comparisons]


@dataclass
class LevelPatterns:
    """Pairs per distinct (random, forced non-match, source mask, levels) row, collected in one aggregation:
    u comes from the random rows, m, the training blocks and the prior from the candidate rows, the counts
    from both."""

    fields: list[str]
    random: np.ndarray
    nonmatch: np.ndarray
    masks: np.ndarray
    patterns: np.ndarray
    counts: np.ndarray

    @classmethod
    def collect(cls, compared: DataFrame, fields: list[str]) -> LevelPatterns:
        rows = compared.groupBy(
            "random", F.coalesce(F.col("forced") == "nonmatch", F.lit(False)).alias("nonmatch"),
            F.coalesce("source_mask", F.lit(0).cast("long")).alias("mask"),
            *[f"lvl_{f}" for f in fields]).count().collect()
        # sorted, so EM sums in the same order on every run (the collect order is not fixed)
        table = np.array(sorted([(int(r["random"]), int(r["nonmatch"]), int(r["mask"]),
                                  *[int(r[f"lvl_{f}"]) for f in fields], int(r["count"])) for r in rows]),
                         dtype=np.int64).reshape(-1, len(fields) + 4)
        return cls(fields, table[:, 0] == 1, table[:, 1] == 1, table[:, 2], table[:, 3:-1],
                   table[:, -1].astype(float))

    def of(self, random: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(patterns, counts, masks) of the random or the candidate pairs."""
        chosen = self.random == random
        return self.patterns[chosen], self.counts[chosen], self.masks[chosen]

    def pairs_per_source(self, labels: list[str]) -> dict[str, int]:
        """Candidate pairs each rule or pass proposed (a pair counts for every source that proposed it)."""
        _, counts, masks = self.of(random=False)
        return {label: int(counts[(masks & (1 << i)) != 0].sum()) for i, label in enumerate(labels)}


def column_key(column: str) -> str:
    """The key under which ``exact_agreements`` counts agreement on one record column (a blocking rule's field)."""
    return f"column:{column}"


def training_blocks(settings: MatchingSettings, masks: np.ndarray, counts: np.ndarray,
                    agreements: Mapping[str, Agreement], records: int) -> list[TrainingBlock]:
    """One EM training block per blocking rule: the candidate rows its bit is set in (``masks``), the
    comparisons of its fields (fixed in its block) and the share of matches its fields imply, from each
    field's agreement under ``column_key`` (``implied_match_share``; None when a field was not counted)."""
    labels = source_labels(settings.blocking_rules, settings.snm_passes)
    all_pairs = records * (records - 1) / 2
    blocks = []
    for rule in settings.blocking_rules:
        rows = (masks & (1 << labels.index(f"block:{rule.name}"))) != 0
        fixed = frozenset(c.field for c in settings.comparisons if set(c.valued_columns()) & set(rule.fields))
        shares = [agreements[column_key(f)].share for f in rule.fields if column_key(f) in agreements]
        implied = (implied_match_share(float(counts[rows].sum()), all_pairs, shares)
                   if len(shares) == len(rule.fields) else None)
        blocks.append(TrainingBlock(rule.name, rows, fixed, implied))
    return blocks


def fit_model(patterns: LevelPatterns, settings: MatchingSettings, records: int,
              agreements: dict[str, Agreement]) -> FsModel:
    """u from the random pairs (exact agreement from ``agreements``, per comparison field and per blocking
    rule column under ``column_key``), m by EM in the blocking rules' training blocks, then u of exact
    agreement corrected for the matches EM found and the blocks trained again."""
    fields = [c.field for c in settings.comparisons]
    levels = model_levels(settings)
    sampled = level_shares(*patterns.of(random=True)[:2], fields, levels)
    u = with_exact_u(sampled, {f: a.share for f, a in agreements.items() if a.pairs and f in levels})
    candidates, counts, masks = patterns.of(random=False)
    blocks = training_blocks(settings, masks, counts, agreements, records)
    first = train_sessions(candidates, counts, u, fields, levels, blocks, settings.em_iterations)
    matches = first.share * float(counts.sum())
    u = with_exact_u(u, {f: exact_u(a, matches, records, first.m[f][-1]) for f, a in agreements.items()
                         if a.pairs and f in levels})
    trained = train_sessions(candidates, counts, u, fields, levels, blocks, settings.em_iterations)
    prior = random_match_prior(trained.share, float(counts.sum()), records)
    tf_fields = term_frequency_fields(settings)
    tf_base = {f: agreements[f].share for f in tf_fields if f in agreements and agreements[f].pairs}
    anchors = [r.name for r in settings.blocking_rules if trained.conditional_u.get(r.name)]
    return FsModel(fields, levels, trained.m, u, prior, first.iterations + trained.iterations, tf_fields,
                   trained.share, trained.trained_by, tf_base, trained.conditional_u, anchors)


def anchor_index(mask: Column, model: FsModel, labels: list[str]) -> Column:
    """Index into ``model.anchors`` of the first anchor rule whose bit is set in the pair's source mask."""
    index = F.lit(None).cast("int")
    for position, rule in reversed(list(enumerate(model.anchors))):
        label = f"block:{rule}"
        if label in labels:
            bit = F.lit(1 << labels.index(label)).cast("long")
            index = F.when(mask.bitwiseAND(bit) != 0, F.lit(position)).otherwise(index)
    return index


def weight_histogram(weight: str) -> list[Column]:
    """Aggregates counting pairs per whole-bit bin of the ``weight`` column (``w<bin>``; the end bins take the
    tails). SQL text, one call per bin: built Column by Column it cost 800 JVM round trips (docs/design.md §9)."""
    low, high = HISTOGRAM_BINS[0], HISTOGRAM_BINS[-1]
    binned = f"greatest({low}, least({high}, floor(`{weight}`)))"
    return [F.expr(f"sum(CASE WHEN {binned} = {b} THEN 1 ELSE 0 END) AS `w{b}`") for b in HISTOGRAM_BINS]


def null_junk_identifiers(records: DataFrame, junk: dict[str, list[str]]) -> DataFrame:
    """``records`` with every junk identifier value (a placeholder shared by too many records) set to null
    in its column, so it neither blocks nor weighs in a comparison."""
    out = records
    for column, values in junk.items():
        if column in out.columns and values:
            out = out.withColumn(column, F.when(~F.col(column).cast("string").isin(values), F.col(column)))
    return out


def match(records: DataFrame, settings: MatchingSettings, model: FsModel | None = None,
          touching: DataFrame | None = None) -> MatchResult:
    """Scores every candidate pair; fits the model on these records unless one is given. With
    ``touching`` (record_id of new/changed records) only the pairs involving one of them are compared:
    the incremental mode. When fitting, the random pairs for u are compared in the same pass as the
    candidates (flagged ``random``), so the comparisons run once and one aggregation feeds the model."""
    rules = settings.blocking_rules
    numbered = numbered_records(matched_columns(records, settings)).persist()
    oversized = oversized_blocks(numbered, rules, settings.max_block_size).collect()
    identifier_rules = {r.name: r.fields[0] for r in rules if r.identifier and len(r.fields) == 1}
    junk: dict[str, list[str]] = {}
    for row in oversized:
        if row["rule"] in identifier_rules:
            junk.setdefault(identifier_rules[row["rule"]], []).append(row["block_key"])
    oversized_summary = _oversized_summary(oversized)
    if junk:
        cleaned = null_junk_identifiers(numbered, junk).persist()
        numbered.unpersist()
        numbered = cleaned
    pairs = candidate_masks(numbered, rules, settings.snm_passes, settings.max_block_size)
    if touching is not None:
        ids = F.broadcast(numbered.join(touching.select(F.col("record_id").alias("record_name")), "record_name",
                                        "left_semi").select("record_id"))
        pairs = (pairs.join(ids.withColumnRenamed("record_id", "record_a"), "record_a", "left_semi")
                 .unionByName(pairs.join(ids.withColumnRenamed("record_id", "record_b"), "record_b", "left_semi"))
                 .distinct())
    slim = compared_columns(numbered, settings).persist()
    total = slim.count()
    broadcast = total <= settings.broadcast_records
    pairs = pairs.withColumn("random", F.lit(False))
    if model is None:
        # drawn by record name: the numbers depend on the numbering sort's partition bounds
        randoms = random_pairs(numbered.select("record_id", "record_name"), settings.u_sample_pairs, settings.seed,
                               total, draw_key="record_name")
        pairs = pairs.unionByName(randoms.select("record_a", "record_b", F.lit(None).cast("long").alias("source_mask"),
                                                 F.lit(True).alias("random")))
    forced_match, forced_nonmatch = _any_rule(settings.force_match), _any_rule(settings.force_nonmatch)
    fields = [c.field for c in settings.comparisons]
    tf_fields = model.tf_fields if model is not None else term_frequency_fields(settings)
    exact_level = {field: len(names) - 1 for field, names in model_levels(settings).items()}
    # all that scoring needs of l and r: the levels, the forced decision and the left record's value of each
    # term-frequency field. With broadcast records that value is looked up again after the cache (the cache
    # holds no strings); otherwise the lookup would shuffle every candidate, so the cache keeps the value
    # where the field agrees exactly (the only level its adjustment touches) and a null elsewhere
    exact_terms = [] if broadcast else [
        F.when(F.col(f"lvl_{name}") == exact_level[name], F.col(f"l.{name}")).alias(term_column(name))
        for name in tf_fields]
    compared = compare(attach_records(pairs, slim, broadcast), settings.comparisons).select(
        "record_a", "record_b", "source_mask", "random", *[f"lvl_{f}" for f in fields], *exact_terms,
        F.when(forced_nonmatch, F.lit("nonmatch")).when(forced_match, F.lit("match")).alias("forced")).persist()
    with activity(records.sparkSession, "comparing candidate pairs"):
        patterns = LevelPatterns.collect(compared, fields)
    if model is None:
        rule_columns = {column_key(f): F.col(f) for r in rules for f in r.fields if f in numbered.columns}
        agreements = exact_agreements(numbered, {**{c.field: exact_key(c) for c in settings.comparisons},
                                                 **rule_columns})
        model = fit_model(patterns, settings, total, agreements)
    tf = term_frequencies(numbered, model.tf_fields, total)
    candidates = compared.where(~F.col("random")).drop("random")
    if model.tf_fields and broadcast:
        terms = slim.select(F.col("record_id").alias("record_a"),
                            *[F.col(name).alias(term_column(name)) for name in model.tf_fields])
        candidates = candidates.join(F.broadcast(terms), "record_a", "left")
    labels = source_labels(rules, settings.snm_passes)
    candidates = candidates.withColumn("anchor", anchor_index(F.col("source_mask"), model, labels))
    decided = score(candidates, model, tf, settings.tf_max_boost, settings.tf_max_penalty).withColumn(
        "accepted", (F.col("forced") == "match") | (
            F.col("forced").isNull() & (F.col("match_probability") >= settings.match_probability)))
    observed = Observation("match_weights")
    decided = decided.observe(observed, *weight_histogram("match_weight"))
    levels = F.create_map(*[x for c in settings.comparisons for x in (F.lit(c.field), F.col(f"lvl_{c.field}"))])
    names = numbered.select("record_id", "record_name")
    accepted = decided.where("accepted")
    edges = (accepted.join(names.toDF("record_a", "name_a"), "record_a")
             .join(names.toDF("record_b", "name_b"), "record_b")
             .select(*_ordered_names(), source_names(F.col("source_mask"), labels).alias("sources"),
                     levels.alias("levels"), field_weights(model).alias("field_weights"),
                     F.round("match_weight", 4).alias("match_weight"),
                     F.round("match_probability", 6).alias("match_probability"), "forced").persist())
    n_edges = edges.count()
    # counted from the level patterns and the materialised edges (one edge per accepted pair): no second
    # scoring pass over the candidates
    of_candidates = ~patterns.random
    n_candidates = int(patterns.counts[of_candidates].sum())
    # without candidates Spark may prune the scoring plan, and the observation is never filled
    histogram = {int(k[1:]): int(v) for k, v in observed.get.items() if v} if n_candidates else {}
    counts = {"records": total, "candidate_pairs": n_candidates,
              "accepted_pairs": n_edges,
              "forced_nonmatch": int(patterns.counts[of_candidates & patterns.nonmatch].sum()),
              "prior": model.prior, "em_iterations": model.iterations,
              "pairs_per_source": patterns.pairs_per_source(labels),
              "oversized_blocks": oversized_summary,
              "junk_identifiers": sum(len(v) for v in junk.values()),
              "threshold_weight": round(_threshold_weight(settings.match_probability), 4),
              "weight_histogram": histogram}
    for frame in (compared, slim, numbered):
        frame.unpersist()
    log.info("matching: %(candidate_pairs)d candidate pairs, %(accepted_pairs)d accepted", counts)
    return MatchResult(edges, model, counts)


def _threshold_weight(probability: float) -> float:
    """The match weight at which a pair reaches ``probability``."""
    return math.log2(probability / (1 - probability))


def _oversized_summary(rows: list[Any]) -> dict[str, dict[str, int]]:
    """Per rule: how many blocks were too large and the largest one's size (values are never reported)."""
    summary: dict[str, dict[str, int]] = {}
    for row in rows:
        entry = summary.setdefault(row["rule"], {"blocks": 0, "largest": 0})
        entry["blocks"] += 1
        entry["largest"] = max(entry["largest"], int(row["records"]))
    for rule, entry in sorted(summary.items()):
        log.warning("blocking rule %s: %d blocks over the size limit give no pairs (largest %d records)", rule,
                    entry["blocks"], entry["largest"])
    return summary


def _ordered_names() -> list[Any]:
    return [F.least("name_a", "name_b").alias("record_a"), F.greatest("name_a", "name_b").alias("record_b")]
