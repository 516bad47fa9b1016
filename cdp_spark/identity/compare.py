"""Field comparison levels for candidate pairs (docs/design.md §4, docs/identity.md).

``attach_records(pairs, records)``
    in:  (record_a, record_b, ...) and the records;  out: the pairs with struct columns ``l`` and ``r``
    holding both records, so rules are plain SQL over ``l.<column>`` and ``r.<column>``.
``level_names(comparison)``
    the comparison's levels from worst to best: index 0 is ``different``, the last is ``exact``; the index
    is what ``lvl_<field>`` holds and what the model's m and u are indexed by.
``compare(pairs, comparisons)``
    out: adds one integer column ``lvl_<field>`` per comparison: -1 when either side is null (the field
    weighs nothing), else the index of the best level whose condition holds.

Jaro-Winkler and Damerau-Levenshtein come from rapidfuzz in one vectorised pandas UDF for all the
comparisons that need them (``cpdist``: element-wise over a whole Arrow batch), called only for pairs that
are not already equal; edit distance on dates, e-mails and postcodes and date arithmetic are Spark built-ins.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from cdp_spark.config import ComparisonSettings

NULL_LEVEL = -1
DEFAULT_JARO_WINKLER = {"name": [0.92, 0.85, 0.7], "text": [0.92, 0.8]}
DEFAULT_DAMERAU_LEVENSHTEIN = {"name": [1]}
DEFAULT_TOLERANCE = {"date": [365.0], "number": []}
SIMILARITY = "_similarity"


@dataclass(frozen=True)
class Level:
    """One comparison level: its name and the condition over ``l``/``r`` (and the similarity struct)."""

    name: str
    condition: Callable[[], Column]


def jaro_winkler_bands(c: ComparisonSettings) -> list[float]:
    if c.jaro_winkler is not None:
        return list(c.jaro_winkler)
    return DEFAULT_JARO_WINKLER.get(c.kind, []) if c.kind in ("name", "text") else []


def damerau_levenshtein_bands(c: ComparisonSettings) -> list[int]:
    if c.damerau_levenshtein is not None:
        return list(c.damerau_levenshtein)
    return DEFAULT_DAMERAU_LEVENSHTEIN.get(c.kind, [])


def tolerance_bands(c: ComparisonSettings) -> list[float]:
    return list(c.tolerance) if c.tolerance is not None else DEFAULT_TOLERANCE.get(c.kind, [])


def _fmt(value: float) -> str:
    return f"{value:g}"


def _as_date_string(column: Column, type_: T.DataType | None) -> Column:
    """yyyyMMdd text of a date, timestamp or already-formatted string column."""
    if isinstance(type_, T.DateType | T.TimestampType):
        return F.date_format(column, "yyyyMMdd")
    return column.cast("string")


def one_typo(left: Column, right: Column) -> Column:
    """Damerau-Levenshtein distance <= 1 in Spark's own functions: one character inserted, dropped or wrong
    (Levenshtein distance <= 1), or two neighbours swapped with everything else equal (a swap is two edits
    apart by Levenshtein). One bounded Levenshtein serves both tests; null when a side is null."""
    distance = F.levenshtein(left, right, 2)  # -1 when further than 2
    at = F.array_position(F.zip_with(F.split(left, ""), F.split(right, ""), lambda a, b: a == b), False)
    # only pairs two edits apart split into characters (a CASE, so Spark does not evaluate the split for
    # every pair as a common subexpression)
    swapped = ((at > 0) & (left.substr(at, F.lit(1)) == right.substr(at + 1, F.lit(1)))
               & (left.substr(at + 1, F.lit(1)) == right.substr(at, F.lit(1)))
               & (left.substr(at + 2, F.length(left)) == right.substr(at + 2, F.length(right))))
    return (F.when(distance.isin(0, 1), F.lit(True))
            .when((distance == 2) & (F.length(left) == F.length(right)), swapped)
            .when(distance.isNotNull(), F.lit(False)))


def full_swap_fields(comparisons: Sequence[ComparisonSettings]) -> frozenset[str]:
    """The name comparisons that swap with one listed before them which swaps back: their swapped level is
    ``swapped_both_ways`` (both names crossed), so that one crosswise agreement (a given name equal to the
    other record's surname) counts once, at the comparison listed first, and a full swap twice, as two
    names agreeing (docs/identity.md, "Comparisons and levels")."""
    partners: dict[str, str] = {}
    both_ways = set()
    for c in comparisons:
        if c.swap_with and partners.get(c.swap_with) == c.field:
            both_ways.add(c.field)
        if c.swap_with:
            partners[c.field] = c.swap_with
    return frozenset(both_ways)


def _levels(c: ComparisonSettings, types: dict[str, T.DataType], both_ways: bool = False) -> list[Level]:
    """The comparison's levels, best first (``exact`` first, ``different`` not listed); ``both_ways``: its
    swapped level needs both names crossed (``full_swap_fields``)."""
    left, right = F.col(f"l.{c.field}"), F.col(f"r.{c.field}")
    similarity = F.col(SIMILARITY)
    levels = [Level("exact", lambda: left == right)]
    if c.kind == "name":
        if c.canonical:
            canonical = c.canonical
            levels.append(Level("nickname", lambda: F.col(f"l.{canonical}") == F.col(f"r.{canonical}")))
        if c.swap_with:
            other = c.swap_with
            crossed_l, crossed_r = left == F.col(f"r.{other}"), right == F.col(f"l.{other}")
            levels.append(Level("swapped_both_ways", lambda: crossed_l & crossed_r) if both_ways
                          else Level("swapped", lambda: crossed_l | crossed_r))
    if c.kind in ("name", "text"):
        for distance in damerau_levenshtein_bands(c):
            levels.append(Level(f"damerau_levenshtein<={distance}",
                                lambda distance=distance: similarity[f"dl_{c.field}"] <= distance))  # type: ignore[misc]
        if c.kind == "name":
            def contained() -> Column:
                words_l, words_r = F.split(left, " "), F.split(right, " ")
                # word counts can differ only when a side has a space, and a side's words can be among the
                # other's only when its first word occurs in the other's text: most pairs never split (compound
                # surnames put a space in most pairs)
                spaced = (F.instr(left, " ") > 0) | (F.instr(right, " ") > 0)
                first_word_shared = ((F.position(F.substring_index(left, " ", 1), right) > 0)
                                     | (F.position(F.substring_index(right, " ", 1), left) > 0))
                return spaced & first_word_shared & (F.size(words_l) != F.size(words_r)) & (
                    (F.size(F.array_except(words_l, words_r)) == 0) | (F.size(F.array_except(words_r, words_l)) == 0))
            levels.append(Level("words_contained", contained))
        for similar in jaro_winkler_bands(c):
            levels.append(Level(f"jaro_winkler>={_fmt(similar)}",
                                lambda similar=similar: similarity[f"jw_{c.field}"] >= similar))  # type: ignore[misc]
    elif c.kind == "email":
        def near() -> Column:
            same_local = F.substring_index(left, "@", 1) == F.substring_index(right, "@", 1)
            return same_local | one_typo(left, right)
        levels.append(Level("same_local_part_or_one_typo", near))
    elif c.kind == "phone":
        levels.append(Level("same_last_7", lambda: F.substring(left, -7, 7) == F.substring(right, -7, 7)))
        levels.append(Level("one_typo", lambda: one_typo(left, right)))
    elif c.kind == "date":
        type_ = types.get(c.field)
        ls, rs = _as_date_string(left, type_), _as_date_string(right, type_)

        def part(text: Column, start: int, length: int) -> Column:
            return F.substring(text, start, length)

        levels.append(Level("one_typo", lambda: one_typo(ls, rs)))
        levels.append(Level("day_month_swapped", lambda: (part(ls, 1, 4) == part(rs, 1, 4))
                            & (part(ls, 5, 2) == part(rs, 7, 2)) & (part(ls, 7, 2) == part(rs, 5, 2))))
        levels.append(Level("two_of_three_parts", lambda: (
            (part(ls, 1, 4) == part(rs, 1, 4)).cast("int") + (part(ls, 5, 2) == part(rs, 5, 2)).cast("int")
            + (part(ls, 7, 2) == part(rs, 7, 2)).cast("int")) >= 2))
        for days in tolerance_bands(c):
            levels.append(Level(f"within_{_fmt(days)}_days", lambda days=days: F.abs(F.datediff(  # type: ignore[misc]
                F.to_date(ls, "yyyyMMdd"), F.to_date(rs, "yyyyMMdd"))) <= days))
    elif c.kind == "number":
        for tolerance in tolerance_bands(c):
            levels.append(Level(f"within_{_fmt(tolerance)}", lambda tolerance=tolerance: F.abs(  # type: ignore[misc]
                left.cast("double") - right.cast("double")) <= tolerance))
    elif c.kind == "postcode":
        levels.append(Level("one_typo", lambda: one_typo(left.cast("string"), right.cast("string"))))
        levels.append(Level("same_area", lambda: F.substring(left, 1, 2) == F.substring(right, 1, 2)))
    elif c.kind == "address":
        return _address_levels(c)
    return levels


STREET_SIMILAR = 0.9


def _address_levels(c: ComparisonSettings) -> list[Level]:
    """Levels of the address kind over its configured parts, best first; a level needs its parts."""
    parts = c.parts

    def eq(part: str) -> Column:
        return F.coalesce(F.col(f"l.{parts[part]}") == F.col(f"r.{parts[part]}"), F.lit(False))  # type: ignore[index]

    def street_similar() -> Column:
        return eq("street") | F.coalesce(F.col(SIMILARITY)[f"jw_{c.field}"] >= STREET_SIMILAR, F.lit(False))

    def both(*conditions: Callable[[], Column]) -> Callable[[], Column]:
        def condition() -> Column:
            out = conditions[0]()
            for other in conditions[1:]:
                out = out & other()
            return out
        return condition

    def postcode_typo() -> Column:
        left, right = F.col(f"l.{parts['postcode']}"), F.col(f"r.{parts['postcode']}")
        return F.coalesce(one_typo(left.cast("string"), right.cast("string")), F.lit(False))

    candidates: list[tuple[str, tuple[str, ...], Callable[[], Column]]] = [
        ("exact", tuple(parts), both(*[lambda part=part: eq(part) for part in parts])),
        ("street_and_number", ("street", "number"), both(street_similar, lambda: eq("number"))),
        ("street_and_postcode", ("street", "postcode"), both(street_similar, lambda: eq("postcode"))),
        ("postcode_and_number", ("postcode", "number"), both(lambda: eq("postcode"), lambda: eq("number"))),
        ("postcode", ("postcode",), lambda: eq("postcode")),
        ("postcode_one_typo", ("postcode",), postcode_typo),
        ("city", ("city",), lambda: eq("city")),
    ]
    return [Level(name, condition) for name, needs, condition in candidates if set(needs) <= set(parts)]


def _null(c: ComparisonSettings) -> Column:
    """Nothing to compare: a side is null (for an address: no part has both sides)."""
    if c.kind == "address":
        comparable = F.lit(False)
        for column in c.parts.values():
            comparable = comparable | (F.col(f"l.{column}").isNotNull() & F.col(f"r.{column}").isNotNull())
        return ~comparable
    return F.col(f"l.{c.field}").isNull() | F.col(f"r.{c.field}").isNull()


def exact_key(c: ComparisonSettings) -> Column:
    """Over one record's columns: the value two records share when the comparison's exact level holds
    (for an address, all its parts; null when a part is missing)."""
    if c.kind == "address":
        parts = [F.col(column).cast("string") for column in c.parts.values()]
        complete = F.lit(True)
        for part in parts:
            complete = complete & part.isNotNull()
        return F.when(complete, F.concat_ws("\u241f", *parts))
    return F.col(c.field)


def level_names(c: ComparisonSettings, both_ways: bool = False) -> list[str]:
    """The comparison's level names, worst (``different``, index 0) to best (``exact``); ``both_ways`` as
    ``full_swap_fields`` says."""
    return ["different", *[level.name for level in reversed(_levels(c, {}, both_ways))]]


@dataclass(frozen=True)
class Similarity:
    """A string similarity a comparison needs: output ``name``, ``metric``, the distance ``cutoff``."""

    name: str
    metric: str
    cutoff: int
    field: str
    """the column both sides are read from; similarities of one column share its strings"""

    def sides(self) -> tuple[Column, Column]:
        return F.col(f"l.{self.field}").cast("string"), F.col(f"r.{self.field}").cast("string")


def _similarities(comparisons: Sequence[ComparisonSettings]) -> list[Similarity]:
    """Every string similarity the comparisons need."""
    specs: list[Similarity] = []
    for c in comparisons:
        if c.kind == "address" and "street" in c.parts:
            specs.append(Similarity(f"jw_{c.field}", "jaro_winkler", 0, c.parts["street"]))
        if c.kind not in ("name", "text"):
            continue
        if jaro_winkler_bands(c):
            specs.append(Similarity(f"jw_{c.field}", "jaro_winkler", 0, c.field))
        if damerau_levenshtein_bands(c):
            specs.append(Similarity(f"dl_{c.field}", "damerau_levenshtein", max(damerau_levenshtein_bands(c)),
                                    c.field))
    return specs


def similarity_udf(specs: Sequence[Similarity]) -> Any:
    """A pandas UDF over a struct of ``<field>_l`` / ``<field>_r`` strings (each input once, however many
    similarities read it) returning a struct of the similarities (Jaro-Winkler in [0, 1]; Damerau-Levenshtein
    distance, cutoff + 1 when further), NaN where a side is null or the pair was not sent."""
    # plain tuples travel to the workers
    metrics = [(spec.name, spec.metric, spec.cutoff, spec.field) for spec in specs]
    schema = T.StructType([T.StructField(name, T.DoubleType()) for name, _, _, _ in metrics])

    @F.pandas_udf(schema)  # type: ignore[call-overload]
    def similarities(pairs: pd.DataFrame) -> pd.DataFrame:
        from rapidfuzz import process
        from rapidfuzz.distance import DamerauLevenshtein, JaroWinkler

        out = {}
        sides: dict[str, tuple[np.ndarray, list[str], list[str]]] = {}
        for name, metric, cutoff, column in metrics:
            if column not in sides:
                left, right = pairs[f"{column}_l"], pairs[f"{column}_r"]
                both = (left.notna() & right.notna()).to_numpy()
                sides[column] = (both, left[both].tolist(), right[both].tolist())
            mask, lefts, rights = sides[column]
            values = np.full(len(pairs), np.nan)
            if mask.any():
                if metric == "jaro_winkler":
                    values[mask] = process.cpdist(lefts, rights, scorer=JaroWinkler.normalized_similarity, workers=1)
                else:
                    values[mask] = process.cpdist(lefts, rights, scorer=DamerauLevenshtein.distance,
                                                  score_cutoff=cutoff, workers=1)
            out[name] = values
        return pd.DataFrame(out, columns=[name for name, _, _, _ in metrics])

    return similarities


def attach_records(pairs: DataFrame, records: DataFrame, broadcast: bool = False) -> DataFrame:
    """``broadcast``: ship the records to every task instead of shuffling the pairs twice (for record
    sets that fit in memory)."""
    packed = records.select(F.col("record_id").alias("_id"), F.struct(*[F.col(c) for c in records.columns]).alias("v"))
    if broadcast:
        packed = F.broadcast(packed)
    return (pairs.join(packed.withColumnRenamed("v", "l"), F.col("record_a") == F.col("_id")).drop("_id")
            .join(packed.withColumnRenamed("v", "r"), F.col("record_b") == F.col("_id")).drop("_id"))


def _level(c: ComparisonSettings, types: dict[str, T.DataType], both_ways: bool) -> Column:
    levels = _levels(c, types, both_ways)
    level = F.when(_null(c), F.lit(NULL_LEVEL))
    for index, spec in zip(range(len(levels), 0, -1), levels, strict=True):
        level = level.when(spec.condition(), F.lit(index))
    return level.otherwise(F.lit(0))


def compare(pairs: DataFrame, comparisons: Sequence[ComparisonSettings]) -> DataFrame:
    """Adds ``lvl_<field>`` per comparison to pairs carrying the ``l`` and ``r`` record structs."""
    record_type = pairs.schema["l"].dataType
    assert isinstance(record_type, T.StructType)
    types = {f.name: f.dataType for f in record_type.fields}
    specs = _similarities(comparisons)
    with_similarity = pairs
    if specs:
        inputs: list[Column] = []
        for spec in {spec.field: spec for spec in specs}.values():
            left, right = spec.sides()
            undecided = left != right  # equal and null pairs cross to Python as nulls
            reads = [other for other in specs if other.field == spec.field]
            if all(other.metric == "damerau_levenshtein" for other in reads):
                # lengths further apart than the cutoff are further by the distance too: not sent
                reach = max(other.cutoff for other in reads)
                undecided = undecided & (F.abs(F.length(left) - F.length(right)) <= reach)
            inputs += [F.when(undecided, left).alias(f"{spec.field}_l"),
                       F.when(undecided, right).alias(f"{spec.field}_r")]
        with_similarity = pairs.withColumn(SIMILARITY, similarity_udf(specs)(F.struct(*inputs)))
    both_ways = full_swap_fields(comparisons)
    out = with_similarity.select("*", *[_level(c, types, c.field in both_ways).alias(f"lvl_{c.field}")
                                        for c in comparisons])
    return out.drop(SIMILARITY) if specs else out
