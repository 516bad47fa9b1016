"""Normalisation transforms for silver tables (Spark built-ins only).

``normalise_person(df, country_code)``
    in:  first_name, last_name, email, phone (+ any other columns)
    out: the same, names cleaned, plus ``email_norm``, ``phone_e164``, ``first_name_key``, ``last_name_key``
``latest_per_key(df, keys, order_by)``
    keeps the most recent row per source key.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
ACCENTED = "áàâäãåéèêëíìîïóòôöõúùûüñçÁÀÂÄÃÅÉÈÊËÍÌÎÏÓÒÔÖÕÚÙÛÜÑÇ"
PLAIN = "aaaaaaeeeeiiiiooooouuuuncAAAAAAEEEEIIIIOOOOOUUUUNC"


def email_norm(email: Column) -> Column:
    """Lower-cased, trimmed e-mail; null when it is not shaped like an address."""
    cleaned = F.lower(F.trim(email))
    return F.when(cleaned.rlike(EMAIL_PATTERN), cleaned)


def phone_e164(phone: Column, country_code: str) -> Column:
    """E.164 (``+<country><number>``) from common national and international formats; null if it cannot
    be read. International prefixes ``+`` and ``00`` are kept; a bare national number gets the default
    country code. (Issue 4 moves this to libphonenumber with per-region rules.)"""
    raw = F.trim(phone)
    digits = F.regexp_replace(raw, r"[^0-9]", "")
    international = raw.startswith("+") | raw.startswith("00")
    intl_digits = F.when(raw.startswith("00"), F.substring(digits, 3, 32)).otherwise(digits)
    national = F.regexp_replace(digits, r"^0", "")
    candidate = (F.when(international, F.concat(F.lit("+"), intl_digits))
                 .when(digits.startswith(country_code) & (F.length(digits) == len(country_code) + 9),
                       F.concat(F.lit("+"), digits))
                 .otherwise(F.concat(F.lit(f"+{country_code}"), national)))
    return F.when(candidate.rlike(r"^\+[1-9][0-9]{7,14}$"), candidate)


def clean_name(name: Column) -> Column:
    """Trimmed, single-spaced, capitalised name (accents kept for display)."""
    squeezed = F.regexp_replace(F.trim(name), r"\s+", " ")
    return F.when(squeezed != "", F.initcap(F.lower(squeezed)))


def name_key(name: Column) -> Column:
    """Lower-case, accent-free comparison key of a name."""
    return F.translate(F.lower(F.trim(name)), ACCENTED.lower() + ACCENTED, PLAIN.lower() + PLAIN)


def normalise_person(df: DataFrame, country_code: str) -> DataFrame:
    out = df
    for column in ("first_name", "last_name"):
        if column in df.columns:
            out = out.withColumn(column, clean_name(F.col(column))).withColumn(
                f"{column}_key", name_key(F.col(column)))
    if "email" in df.columns:
        out = out.withColumn("email_norm", email_norm(F.col("email")))
    if "phone" in df.columns:
        out = out.withColumn("phone_e164", phone_e164(F.col("phone"), country_code))
    if "country" in df.columns:
        out = out.withColumn("country", F.upper(F.trim(F.col("country"))))
    for column in ("postcode", "city"):
        if column in df.columns:
            out = out.withColumn(column, F.when(F.trim(F.col(column)) != "", F.trim(F.col(column))))
    return out


def latest_per_key(df: DataFrame, keys: Sequence[str], order_by: Sequence[Column]) -> DataFrame:
    """One row per key: the first by ``order_by`` (put the most recent first)."""
    window = Window.partitionBy(*[F.col(k) for k in keys]).orderBy(*order_by)
    return df.withColumn("_rank", F.row_number().over(window)).where("_rank = 1").drop("_rank")
