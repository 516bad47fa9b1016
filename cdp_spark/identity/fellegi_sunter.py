"""Fellegi-Sunter match weights (docs/design.md §4).

* ``u`` (probability of each level among non-matches) from random record pairs, which are almost all
  non-matches: ``level_shares`` of their level patterns; except exact agreement, counted exactly from the
  values' frequencies (``exact_agreements``: the record pairs sharing a value) and corrected for the
  matching pairs among them (``exact_u``): for an identifier such as an e-mail, most random pairs that
  agree *are* matches, and a sample of random pairs cannot see how rare agreement among non-matches is.
* ``m`` (probability of each level among matches) by expectation-maximisation with ``u`` fixed, in
  training blocks (``train_sessions``): one per blocking rule, on the candidate pairs that rule proposed
  (they agree on its fields), estimating m for every comparison *not* on those fields (the rule's own
  fields agree by construction and say nothing there); the left-out fields rotate with the rules, and each
  field's m is the mean over the blocks that estimated it (Splink's approach; EM on all candidates at once
  drifts to "everything matches" because blocked candidates do not look like random pairs).
* The prior: EM on all candidates with m and u fixed gives the share of matches among them; times the
  number of candidates that is the expected number of matching pairs, and divided by the number of all
  record pairs, the probability ``lambda`` that two random records match. Pairs are aggregated to
  (pattern, count) first (one Spark aggregation serves u, every block and the prior), so EM runs on the
  driver over a few thousand rows, exactly.
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

from cdp_spark.identity.compare import NULL_LEVEL

EPSILON = 1e-6
TF_CLAMP = 5.0


@dataclass
class FsModel:
    """Per field: its level names (worst first) and their m and u; ``prior``: the probability that two
    random records match; ``candidate_share``: the share of matches EM found among the candidates."""

    fields: list[str]
    levels: dict[str, list[str]]
    m: dict[str, list[float]]
    u: dict[str, list[float]]
    prior: float
    iterations: int = 0
    tf_fields: list[str] = field(default_factory=list)
    candidate_share: float | None = None
    trained_by: dict[str, list[str]] = field(default_factory=dict)
    """field -> the training blocks (blocking rules) whose EM estimated its m"""
    tf_base: dict[str, float] = field(default_factory=dict)
    """term-frequency field -> the share of record pairs agreeing on it (matches included): what a value's
    frequency is compared with"""
    conditional_u: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    """blocking rule -> field -> u among non-matches that agree on the rule's fields"""
    anchors: list[str] = field(default_factory=list)
    """blocking rules whose conditional u apply, in order: a pair is scored given the first it satisfies"""

    def weights(self, name: str, anchor: str | None = None) -> list[float]:
        """The field's weight per level, given agreement on the anchor rule's fields when there is one."""
        u = self.conditional_u.get(anchor, {}).get(name, self.u[name]) if anchor else self.u[name]
        return [math.log2(mi / ui) for mi, ui in zip(self.m[name], u, strict=True)]

    def weight(self, name: str, level: int) -> float:
        return math.log2(self.m[name][level] / self.u[name][level])

    def to_json(self) -> str:
        return json.dumps({"fields": self.fields, "levels": self.levels, "m": self.m, "u": self.u,
                           "prior": self.prior, "iterations": self.iterations, "tf_fields": self.tf_fields,
                           "candidate_share": self.candidate_share, "trained_by": self.trained_by,
                           "tf_base": self.tf_base, "conditional_u": self.conditional_u, "anchors": self.anchors})

    @classmethod
    def from_json(cls, text: str) -> FsModel | None:
        """The stored model, or None when it predates named levels (it is refitted)."""
        payload = json.loads(text)
        if "levels" not in payload:
            return None
        return cls(**payload)


def level_shares(patterns: np.ndarray, counts: np.ndarray, fields: Sequence[str],
                 levels: Mapping[str, Sequence[str]]) -> dict[str, list[float]]:
    """Share of each level per field among non-null comparisons, smoothed (+1) so no level is 0.
    ``patterns`` holds one column of levels per field in ``fields``, ``counts`` the pairs per row."""
    out = {}
    for j, name in enumerate(fields):
        column = patterns[:, j]
        seen = column != NULL_LEVEL
        raw = np.bincount(column[seen], weights=counts[seen], minlength=len(levels[name])) + 1.0
        out[name] = list(map(float, raw / raw.sum()))
    return out


