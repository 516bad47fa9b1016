"""Probabilistic matching end to end: candidates -> comparisons -> Fellegi-Sunter -> accepted edges.

``match(records, settings)``
    in:  records (record_id + the compared columns)
    out: ``MatchResult`` with the accepted edges (record_a, record_b, sources, levels, field_weights,
         match_weight, match_probability, forced), the fitted model, and counts for the run manifest.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from cdp_spark.config import MatchingSettings
from cdp_spark.identity.candidates import candidate_masks, source_labels, source_names
from cdp_spark.identity.compare import attach_records, compare
from cdp_spark.identity.fellegi_sunter import (
    FsModel,
    level_shares,
    random_pairs,
    score,
    term_column,
    term_frequencies,
    train_sessions,
)

log = logging.getLogger(__name__)


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
    their canonical forms, every ``l.x``/``r.x`` column a rule names): pairs carry less through the
    shuffles."""
    wanted = ["record_id", *[x for c in settings.comparisons for x in (c.field, c.canonical) if x],
              *[m for rule in (*settings.force_match, *settings.force_nonmatch) for m in RULE_COLUMN.findall(rule)]]
    return records.select(*[c for c in dict.fromkeys(wanted) if c in records.columns])


def matched_columns(records: DataFrame, settings: MatchingSettings) -> DataFrame:
    """The records cut down to what matching reads: the compared columns, the blocking keys and every
    column an SNM key expression names (a word match on the expression's text, so never too few): the
    numbering sort and its cached copy carry nothing else."""
    snm_text = " ".join(p.key for p in settings.snm_passes)
    named = [c for c in records.columns if re.search(rf"(?<![A-Za-z0-9_]){re.escape(c)}(?![A-Za-z0-9_])", snm_text)]
    wanted = [*compared_columns(records, settings).columns, *settings.blocking_keys, *named]
    return records.select(*[c for c in dict.fromkeys(wanted) if c in records.columns])


def numbered_records(records: DataFrame) -> DataFrame:
    """The records sorted by record_id and numbered in that order: ``record_id`` becomes a long (pairs,
    shuffles and joins carry 8 bytes instead of a string) and the string moves to ``record_name``. The
    numbers keep the strings' order, so windows, anchors and pair orientation are unchanged."""
    return (records.orderBy("record_id").withColumnRenamed("record_id", "record_name")
            .withColumn("record_id", F.monotonically_increasing_id()))


@dataclass
class LevelPatterns:
    """Pairs per distinct (random, forced non-match, levels) row, collected in one aggregation: u comes
    from the random rows, m and the prior from the candidate rows, the counts from both."""

    fields: list[str]
    random: np.ndarray
    nonmatch: np.ndarray
    patterns: np.ndarray
    counts: np.ndarray

    @classmethod
    def collect(cls, compared: DataFrame, fields: list[str]) -> LevelPatterns:
        rows = compared.groupBy(
            "random", F.coalesce(F.col("forced") == "nonmatch", F.lit(False)).alias("nonmatch"),
            *[f"lvl_{f}" for f in fields]).count().collect()
        # sorted, so EM sums in the same order on every run (the collect order is not fixed)
        table = np.array(sorted([(int(r["random"]), int(r["nonmatch"]), *[int(r[f"lvl_{f}"]) for f in fields],
                                  int(r["count"])) for r in rows]), dtype=np.int64).reshape(-1, len(fields) + 3)
        return cls(fields, table[:, 0] == 1, table[:, 1] == 1, table[:, 2:-1], table[:, -1].astype(float))

    def of(self, random: bool) -> tuple[np.ndarray, np.ndarray]:
        """(patterns, counts) of the random or the candidate pairs, one row per distinct pattern."""
        chosen = self.random == random
        patterns, inverse = np.unique(self.patterns[chosen], axis=0, return_inverse=True)
        return patterns.reshape(-1, len(self.fields)), np.bincount(inverse.ravel(), weights=self.counts[chosen],
                                                                    minlength=len(patterns))


