"""Normalisation transforms for silver tables.

``normalise_person(df, identity)``
    in:  the person attributes of docs/identity.md (first_name, last_name, email, phone, birth_date, gender,
         national_id, street, house_number, address_line2, postcode, city, region, country; any may be
         missing) + other columns
    out: the same, names cleaned, plus ``email_norm`` (provider rules applied), ``phone_e164``
         (libphonenumber, the record's country or the default region), ``first_name_key``,
         ``last_name_key`` (lower case, no accents or punctuation), ``given_name_canonical`` (nicknames
         resolved), ``birth_date_key`` (yyyyMMdd), ``gender_key`` (m / f / the value), ``national_id_key``
         (upper case letters and digits), ``street_key``, ``address_line2_key``, ``city_key``,
         ``region_key`` (as names), ``house_number_key``, ``postcode_key`` (no spaces or dashes); then
         the configured value transforms.
``latest_per_key(df, keys, order_by)``
    keeps the most recent row per source key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import chain

import pandas as pd
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import StringType

from cdp_spark.config import EmailRule, IdentitySettings, ValueTransform

EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
ACCENTED = "áàâäãåéèêëíìîïóòôöõúùûüñçÁÀÂÄÃÅÉÈÊËÍÌÎÏÓÒÔÖÕÚÙÛÜÑÇ"
PLAIN = "aaaaaaeeeeiiiiooooouuuuncAAAAAAEEEEIIIIOOOOOUUUUNC"


def email_norm(email: Column) -> Column:
    """Lower-cased, trimmed e-mail; null when it is not shaped like an address."""
    cleaned = F.lower(F.trim(email))
    return F.when(cleaned.rlike(EMAIL_PATTERN), cleaned)


def clean_name(name: Column) -> Column:
    """Trimmed, single-spaced, capitalised name (accents kept for display)."""
    squeezed = F.regexp_replace(F.trim(name), r"\s+", " ")
    return F.when(squeezed != "", F.initcap(F.lower(squeezed)))


def name_key(name: Column) -> Column:
    """Lower-case, accent-free comparison key of a name or place: punctuation becomes a space, spaces are
    single; null when nothing is left."""
    plain = F.translate(F.lower(name), ACCENTED.lower() + ACCENTED, PLAIN.lower() + PLAIN)
    spaced = F.trim(F.regexp_replace(F.regexp_replace(plain, r"[^\p{L}\p{N}]+", " "), r"\s+", " "))
    return F.when(spaced != "", spaced)


def code_key(value: Column) -> Column:
    """Upper-case letters and digits only (postcodes, house numbers, national ids); null when empty."""
    cleaned = F.upper(F.regexp_replace(value.cast("string"), r"[^\p{L}\p{N}]", ""))
    return F.when(cleaned != "", cleaned)


DATE_PATTERNS = ("yyyy-MM-dd", "yyyyMMdd", "dd/MM/yyyy", "yyyy/MM/dd", "dd.MM.yyyy", "dd-MM-yyyy")
GENDER_WORDS = {"m": "m", "male": "m", "man": "m", "h": "m", "hombre": "m", "homme": "m", "masculino": "m",
                "f": "f", "female": "f", "woman": "f", "mujer": "f", "femme": "f", "femenino": "f", "feminin": "f"}


def date_key(value: Column, is_date: bool) -> Column:
    """yyyyMMdd text of a birth date: a date column formatted; a text column parsed by the common patterns,
    else its digits when there are eight (an impossible date such as 19371233 still compares digit by digit)."""
    if is_date:
        return F.date_format(value, "yyyyMMdd")
    text = F.trim(value.cast("string"))
    parsed = F.coalesce(*[F.to_date(text, pattern) for pattern in DATE_PATTERNS])
    digits = F.regexp_replace(text, r"[^0-9]", "")
    return F.coalesce(F.date_format(parsed, "yyyyMMdd"), F.when(F.length(digits) == 8, digits))


def gender_key(value: Column) -> Column:
    word = name_key(value)
    table = F.create_map(*chain.from_iterable((F.lit(k), F.lit(v)) for k, v in GENDER_WORDS.items()))
    return F.coalesce(F.element_at(table, word), word)


def phone_e164_udf(default_region: str):
    """A vectorised pandas UDF (phone, country) -> E.164 with libphonenumber; null when not a valid number.
    The record's own ISO country is tried first, then ``default_region``."""
    import phonenumbers

    @F.pandas_udf(StringType())  # type: ignore[call-overload]
    def to_e164(phones: pd.Series, countries: pd.Series) -> pd.Series:
        cache: dict[tuple[str, str], str | None] = {}

        def one(raw: object, country: object) -> str | None:
            if not isinstance(raw, str) or not raw.strip():
                return None
            region = country.strip().upper() if isinstance(country, str) and len(country.strip()) == 2 else (
                default_region)
            key = (raw, region)
            if key not in cache:
                text = raw.strip()
                if text.startswith("00"):
                    text = "+" + text[2:]
                try:
                    number = phonenumbers.parse(text, region)
                    cache[key] = (phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
                                  if phonenumbers.is_valid_number(number) else None)
                except phonenumbers.NumberParseException:
                    cache[key] = None
            return cache[key]

        return pd.Series([one(p, c) for p, c in zip(phones, countries, strict=True)], dtype=object)

    return to_e164