@dataclass(frozen=True)
class Agreement:
    """Of one field: the records holding a value, and the record pairs that agree on it exactly
    (the sum over values of c(c - 1) / 2 for a value held by c records)."""

    records: int
    agreeing_pairs: float

    @property
    def pairs(self) -> float:
        return self.records * (self.records - 1) / 2

    @property
    def share(self) -> float:
        """The share of record pairs (both holding a value) that agree: u of exact agreement, matches included."""
        return self.agreeing_pairs / self.pairs if self.pairs else 0.0


def exact_agreements(records: DataFrame, keys: Mapping[str, Column]) -> dict[str, Agreement]:
    """Per field (``keys``: field -> the column whose equality is its exact level), one aggregation for all."""
    if not keys:
        return {}
    entries = F.array(*[F.struct(F.lit(name).alias("field"), key.cast("string").alias("value"))
                        for name, key in keys.items()])
    values = (records.select(F.inline(entries)).where(F.col("value").isNotNull())
              .groupBy("field", "value").agg(F.count(F.lit(1)).alias("c")))
    rows = values.groupBy("field").agg(F.sum("c").alias("records"),
                                       F.sum(F.col("c") * (F.col("c") - 1) / 2).alias("agreeing")).collect()
    return {r["field"]: Agreement(int(r["records"]), float(r["agreeing"])) for r in rows}


UNCORRECTED_FLOOR = 0.01
"""the corrected u of exact agreement stays at least this share of the uncorrected one (at most
log2(100), about 6.6 bits, more weight than the matches-included estimate)"""


def exact_u(agreement: Agreement, matches: float, all_records: int, m_exact: float) -> float:
    """u of exact agreement among non-matches: the agreeing pairs minus the matches expected among them
    (``matches`` matching pairs overall, of which the share where both records hold a value, times
    m_exact), over the non-matching pairs."""
    both = matches * (agreement.records / max(all_records, 1)) ** 2
    corrected = (agreement.agreeing_pairs - both * m_exact) / max(agreement.pairs - both, 1.0)
    return float(np.clip(max(corrected, agreement.share * UNCORRECTED_FLOOR), EPSILON * EPSILON, 1 - EPSILON))


def with_exact_u(u: Mapping[str, Sequence[float]], exact: Mapping[str, float]) -> dict[str, list[float]]:
    """``u`` with the exact level (the last) of each field in ``exact`` set to that value and the other
    levels scaled to share the rest."""
    out: dict[str, list[float]] = {}
    for name, shares in u.items():
        if name not in exact:
            out[name] = list(shares)
            continue
        others = np.asarray(shares[:-1], dtype=float)
        scaled = others / others.sum() * (1.0 - exact[name]) if others.sum() > 0 else others
        out[name] = [*map(float, scaled), float(exact[name])]
    return out


def _m_start(n_levels: int) -> np.ndarray:
    start = np.linspace(0.05, 1.0, n_levels) ** 3  # agreement likely among matches
    return start / start.sum()


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


@dataclass
class EmResult:
    """m per field, the share of matches, the iterations run and, per field, the posterior-weighted number
    of pairs at each level (how much evidence each m rests on)."""

    m: dict[str, list[float]]
    prior: float
    iterations: int
    level_mass: dict[str, list[float]]
    u: dict[str, list[float]]


