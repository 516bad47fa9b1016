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

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from cdp_spark.config import MatchingSettings
from cdp_spark.identity.candidates import candidate_pairs
from cdp_spark.identity.compare import attach_records, compare
from cdp_spark.identity.fellegi_sunter import (
    FsModel,
    level_distribution,
    random_pairs,
    score,
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


def fit_model(records: DataFrame, compared: DataFrame, settings: MatchingSettings) -> FsModel:
    fields = [c.field for c in settings.comparisons]
    kinds: dict[str, str] = {c.field: str(c.kind) for c in settings.comparisons}
    randoms = compare(attach_records(random_pairs(records, settings.u_sample_pairs, settings.seed), records),
                      settings.comparisons, settings)
    u = level_distribution(randoms, fields, kinds)
    sessions = [k for k in settings.blocking_keys if k in fields]
    m, prior, iterations = train_sessions(compared, u, fields, kinds, sessions, settings.em_iterations)
    tf_fields = [c.field for c in settings.comparisons if c.term_frequency]
    return FsModel(fields, kinds, m, u, prior, iterations, tf_fields)


def match(records: DataFrame, settings: MatchingSettings, model: FsModel | None = None,
          touching: DataFrame | None = None) -> MatchResult:
    """Scores every candidate pair; fits the model on these records unless one is given. With
    ``touching`` (record_id of new/changed records) only the pairs involving one of them are compared:
    the incremental mode."""
    pairs = candidate_pairs(records, settings.blocking_keys, settings.snm_passes, settings.max_key_group)
    if touching is not None:
        ids = F.broadcast(touching.select("record_id").distinct())
        pairs = (pairs.join(ids.withColumnRenamed("record_id", "record_a"), "record_a", "left_semi")
                 .unionByName(pairs.join(ids.withColumnRenamed("record_id", "record_b"), "record_b", "left_semi"))
                 .distinct())
    slim = compared_columns(records, settings)
    compared = compare(attach_records(pairs, slim), settings.comparisons, settings).persist()
    model = model or fit_model(slim, compared, settings)
    tf = term_frequencies(records, model.tf_fields)
    scored = score(compared, model, tf, settings.tf_max_boost, settings.tf_max_penalty)
    forced_match, forced_nonmatch = _any_rule(settings.force_match), _any_rule(settings.force_nonmatch)
    decided = (scored.withColumn("forced", F.when(forced_nonmatch, F.lit("nonmatch"))
                                 .when(forced_match, F.lit("match")))
               .withColumn("accepted", (F.col("forced") == "match") | (
                   F.col("forced").isNull() & (F.col("match_probability") >= settings.match_probability))))
    levels = F.create_map(*[x for c in settings.comparisons for x in (F.lit(c.field), F.col(f"lvl_{c.field}"))])
    edges = decided.where("accepted").select(
        "record_a", "record_b", "sources", levels.alias("levels"), "field_weights",
        F.round("match_weight", 4).alias("match_weight"), F.round("match_probability", 6).alias("match_probability"),
        "forced").persist()
    totals = decided.agg(F.count("*").alias("candidates"), F.sum(F.col("accepted").cast("int")).alias("accepted"),
                         F.sum(F.when(F.col("forced") == "nonmatch", 1).otherwise(0)).alias("forced_nonmatch")
                         ).first()
    compared.unpersist()
    counts = {"candidate_pairs": int(totals["candidates"] or 0) if totals else 0,
              "accepted_pairs": int(totals["accepted"] or 0) if totals else 0,
              "forced_nonmatch": int(totals["forced_nonmatch"] or 0) if totals else 0,
              "prior": round(model.prior, 6), "em_iterations": model.iterations}
    log.info("matching: %(candidate_pairs)d candidate pairs, %(accepted_pairs)d accepted", counts)
    return MatchResult(edges, model, counts)
