"""Field comparison levels for candidate pairs (DESIGN §4).

``attach_records(pairs, records)``
    in:  (record_a, record_b, ...) and the records;  out: the pairs with struct columns ``l`` and ``r``
    holding both records, so rules are plain SQL over ``l.<column>`` and ``r.<column>``.
``compare(pairs, comparisons, settings)``
    out: adds one integer column ``lvl_<field>`` per comparison: -1 when either side is null (the field
    weighs nothing), 0 for "different", then increasing levels up to exact agreement (see LEVELS).
Jaro-Winkler similarity comes from rapidfuzz in a vectorised pandas UDF (``cpdist``: element-wise over a
whole Arrow batch); edit distance and date parts are Spark built-ins.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType

from cdp_spark.config import ComparisonSettings, MatchingSettings

LEVELS: dict[str, list[str]] = {
    "name": ["different", "jaro_winkler_low", "jaro_winkler_high", "nickname", "exact"],
    "email": ["different", "near", "exact"],
    "phone": ["different", "same_last_7", "exact"],
    "date": ["different", "near", "exact"],
    "postcode": ["different", "same_area", "exact"],
    "exact": ["different", "exact"],
}
NULL_LEVEL = -1


@F.pandas_udf(DoubleType())  # type: ignore[call-overload]
def jaro_winkler(left: pd.Series, right: pd.Series) -> pd.Series:
    """Element-wise Jaro-Winkler similarity in [0, 1]; NaN where either side is null."""
    from rapidfuzz import process
    from rapidfuzz.distance import JaroWinkler

    mask = left.notna() & right.notna()
    out = np.full(len(left), np.nan)
    if mask.any():
        out[mask.to_numpy()] = process.cpdist(left[mask].tolist(), right[mask].tolist(),
                                              scorer=JaroWinkler.normalized_similarity, workers=1)
    return pd.Series(out)


def attach_records(pairs: DataFrame, records: DataFrame, broadcast: bool = False) -> DataFrame:
    """``broadcast``: ship the records to every task instead of shuffling the pairs twice (for record
    sets that fit in memory)."""
    packed = records.select(F.col("record_id").alias("_id"), F.struct(*[F.col(c) for c in records.columns]).alias("v"))
    if broadcast:
        packed = F.broadcast(packed)
    return (pairs.join(packed.withColumnRenamed("v", "l"), F.col("record_a") == F.col("_id")).drop("_id")
            .join(packed.withColumnRenamed("v", "r"), F.col("record_b") == F.col("_id")).drop("_id"))


def _level(c: ComparisonSettings, settings: MatchingSettings) -> Column:
    left, right = F.col(f"l.{c.field}"), F.col(f"r.{c.field}")
    either_null = left.isNull() | right.isNull()
    exact_level = len(LEVELS[c.kind]) - 1
    level = F.when(either_null, F.lit(NULL_LEVEL)).when(left == right, F.lit(exact_level))
    if c.kind == "name":
        undecided = left != right
        if c.canonical:
            same_canonical = F.col(f"l.{c.canonical}") == F.col(f"r.{c.canonical}")
            level = level.when(same_canonical, F.lit(3))
            undecided = undecided & ~F.coalesce(same_canonical, F.lit(False))
        # only pairs not settled by equality go to Python (the others cross as nulls)
        similarity = jaro_winkler(F.when(undecided, left.cast("string")), F.when(undecided, right.cast("string")))
        level = (level.when(similarity >= settings.jaro_winkler_high, F.lit(2))
                 .when(similarity >= settings.jaro_winkler_low, F.lit(1)))
    elif c.kind == "email":
        same_local = F.substring_index(left, "@", 1) == F.substring_index(right, "@", 1)
        # bounded edit distance (-1 above 1), only for lengths that can be one edit apart
        one_edit = (F.abs(F.length(left) - F.length(right)) <= 1) & (F.levenshtein(left, right, 1) >= 0)
        level = level.when(same_local | one_edit, F.lit(1))
    elif c.kind == "phone":
        level = level.when(F.substring(left, -7, 7) == F.substring(right, -7, 7), F.lit(1))
    elif c.kind == "date":
        parts_equal = ((F.year(left) == F.year(right)).cast("int") + (F.month(left) == F.month(right)).cast("int")
                       + (F.dayofmonth(left) == F.dayofmonth(right)).cast("int"))
        swapped = ((F.year(left) == F.year(right)) & (F.month(left) == F.dayofmonth(right))
                   & (F.dayofmonth(left) == F.month(right)))
        level = level.when((parts_equal >= 2) | swapped, F.lit(1))
    elif c.kind == "postcode":
        level = level.when(F.substring(left, 1, 2) == F.substring(right, 1, 2), F.lit(1))
    return level.otherwise(F.lit(0))


def compare(pairs: DataFrame, comparisons: Sequence[ComparisonSettings], settings: MatchingSettings) -> DataFrame:
    return pairs.select("*", *[_level(c, settings).alias(f"lvl_{c.field}") for c in comparisons])