def expectation_maximisation(patterns: np.ndarray, counts: np.ndarray, u: Mapping[str, Sequence[float]],
                             fields: Sequence[str], levels: Mapping[str, Sequence[str]], iterations: int = 30,
                             prior: float = 0.2, m_start: Mapping[str, Sequence[float]] | None = None,
                             update_m: bool = True, tolerance: float = 1e-8, pseudo_count: float = 1.0,
                             free_levels: Mapping[str, np.ndarray] | None = None, update_u: bool = False,
                             u_shrinkage: float = 0.0, update_prior: bool = True) -> EmResult:
    """m per field and the prior, with u fixed (``update_m=False`` fits the prior only). ``pseudo_count``
    pairs per level keep every m above zero (0 gives the plain maximum-likelihood estimate).
    ``free_levels`` (field -> boolean mask): only those levels' m are re-estimated, the others keep their
    share (scaled so the field's m still sums to 1); fields not named stay fixed. ``update_u``: the
    non-matches' level shares are estimated too (starting from ``u``), for pairs of a training block, whose
    non-matches need not look like random pairs (people of one household share an address and a surname);
    with ``u_shrinkage`` > 0 the estimate is pulled towards the given ``u`` by that many pseudo-pairs (a
    block with few non-matches keeps about the population's u). ``update_prior=False`` keeps the share of
    matches at ``prior`` (known from elsewhere) and estimates m given it.
    ``patterns`` holds one column per field in ``fields``."""
    m: dict[str, np.ndarray] = {}
    for name in fields:
        if m_start and name in m_start:
            m[name] = np.asarray(m_start[name], dtype=float)
        else:
            m[name] = _m_start(len(levels[name]))
    u_arr = {name: np.asarray(u[name], dtype=float) for name in fields}
    u_given = dict(u_arr)
    columns = {name: patterns[:, j] for j, name in enumerate(fields)}
    seen = {name: columns[name] != NULL_LEVEL for name in fields}
    mass = {name: np.zeros(len(m[name])) for name in fields}
    done = 0
    for done in range(1, iterations + 1):  # noqa: B007 - the count is returned
        log_m = np.zeros(len(counts))
        log_u = np.zeros(len(counts))
        for name in fields:
            observed = seen[name]
            log_m[observed] += np.log(m[name][columns[name][observed]])
            log_u[observed] += np.log(u_arr[name][columns[name][observed]])
        match = prior * np.exp(log_m)
        posterior = match / (match + (1 - prior) * np.exp(log_u))
        weights = posterior * counts
        if update_prior:
            new_prior = float(np.clip(weights.sum() / counts.sum(), EPSILON, 1 - EPSILON))
            change = abs(new_prior - prior)
            prior = new_prior
        else:
            change = 0.0
        for name in fields:
            observed = seen[name]
            mass[name] = np.bincount(columns[name][observed], weights=weights[observed],
                                     minlength=len(m[name])).astype(float)
        if update_u:
            unmatched = (1 - posterior) * counts
            for name in fields:
                observed = seen[name]
                unmatched_at = np.bincount(columns[name][observed], weights=unmatched[observed],
                                           minlength=len(m[name])).astype(float)
                totals = unmatched_at + (u_shrinkage * u_given[name] if u_shrinkage > 0 else pseudo_count)
                new_u = np.maximum(totals, EPSILON) / np.maximum(totals, EPSILON).sum()
                change = max(change, float(np.abs(new_u - u_arr[name]).max()))
                u_arr[name] = new_u
        if update_m:
            for name in fields:
                if free_levels is not None and name not in free_levels:
                    continue
                # one pseudo-pair per level keeps every m > 0, so no single disagreement is infinitely damning
                totals = np.maximum(mass[name] + pseudo_count, EPSILON)
                new_m = totals / totals.sum()
                if free_levels is not None:
                    free = free_levels[name]
                    kept = m[name][~free]
                    new_m = np.where(free, new_m, 0.0)
                    new_m[~free] = kept / kept.sum() * (1.0 - new_m[free].sum()) if kept.sum() > 0 else 0.0
                change = max(change, float(np.abs(new_m - m[name]).max()))
                m[name] = new_m
        if change < tolerance:
            break
    return EmResult({name: list(map(float, m[name])) for name in fields}, prior, done,
                    {name: list(map(float, mass[name])) for name in fields},
                    {name: list(map(float, u_arr[name])) for name in fields})


@dataclass(frozen=True)
class TrainingBlock:
    """A blocking rule as an EM training block: ``rows`` selects its pairs among the pattern rows,
    ``fixed`` are the comparisons on its own fields (left out of its EM); ``implied_share``: the share of
    matches among its pairs that agreement on its fields implies (``implied_match_share``), used where the
    block leaves too few fields for EM to tell matches from non-matches."""

    name: str
    rows: np.ndarray
    fixed: frozenset[str]
    implied_share: float | None = None


def implied_match_share(block_pairs: float, all_pairs: float, field_shares: Sequence[float]) -> float:
    """The share of matches among a block's ``block_pairs`` pairs implied by agreement on its fields: the
    non-matches expected to agree on all of them by chance are ``all_pairs`` times the product of each field's
    share of agreeing record pairs (``field_shares``, matches included, so the estimate errs towards
    non-matches), the rest are matches."""
    expected_nonmatches = all_pairs * float(np.prod(field_shares))
    return float(np.clip(1.0 - expected_nonmatches / max(block_pairs, 1.0), EPSILON, 1 - EPSILON))