def fit_model(patterns: LevelPatterns, settings: MatchingSettings) -> FsModel:
    fields = [c.field for c in settings.comparisons]
    kinds: dict[str, str] = {c.field: str(c.kind) for c in settings.comparisons}
    u = level_shares(*patterns.of(random=True), fields, kinds)
    sessions = [k for k in settings.blocking_keys if k in fields]
    m, prior, iterations = train_sessions(*patterns.of(random=False), u, fields, kinds, sessions,
                                          settings.em_iterations)
    tf_fields = [c.field for c in settings.comparisons if c.term_frequency]
    return FsModel(fields, kinds, m, u, prior, iterations, tf_fields)


def match(records: DataFrame, settings: MatchingSettings, model: FsModel | None = None,
          touching: DataFrame | None = None) -> MatchResult:
    """Scores every candidate pair; fits the model on these records unless one is given. With
    ``touching`` (record_id of new/changed records) only the pairs involving one of them are compared:
    the incremental mode. When fitting, the random pairs for u are compared in the same pass as the
    candidates (flagged ``random``), so the comparisons run once and one aggregation feeds the model."""
    numbered = numbered_records(matched_columns(records, settings)).persist()
    pairs = candidate_masks(numbered, settings.blocking_keys, settings.snm_passes, settings.max_key_group)
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
    # the levels and the forced decision are all that scoring needs of l and r. The cached pairs hold no
    # strings: the left record's term-frequency values are looked up again by record_a after the cache
    # (at 100k records, caching them cost about 2 s of the cache's columnar encoding)
    compared = compare(attach_records(pairs, slim, broadcast), settings.comparisons, settings).select(
        "record_a", "record_b", "source_mask", "random", *[f"lvl_{f}" for f in fields],
        F.when(forced_nonmatch, F.lit("nonmatch")).when(forced_match, F.lit("match")).alias("forced")).persist()
    patterns = LevelPatterns.collect(compared, fields)
    model = model or fit_model(patterns, settings)
    tf = term_frequencies(records, model.tf_fields, total)
    candidates = compared.where(~F.col("random")).drop("random")
    if model.tf_fields:
        terms = slim.select(F.col("record_id").alias("record_a"),
                            *[F.col(name).alias(term_column(name)) for name in model.tf_fields])
        candidates = candidates.join(F.broadcast(terms) if broadcast else terms, "record_a", "left")
    decided = score(candidates, model, tf, settings.tf_max_boost, settings.tf_max_penalty).withColumn(
        "accepted", (F.col("forced") == "match") | (
            F.col("forced").isNull() & (F.col("match_probability") >= settings.match_probability)))
    levels = F.create_map(*[x for c in settings.comparisons for x in (F.lit(c.field), F.col(f"lvl_{c.field}"))])
    names = numbered.select("record_id", "record_name")
    labels = source_labels(settings.blocking_keys, settings.snm_passes)
    accepted = decided.where("accepted")
    edges = (accepted.join(names.toDF("record_a", "name_a"), "record_a")
             .join(names.toDF("record_b", "name_b"), "record_b")
             .select(*_ordered_names(), source_names(F.col("source_mask"), labels).alias("sources"),
                     levels.alias("levels"), "field_weights",
                     F.round("match_weight", 4).alias("match_weight"),
                     F.round("match_probability", 6).alias("match_probability"), "forced").persist())
    # counted from the level patterns and the materialised edges (one edge per accepted pair): no second
    # scoring pass over the candidates
    of_candidates = ~patterns.random
    counts = {"records": total, "candidate_pairs": int(patterns.counts[of_candidates].sum()),
              "accepted_pairs": edges.count(),
              "forced_nonmatch": int(patterns.counts[of_candidates & patterns.nonmatch].sum()),
              "prior": round(model.prior, 6), "em_iterations": model.iterations}
    for frame in (compared, slim, numbered):
        frame.unpersist()
    log.info("matching: %(candidate_pairs)d candidate pairs, %(accepted_pairs)d accepted", counts)
    return MatchResult(edges, model, counts)


def _ordered_names() -> list[Any]:
    return [F.least("name_a", "name_b").alias("record_a"), F.greatest("name_a", "name_b").alias("record_b")]
