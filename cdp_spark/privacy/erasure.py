"""Which rows of a table belong to the persons being erased (``cdp erase``, docs/design.md §7).

``erasure_predicate(table, columns, target, sources)`` -> a Column true on the rows to remove, or None
when the table holds nothing that identifies a person:

    person_id                                   person_id in target.persons
    record_id, record_a, record_b               in target.records ("<system>:<source key>")
    customer_source + customer_key (orders,     "<customer_source>:<customer_key>" in target.records
      events)
    silver.<person entity> (_system + key)      "<_system>:<key>" in target.records
    bronze.<person entity> (_source + key)      "<system of _source>:<key>" in target.records
    quarantine.<entity>.raw                     the raw text holds one of target.texts (e-mails and phones
                                                case-insensitively, source keys as whole tokens)
    quarantine.<layer>_<table>.record           the JSON row holds a person id or record id

``sources`` maps each person entity to its (source name -> system) and key columns.

``find_subject(registry, profile, person_tables, email_norm, person_id)`` -> the :class:`ErasureTarget` and
the values to suppress by kind (``email``, ``phone``, ``record``), from the registry, the profile and the
silver person entities.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import reduce

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from cdp_spark.identity.records import record_id


@dataclass(frozen=True)
class ErasureTarget:
    persons: frozenset[str]
    records: frozenset[str]
    texts: frozenset[str]


@dataclass(frozen=True)
class EntityKeys:
    systems_by_source: Mapping[str, str]
    key_columns: Sequence[str]


def _mentions(text: Column, target: ErasureTarget) -> Column | None:
    tests = []
    for value in sorted(target.texts):
        if "@" in value or value.startswith("+"):
            tests.append(F.lower(text).contains(value.lower()))
        else:
            tests.append(text.rlike(rf"(^|[^0-9A-Za-z]){re.escape(value)}($|[^0-9A-Za-z])"))
    return reduce(lambda a, b: a | b, tests) if tests else None


def erasure_predicate(table: str, columns: Sequence[str], target: ErasureTarget,
                      sources: Mapping[str, EntityKeys]) -> Column | None:
    layer, _, name = table.partition(".")
    records = sorted(target.records)
    tests: list[Column] = []
    if "person_id" in columns:
        tests.append(F.col("person_id").isin(sorted(target.persons)))
    tests += [F.col(c).isin(records) for c in ("record_id", "record_a", "record_b") if c in columns]
    if {"customer_source", "customer_key"} <= set(columns):
        tests.append(record_id(F.col("customer_source"), ["customer_key"]).isin(records))
    entity = sources.get(name)
    if entity is not None and layer in ("silver", "bronze") and set(entity.key_columns) <= set(columns):
        if layer == "silver" and "_system" in columns:
            tests.append(record_id(F.col("_system"), entity.key_columns).isin(records))
        elif layer == "bronze" and "_source" in columns:
            system = F.create_map(*[F.lit(x) for pair in entity.systems_by_source.items() for x in pair])[
                F.col("_source")]
            tests.append(record_id(system, entity.key_columns).isin(records))
    if layer == "quarantine":
        for column in ("raw", "record"):
            if column in columns:
                if column == "record":
                    mentioned = _mentions(F.col(column), ErasureTarget(
                        frozenset(), frozenset(), target.persons | target.records))
                else:
                    mentioned = _mentions(F.col(column), target)
                if mentioned is not None:
                    tests.append(mentioned)
    if not tests:
        return None
    return F.coalesce(reduce(lambda a, b: a | b, tests), F.lit(False))


class UnknownSubject(LookupError):
    """Nobody in the lake matches the e-mail or person id."""


def find_subject(registry: DataFrame, profile: DataFrame | None,
                 person_tables: Sequence[tuple[DataFrame, Sequence[str]]],
                 email_norm: str | None, email_given: str | None,
                 person_id: str | None) -> tuple[ErasureTarget, dict[str, set[str]]]:
    """The persons, records and identifying texts to erase, and the values to suppress by kind.
    ``person_tables``: each silver person entity with its key columns; ``email_norm``: the given e-mail
    normalised as silver does (``email_given`` as typed, kept as a text to find in raw quarantine rows)."""
    persons: set[str] = {person_id} if person_id else set()
    if email_norm:
        if profile is not None:
            persons |= {r["person_id"] for r in profile.where(F.col("email_norm") == email_norm)
                        .select("person_id").collect()}
        for silver, keys in person_tables:
            hits = silver.where(F.col("email_norm") == email_norm).select(
                record_id(F.col("_system"), keys).alias("record_id"))
            persons |= {r["person_id"] for r in registry.join(hits, "record_id").select("person_id").collect()}
    records = {r["record_id"] for r in registry.where(F.col("person_id").isin(sorted(persons)))
               .select("record_id").collect()}
    if not records:
        raise UnknownSubject("no person matches " + ("the e-mail given" if email_norm else f"person id {person_id}"))
    emails: set[str] = {email_norm} if email_norm else set()
    phones: set[str] = set()
    raw: set[str] = {email_given.strip()} if email_given else set()
    for silver, keys in person_tables:
        wanted = [c for c in ("email", "email_norm", "phone", "phone_e164") if c in silver.columns]
        for row in silver.where(record_id(F.col("_system"), keys).isin(sorted(records))).select(*wanted).collect():
            values = row.asDict()
            emails |= {v for k, v in values.items() if k == "email_norm" and v}
            phones |= {v for k, v in values.items() if k == "phone_e164" and v}
            raw |= {str(v).strip() for v in values.values() if v and str(v).strip()}
    source_keys = {r.split(":", 1)[1] for r in records}
    target = ErasureTarget(frozenset(persons), frozenset(records), frozenset(raw | emails | phones | source_keys))
    return target, {"email": emails, "phone": phones, "record": records}