MIN_LEVEL_PAIRS = 5
"""pairs at a level the training blocks must hold for its m to count as trained"""
MIN_FREE_FIELDS = 3
"""fields a training block must leave free (observed in its pairs) for EM to estimate its share of matches:
a two-class mixture over fewer indicators is not identifiable (any share in a range fits equally well, and EM
stops where the start puts it, typically sending every disagreement to the non-matches)"""
U_SHRINKAGE = 5000.0
"""pseudo-pairs pulling a training block's u towards the population's: a block whose non-matches are many (an
address block's households: tens of thousands of pairs) keeps its own u, one whose non-matches are a few hundred
(an identifier's block, nearly all matches) keeps about the population's. EM's non-match class in such a block is
mostly matches with several typos (the fields' independence does not hold for them), and u estimated from it
would weigh agreement given the block far too little (docs/identity.md, "Estimation")"""


@dataclass
class Training:
    """What the training blocks estimate: m per field, the share of matches among all candidates, the
    iterations run, field -> the blocks that estimated its m, and per block the non-matches' u of the
    fields it does not fix (u given agreement on the block's fields)."""

    m: dict[str, list[float]]
    share: float
    iterations: int
    trained_by: dict[str, list[str]]
    conditional_u: dict[str, dict[str, list[float]]]


def train_sessions(patterns: np.ndarray, counts: np.ndarray, u: Mapping[str, Sequence[float]],
                   fields: Sequence[str], levels: Mapping[str, Sequence[str]], blocks: Sequence[TrainingBlock],
                   iterations: int) -> Training:
    """Splink-style training on the candidates' level patterns (one column per field in ``fields``, with
    ``counts`` pairs per row). For each training block, EM runs on its pairs, estimating m for every field
    the block does not fix, and the u of its non-matches (which agree on the block's fields, and on what
    goes with them: a household shares an address and often a surname and a phone); a block that leaves
    fewer than ``MIN_FREE_FIELDS`` fields observed takes its share of matches from its ``implied_share`` and
    keeps u (EM cannot estimate both from so little). m is averaged over the
    blocks that estimated it (a field no block estimates keeps the start value). Levels that the blocks
    hardly contain at all (fewer than ``MIN_LEVEL_PAIRS`` pairs, matching or not: e.g. swapped names,
    which no name-fixing block can contain) are then estimated by EM on all candidates with every trained m
    fixed; last, the share of matches among all pairs is fitted with m fixed."""
    estimates: dict[str, list[np.ndarray]] = {name: [] for name in fields}
    trained_by: dict[str, list[str]] = {name: [] for name in fields}
    seen_pairs = {name: np.zeros(len(levels[name])) for name in fields}
    conditional_u: dict[str, dict[str, list[float]]] = {}
    total_iterations = 0
    for block in blocks:
        others = [f for f in fields if f not in block.fixed]
        if not others or counts[block.rows].sum() == 0:
            continue
        columns = [list(fields).index(f) for f in others]
        session = patterns[block.rows][:, columns]
        observed_fields = int(((session != NULL_LEVEL) & (counts[block.rows] > 0)[:, None]).any(axis=0).sum())
        if observed_fields < MIN_FREE_FIELDS and block.implied_share is not None:
            # too few fields to separate the classes: the share its own fields imply, m given it and u
            result = expectation_maximisation(session, counts[block.rows], u, others, levels, iterations,
                                              prior=block.implied_share, update_prior=False)
        else:
            result = expectation_maximisation(session, counts[block.rows], u, others, levels, iterations,
                                              prior=0.5, update_u=True, u_shrinkage=U_SHRINKAGE)
        total_iterations += result.iterations
        conditional_u[block.name] = {}
        for name in others:
            column = session[:, others.index(name)]
            observed = column != NULL_LEVEL
            if counts[block.rows][observed].sum() > 0:  # a field that is null throughout says nothing here
                estimates[name].append(np.asarray(result.m[name]))
                trained_by[name].append(block.name)
                seen_pairs[name] += np.bincount(column[observed], weights=counts[block.rows][observed],
                                                minlength=len(levels[name]))
                conditional_u[block.name][name] = result.u[name]
    m_final: dict[str, list[float]] = {}
    for name in fields:
        mean = np.mean(estimates[name], axis=0) if estimates[name] else _m_start(len(levels[name]))
        m_final[name] = list(map(float, mean / mean.sum()))
    untrained = {name: seen_pairs[name] < MIN_LEVEL_PAIRS for name in fields if trained_by[name]}
    untrained = {name: free for name, free in untrained.items() if free.any() and not free.all()}
    if untrained:
        result = expectation_maximisation(patterns, counts, u, fields, levels, iterations, prior=0.1,
                                          m_start=m_final, free_levels=untrained, update_u=True)
        total_iterations += result.iterations
        m_final = result.m
    fitted = expectation_maximisation(patterns, counts, u, fields, levels, iterations, prior=0.1,
                                      m_start=m_final, update_m=False, update_u=True)
    return Training(m_final, fitted.prior, total_iterations + fitted.iterations, trained_by, conditional_u)


