"""Fellegi-Sunter match weights (DESIGN §4).

* ``u`` (probability of each level among non-matches) from random record pairs, which are almost all
  non-matches: ``level_shares`` of their level patterns.
* ``m`` (probability of each level among matches) by expectation-maximisation with ``u`` fixed, in
  training sessions (``train_sessions``): one per deterministic key, on the pairs agreeing on that key,
  leaving that key's own field out (Splink's approach; EM on all candidates at once drifts to "everything
  matches" because blocked candidates do not look like random pairs). Then the prior ``lambda`` is fitted
  on all candidates with m and u fixed. Pairs are aggregated to (pattern, count) first (one Spark
  aggregation serves u, every session and the prior), so EM runs on the driver over a few hundred
  rows, exactly.
* A pair's weight is ``log2(lambda / (1 - lambda)) + sum over fields of log2(m / u)`` for its levels
  (null levels add nothing); exact agreement on a term-frequency field adds ``log2(u_exact / tf(value))``
  so a common surname weighs less than a rare one. Probability = 1 / (1 + 2^-weight).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain

import numpy as np
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from cdp_spark.identity.compare import LEVELS, NULL_LEVEL

EPSILON = 1e-6
TF_CLAMP = 5.0


@dataclass
class FsModel:
    """Per field: levels' m and u; the prior probability that a candidate pair matches."""

    fields: list[str]
    kinds: dict[str, str]
    m: dict[str, list[float]]
    u: dict[str, list[float]]
    prior: float
    iterations: int = 0
    tf_fields: list[str] = field(default_factory=list)

    def weight(self, name: str, level: int) -> float:
        return math.log2(self.m[name][level] / self.u[name][level])

    def to_json(self) -> str:
        return json.dumps({"fields": self.fields, "kinds": self.kinds, "m": self.m, "u": self.u,
                           "prior": self.prior, "iterations": self.iterations, "tf_fields": self.tf_fields})

    @classmethod
    def from_json(cls, text: str) -> FsModel:
        return cls(**json.loads(text))


def level_shares(patterns: np.ndarray, counts: np.ndarray, fields: Sequence[str],
                 kinds: Mapping[str, str]) -> dict[str, list[float]]:
    """Share of each level per field among non-null comparisons, smoothed (+1) so no level is 0.
    ``patterns`` holds one column of levels per field in ``fields``, ``counts`` the pairs per row."""
    out = {}
    for j, name in enumerate(fields):
        levels = patterns[:, j]
        seen = levels != NULL_LEVEL
        raw = np.bincount(levels[seen], weights=counts[seen], minlength=len(LEVELS[kinds[name]])) + 1.0
        out[name] = list(map(float, raw / raw.sum()))
    return out


def random_pairs(records: DataFrame, n_pairs: int, seed: int, total: int | None = None,
                 draw_key: str = "record_id") -> DataFrame:
    """About ``n_pairs`` (record_a, record_b) pairs of distinct records drawn at random: two samples of
    about ``n_pairs`` records each, every record thrown into one of ``n_pairs`` random buckets, pairs
    formed inside buckets (one expected pair per bucket; no single-partition window). ``total``: the
    number of records, when the caller knows it. The draws are hashes of ``draw_key`` (a column that
    identifies a record across runs) and the seed, not per-partition random numbers: the same records give
    the same pairs however they are partitioned."""
    total = records.count() if total is None else total
    fraction = min(1.0, n_pairs / max(total, 1))
    buckets = max(1, min(n_pairs, total))
    scale = 1 << 30

    def draw(salt: int) -> Column:
        return F.pmod(F.xxhash64(F.lit(seed), F.lit(salt), F.col(draw_key)), F.lit(scale))

    def bucketed(salt: int, name: str) -> DataFrame:
        return records.where(draw(salt) < F.lit(int(fraction * scale))).select(
            F.col("record_id").alias(name), F.pmod(draw(salt + 1), F.lit(buckets)).alias("bucket"))

    return (bucketed(1, "record_a").join(bucketed(3, "record_b"), "bucket")
            .where(F.col("record_a") != F.col("record_b")).select("record_a", "record_b"))


