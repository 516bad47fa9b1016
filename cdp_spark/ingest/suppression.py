"""Rows of erased persons, recognised on the way in (docs/design.md §7): ``meta.suppression`` holds keyed
hashes (HMAC-SHA256) of their record ids, normalised e-mails and E.164 phones; a row carrying any of them
is dropped before bronze and counted as suppressed."""

from __future__ import annotations

from collections.abc import Sequence
from functools import reduce

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from cdp_spark.config import IdentitySettings, JdbcSourceSettings, SourceSettings
from cdp_spark.identity.normalise import apply_email_rules, email_norm, phone_e164_udf
from cdp_spark.identity.records import record_id
from cdp_spark.privacy.hashing import hmac_sha256


def suppression_flag(rows: DataFrame, source: SourceSettings | JdbcSourceSettings, hashes: Sequence[str],
                     hash_key: bytes, identity: IdentitySettings) -> Column:
    """True on rows of ``source`` whose record id, normalised e-mail (``email``) or phone (``phone``, with
    ``country`` when present) hashes with ``hash_key`` to one of ``hashes``; the normalisation is silver's
    (``identity.email_rules``, ``identity.default_region``)."""
    digest = hmac_sha256(hash_key)
    wanted = list(hashes)
    tests = [digest(record_id(source.system, source.source_key)).isin(wanted)]  # type: ignore[operator]
    if "email" in rows.columns:
        email = apply_email_rules(email_norm(F.col("email")), identity.email_rules)
        tests.append(digest(email).isin(wanted))  # type: ignore[operator]
    if "phone" in rows.columns:
        country = F.col("country") if "country" in rows.columns else F.lit(None).cast("string")
        phone = phone_e164_udf(identity.default_region)(F.col("phone"), country)
        tests.append(digest(phone).isin(wanted))  # type: ignore[operator]
    return F.coalesce(reduce(lambda a, b: a | b, tests), F.lit(False))