def random_match_prior(candidate_share: float, candidates: float, records: int) -> float:
    """The probability that two random records match: the expected matches among the candidates
    (``candidate_share`` of them) over all ``records * (records - 1) / 2`` pairs."""
    all_pairs = max(records * (records - 1) / 2, 1.0)
    return float(np.clip(candidate_share * candidates / all_pairs, EPSILON * EPSILON, 1 - EPSILON))


def term_frequencies(records: DataFrame, tf_fields: Sequence[str], total: int | None = None) -> dict[str, DataFrame]:
    """Per term-frequency field: (value, tf) with tf = share of records holding the value (``total``: the
    number of records, when the caller knows it)."""
    total = records.count() if total is None else total
    return {name: records.where(F.col(name).isNotNull()).groupBy(F.col(name).alias("tf_value"))
            .agg((F.count("*") / F.lit(total)).alias(f"tf_{name}")) for name in tf_fields}


def term_column(name: str) -> str:
    """The column holding the left record's value of a term-frequency field, looked up by ``score``."""
    return f"term_{name}"


def weight_column(name: str) -> str:
    """The column ``score`` writes a field's weight into."""
    return f"w_{name}"


def _weight_table(model: FsModel, name: str) -> list[float]:
    """The field's weight for every (anchor, level), flattened: row 0 without an anchor, row i + 1 given
    ``model.anchors[i]``; column 0 the null level (weight 0), column l + 1 level l."""
    rows = [None, *model.anchors]
    return [w for anchor in rows for w in (0.0, *model.weights(name, anchor))]


def score(compared: DataFrame, model: FsModel, tf_tables: Mapping[str, DataFrame] | None = None,
          tf_max_boost: float = TF_CLAMP, tf_max_penalty: float = TF_CLAMP) -> DataFrame:
    """Adds ``w_<field>`` (the field's weight), ``match_weight`` and ``match_probability``; reads
    ``lvl_<field>``, ``anchor`` (index into ``model.anchors`` of the rule the pair is scored given, null
    for none) and, per term-frequency field, ``term_<field>`` (the left record's value). A field's weight
    is one lookup in a literal table of its weight per anchor and level (``_weight_table``), plus the
    term-frequency adjustment, clamped to [-tf_max_penalty, +tf_max_boost] bits."""
    scored = compared
    row = F.coalesce(F.col("anchor") + 1, F.lit(0))
    for name in model.fields:
        level = F.col(f"lvl_{name}")
        # one SQL array of double literals (``1.5D``): a lit per weight was a JVM round trip each
        table = F.expr(f"array({', '.join(f'{float(w)!r}D' for w in _weight_table(model, name))})")
        width = len(model.levels[name]) + 1
        contribution = F.element_at(table, row * width + level + 2)  # 1-based; the null level is -1
        if tf_tables and name in tf_tables:
            exact = len(model.levels[name]) - 1
            scored = scored.join(F.broadcast(tf_tables[name]), F.col(term_column(name)) == F.col("tf_value"), "left"
                                 ).drop("tf_value")
            base = model.tf_base.get(name, model.u[name][exact])
            adjustment = F.greatest(F.lit(-tf_max_penalty), F.least(F.lit(tf_max_boost), F.log2(
                F.lit(base) / F.col(f"tf_{name}"))))
            contribution = contribution + F.when((level == exact) & F.col(f"tf_{name}").isNotNull(), adjustment
                                                 ).otherwise(F.lit(0.0))
        scored = scored.withColumn(weight_column(name), contribution)
    total = F.lit(math.log2(model.prior / (1 - model.prior)))
    for name in model.fields:
        total = total + F.col(weight_column(name))
    scored = scored.drop(*[f"tf_{n}" for n in (tf_tables or {})]).withColumn("match_weight", total)
    probability = F.lit(1.0) / (F.lit(1.0) + F.pow(F.lit(2.0), -F.col("match_weight")))
    return scored.withColumn("match_probability", probability)


def field_weights(model: FsModel) -> Column:
    """Map field -> its weight (rounded), from the ``w_<field>`` columns ``score`` adds."""
    return F.create_map(*chain.from_iterable((F.lit(name), F.round(weight_column(name), 4)) for name in model.fields))