def apply_email_rules(email: Column, rules: Mapping[str, EmailRule]) -> Column:
    """Provider rules on a normalised address: canonical domain, no +tag, no dots (e.g. Gmail). A rule applies
    when the address's domain or its canonical domain is the rule's. One lookup and at most two rewrites of the
    local part, whatever the number of rules (nesting one CASE per rule grows the generated code exponentially)."""
    if not rules:
        return email
    local, domain = F.split(email, "@").getItem(0), F.split(email, "@").getItem(1)
    renamed = {name: rule.canonical_domain for name, rule in rules.items() if rule.canonical_domain}
    canonical = (F.coalesce(F.element_at(F.create_map(*chain.from_iterable(
        (F.lit(name), F.lit(target)) for name, target in renamed.items())), domain), domain) if renamed else domain)

    def applies(flag: str) -> Column:
        names = [name for name, rule in rules.items() if getattr(rule, flag)]
        return domain.isin(names) | canonical.isin(names) if names else F.lit(False)

    cleaned = F.when(applies("strip_plus_tag"), F.regexp_replace(local, r"\+.*$", "")).otherwise(local)
    cleaned = F.when(applies("strip_dots"), F.regexp_replace(cleaned, r"\.", "")).otherwise(cleaned)
    return F.when(email.isNotNull(), F.concat(cleaned, F.lit("@"), canonical))


def canonical_given_name(key: Column, nicknames: Mapping[str, str]) -> Column:
    """The nickname table's canonical name for a name key (``pepe`` -> ``jose``), else the key."""
    if not nicknames:
        return key
    table = F.create_map(*chain.from_iterable((F.lit(k), F.lit(v)) for k, v in nicknames.items()))
    return F.coalesce(F.element_at(table, key), key)


def apply_transforms(df: DataFrame, transforms: Sequence[ValueTransform]) -> DataFrame:
    for t in transforms:
        if t.op == "merge":
            assert t.into is not None
            parts = [F.when(F.trim(F.col(c)) != "", F.trim(F.col(c))) for c in t.columns if c in df.columns]
            df = df.withColumn(t.into, F.concat_ws(t.separator, *parts)) if parts else df
            continue
        assert t.column is not None
        if t.column not in df.columns:
            continue
        value = F.col(t.column)
        if t.op == "format":
            value = {"upper": F.upper, "lower": F.lower, "title": lambda c: F.initcap(F.lower(c)),
                     "trim": F.trim}[t.style or "trim"](value)
        else:
            table = F.create_map(*chain.from_iterable((F.lit(k.lower()), F.lit(v)) for k, v in t.values.items()))
            value = F.coalesce(F.element_at(table, F.lower(F.trim(value))), value)
        df = df.withColumn(t.column, value)
    return df


def normalise_person(df: DataFrame, identity: IdentitySettings) -> DataFrame:
    out = df
    for column in ("first_name", "last_name"):
        if column in df.columns:
            out = out.withColumn(column, clean_name(F.col(column))).withColumn(
                f"{column}_key", name_key(F.col(column)))
    if "first_name" in df.columns:
        out = out.withColumn("given_name_canonical",
                             canonical_given_name(F.col("first_name_key"), identity.nicknames))
    if "country" in df.columns:
        out = out.withColumn("country", F.upper(F.trim(F.col("country"))))
    if "email" in df.columns:
        out = out.withColumn("email_norm", apply_email_rules(email_norm(F.col("email")), identity.email_rules))
    if "phone" in df.columns:
        country = F.col("country") if "country" in df.columns else F.lit(None).cast("string")
        out = out.withColumn("phone_e164", phone_e164_udf(identity.default_region)(F.col("phone"), country))
    for column in ("postcode", "city", "street", "house_number", "address_line2", "region", "national_id"):
        if column in df.columns:
            out = out.withColumn(column, F.when(F.trim(F.col(column).cast("string")) != "", F.trim(F.col(column))))
    for column in ("street", "address_line2", "city", "region"):
        if column in df.columns:
            out = out.withColumn(f"{column}_key", name_key(F.col(column)))
    for column in ("postcode", "house_number", "national_id"):
        if column in df.columns:
            out = out.withColumn(f"{column}_key", code_key(F.col(column)))
    if "birth_date" in df.columns:
        is_date = dict(df.dtypes)["birth_date"] in ("date", "timestamp")
        out = out.withColumn("birth_date_key", date_key(F.col("birth_date"), is_date))
    if "gender" in df.columns:
        out = out.withColumn("gender_key", gender_key(F.col("gender")))
    return apply_transforms(out, identity.transforms)


def latest_per_key(df: DataFrame, keys: Sequence[str], order_by: Sequence[Column]) -> DataFrame:
    """One row per key: the first by ``order_by`` (put the most recent first)."""
    window = Window.partitionBy(*[F.col(k) for k in keys]).orderBy(*order_by)
    return df.withColumn("_rank", F.row_number().over(window)).where("_rank = 1").drop("_rank")
