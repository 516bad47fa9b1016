"""The id of a source record, ``<system>:<source key>``, where a key of several columns joins them with ``|``
(``gold.person_registry.record_id``; erasure, suppression and resolution build it the same way)."""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column
from pyspark.sql import functions as F


def source_key(key_columns: Sequence[str]) -> Column:
    """The source key as one string: the key columns cast to string, joined with ``|``."""
    return F.concat_ws("|", *[F.col(f"`{c}`").cast("string") for c in key_columns])


def record_id(system: str | Column, key_columns: Sequence[str]) -> Column:
    """``<system>:<source key>`` of each row; ``system`` is a name or a column holding it."""
    return F.concat(F.lit(system) if isinstance(system, str) else system, F.lit(":"), source_key(key_columns))