def expectation_maximisation(patterns: np.ndarray, counts: np.ndarray, u: Mapping[str, Sequence[float]],
                             fields: Sequence[str], kinds: Mapping[str, str], iterations: int = 30,
                             prior: float = 0.2, m_start: Mapping[str, Sequence[float]] | None = None,
                             update_m: bool = True, tolerance: float = 1e-8, pseudo_count: float = 1.0,
                             ) -> tuple[dict[str, list[float]], float, int]:
    """m per field and the prior, with u fixed (``update_m=False`` fits the prior only). ``pseudo_count``
    pairs per level keep every m above zero (0 gives the plain maximum-likelihood estimate).
    ``patterns`` holds one column per field in ``fields``. Returns (m, prior, iterations run)."""
    m: dict[str, np.ndarray] = {}
    for name in fields:
        if m_start and name in m_start:
            m[name] = np.asarray(m_start[name], dtype=float)
        else:
            start = np.linspace(0.05, 1.0, len(LEVELS[kinds[name]])) ** 3  # agreement likely among matches
            m[name] = start / start.sum()
    u_arr = {name: np.asarray(u[name], dtype=float) for name in fields}
    done = 0
    for done in range(1, iterations + 1):  # noqa: B007 - the count is returned
        log_m = np.zeros(len(counts))
        log_u = np.zeros(len(counts))
        for j, name in enumerate(fields):
            levels = patterns[:, j]
            seen = levels != NULL_LEVEL
            log_m[seen] += np.log(m[name][levels[seen]])
            log_u[seen] += np.log(u_arr[name][levels[seen]])
        match = prior * np.exp(log_m)
        posterior = match / (match + (1 - prior) * np.exp(log_u))
        weights = posterior * counts
        new_prior = float(np.clip(weights.sum() / counts.sum(), EPSILON, 1 - EPSILON))
        change = abs(new_prior - prior)
        prior = new_prior
        if update_m:
            for j, name in enumerate(fields):
                levels = patterns[:, j]
                seen = levels != NULL_LEVEL
                # one pseudo-pair per level keeps every m > 0, so no single disagreement is infinitely damning
                totals = np.bincount(levels[seen], weights=weights[seen], minlength=len(m[name])) + pseudo_count
                totals = np.maximum(totals, EPSILON)
                new_m = totals / totals.sum()
                change = max(change, float(np.abs(new_m - m[name]).max()))
                m[name] = new_m
        if change < tolerance:
            break
    return {name: list(map(float, m[name])) for name in fields}, prior, done


def train_sessions(patterns: np.ndarray, counts: np.ndarray, u: Mapping[str, Sequence[float]],
                   fields: Sequence[str], kinds: Mapping[str, str], session_fields: Sequence[str],
                   iterations: int) -> tuple[dict[str, list[float]], float, int]:
    """Splink-style training on the candidates' level patterns (one column per field in ``fields``, with
    ``counts`` pairs per row). For each session field (a deterministic key such as the e-mail), EM runs on
    the pairs that agree exactly on it, estimating m for every *other* field (the session's own field
    agrees by construction and says nothing there). m is averaged over the sessions; then the prior is
    fitted on all pairs with m and u fixed. Returns (m, prior, total iterations)."""
    estimates: dict[str, list[np.ndarray]] = {name: [] for name in fields}
    total_iterations = 0
    for key in session_fields:
        exact = len(LEVELS[kinds[key]]) - 1
        column = list(fields).index(key)
        others = [f for f in fields if f != key]
        agree = patterns[:, column] == exact
        if counts[agree].sum() == 0:
            continue
        session = np.delete(patterns[agree], column, axis=1)
        m, _, used = expectation_maximisation(session, counts[agree], u, others, kinds, iterations, prior=0.9)
        total_iterations += used
        for name in others:
            estimates[name].append(np.asarray(m[name]))
    m_final: dict[str, list[float]] = {}
    for name in fields:
        if estimates[name]:
            mean = np.mean(estimates[name], axis=0)
        else:
            start = np.linspace(0.05, 1.0, len(LEVELS[kinds[name]])) ** 3
            mean = start / start.sum()
        m_final[name] = list(map(float, mean / mean.sum()))
    _, prior, used = expectation_maximisation(patterns, counts, u, fields, kinds, iterations, prior=0.1,
                                              m_start=m_final, update_m=False)
    return m_final, prior, total_iterations + used


