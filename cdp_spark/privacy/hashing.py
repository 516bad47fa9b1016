"""Keyed hashes of personal identifiers (docs/design.md §7): HMAC-SHA256 of the normalised value, hex.

``add_hashes(df, columns, key)``
    in:  any frame with the source columns of ``columns`` ({source column: hash column})
    out: the same plus one hash column per entry (null where the source is null)

The key comes from an environment variable (``privacy.hash_key_env``), never from a file. It lives only
inside the vectorised UDF's closure: query plans show ``hmac_sha256(email_norm)``, never the key. The same
key gives the same hash in every table and export, so hashed values join across systems without the raw
e-mail or phone leaving the platform.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F


def keyed_hash(key: bytes, value: str) -> str:
    """HMAC-SHA256(key, value) as lowercase hex, on the driver (the suppression list, receipts)."""
    return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()


def hmac_sha256(key: bytes) -> object:
    """A pandas UDF computing HMAC-SHA256(key, value) as lowercase hex; null stays null."""

    def digest(values: pd.Series) -> pd.Series:
        return values.map(lambda v: None if v is None or v != v
                          else keyed_hash(key, str(v)))

    digest.__name__ = "hmac_sha256"
    return F.pandas_udf(digest, "string")  # type: ignore[call-overload]


def add_hashes(df: DataFrame, columns: Mapping[str, str], key: bytes) -> DataFrame:
    if not key:
        raise ValueError("the hashing key is empty")
    udf = hmac_sha256(key)
    hashed: dict[str, Column] = {target: udf(F.col(source)) for source, target in columns.items()  # type: ignore[operator]
                                 if source in df.columns}
    return df.withColumns(hashed) if hashed else df