def _lookup(values: Sequence[float], level: Column) -> Column:
    table = F.create_map(*chain.from_iterable((F.lit(i), F.lit(float(v))) for i, v in enumerate(values)))
    return F.coalesce(F.element_at(table, level), F.lit(0.0))


def term_frequencies(records: DataFrame, tf_fields: Sequence[str], total: int | None = None) -> dict[str, DataFrame]:
    """Per term-frequency field: (value, tf) with tf = share of records holding the value (``total``: the
    number of records, when the caller knows it)."""
    total = records.count() if total is None else total
    return {name: records.where(F.col(name).isNotNull()).groupBy(F.col(name).alias("tf_value"))
            .agg((F.count("*") / F.lit(total)).alias(f"tf_{name}")) for name in tf_fields}


def term_column(name: str) -> str:
    """The column holding the left record's value of a term-frequency field, looked up by ``score``."""
    return f"term_{name}"


def score(compared: DataFrame, model: FsModel, tf_tables: Mapping[str, DataFrame] | None = None,
          tf_max_boost: float = TF_CLAMP, tf_max_penalty: float = TF_CLAMP) -> DataFrame:
    """Adds ``field_weights`` (map field -> weight), ``match_weight`` and ``match_probability``;
    reads ``lvl_<field>`` and, per term-frequency field, ``term_<field>`` (the left record's value).
    The term-frequency adjustment is clamped to [-tf_max_penalty, +tf_max_boost] bits."""
    scored = compared
    contributions = []
    for name in model.fields:
        weights = [math.log2(mi / ui) for mi, ui in zip(model.m[name], model.u[name], strict=True)]
        level = F.col(f"lvl_{name}")
        contribution = F.when(level == NULL_LEVEL, F.lit(0.0)).otherwise(_lookup(weights, level))
        if tf_tables and name in tf_tables:
            exact = len(LEVELS[model.kinds[name]]) - 1
            scored = scored.join(F.broadcast(tf_tables[name]), F.col(term_column(name)) == F.col("tf_value"), "left"
                                 ).drop("tf_value")
            adjustment = F.greatest(F.lit(-tf_max_penalty), F.least(F.lit(tf_max_boost), F.log2(
                F.lit(model.u[name][exact]) / F.col(f"tf_{name}"))))
            contribution = contribution + F.when((level == exact) & F.col(f"tf_{name}").isNotNull(), adjustment
                                                 ).otherwise(F.lit(0.0))
        contributions.append((name, contribution))
    scored = scored.withColumn("field_weights", F.create_map(*chain.from_iterable(
        (F.lit(name), F.round(c, 4)) for name, c in contributions)))
    prior_weight = math.log2(model.prior / (1 - model.prior))
    total = F.lit(prior_weight)
    for _, contribution in contributions:
        total = total + contribution
    scored = scored.withColumn("match_weight", total)
    probability = F.lit(1.0) / (F.lit(1.0) + F.pow(F.lit(2.0), -F.col("match_weight")))
    return scored.withColumn("match_probability", probability).drop(*[f"tf_{n}" for n in (tf_tables or {})])
