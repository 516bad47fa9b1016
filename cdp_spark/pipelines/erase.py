"""``cdp erase --email ... | --person-id ...``: remove a person from every table, keep them out, prove it.

1. **Find** the person: by id in ``gold.person_registry``, or by e-mail (normalised as silver does) in the
   person entities and ``gold.person_profile``; with all their source records, e-mails, phones and keys.
2. **Remove** their rows from every bronze, silver, gold and quarantine table of the lake
   (``privacy.erasure.erasure_predicate``), each table rewritten as a new version.
3. **Purge history** (``privacy.erase_purges_history``): vacuum each changed table with zero retention (the
   old files holding the person are deleted; Delta's retention check is lifted for that call) and, on the
   rs engine, checkpoint and delete the older commit files, so neither data files nor the transaction log
   keep a trace (file statistics never hold text on either engine: see ``io.tables.stats_columns``).
4. **Warehouse**: ``DELETE`` the person's rows from every synced table, in one transaction per table.
5. **Suppress**: keyed hashes (HMAC, ``privacy.hash_key_env``) of the e-mails, phones and source records
   go to ``meta.suppression``; ingest drops rows that match it, so re-ingesting old files cannot bring the
   person back.
6. **Receipt**: ``meta.erasure_receipts`` and the returned dict list each table, the version written and
   the rows removed. Receipts hold hashes and counts, never the personal values.

Works on both engines, on a local lake or one on object storage (spark engine).
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from cdp_spark.catalog import ERASURE_RECEIPTS, PERSON_PROFILE, PERSON_REGISTRY, SUPPRESSION, declared_schema, silver_of
from cdp_spark.config import CdpConfig
from cdp_spark.identity.normalise import normalise_person
from cdp_spark.io import jdbc
from cdp_spark.io.tables import Txn, split_name
from cdp_spark.pipelines.common import RunContext, StageError, make_context, record_manifest
from cdp_spark.privacy.erasure import EntityKeys, ErasureTarget, UnknownSubject, erasure_predicate
from cdp_spark.privacy.erasure import find_subject as subject_of
from cdp_spark.privacy.hashing import keyed_hash
from cdp_spark.sync.warehouse import columns_query, erase_statements

log = logging.getLogger("cdp.erase")

KEEP = ("meta.",)  # bookkeeping: counts, versions and hashes only


def entity_keys(cfg: CdpConfig) -> dict[str, EntityKeys]:
    keys: dict[str, EntityKeys] = {}
    for name, source in cfg.all_sources().items():
        if source.entity in cfg.identity.person_sources:
            known = keys.get(source.entity)
            systems = {**(known.systems_by_source if known else {}), name: source.system}
            keys[source.entity] = EntityKeys(systems, list(source.source_key))
    return keys


def normalised_email(spark: SparkSession, cfg: CdpConfig, email: str) -> str:
    row = normalise_person(spark.createDataFrame([(email,)], "email string"), cfg.identity).first()
    if row is None or not row["email_norm"]:
        raise StageError("the e-mail given to erase is not a valid address")
    return str(row["email_norm"])


def _person_tables(ctx: RunContext, cfg: CdpConfig) -> list[str]:
    return [silver_of(entity) for entity in entity_keys(cfg) if ctx.store.exists(silver_of(entity))]


def find_subject(spark: SparkSession, ctx: RunContext, cfg: CdpConfig, email: str | None,
                 person_id: str | None) -> tuple[ErasureTarget, dict[str, set[str]]]:
    """The persons, records and identifying texts to erase, and the values to suppress by kind
    (``privacy.erasure.find_subject`` over the registry, the profile and the silver person entities)."""
    keys = entity_keys(cfg)
    person_tables = [(ctx.read(table), keys[split_name(table)[1]].key_columns) for table in _person_tables(ctx, cfg)]
    profile = ctx.read(PERSON_PROFILE) if ctx.exists(PERSON_PROFILE) else None
    try:
        return subject_of(ctx.read(PERSON_REGISTRY), profile, person_tables,
                          normalised_email(spark, cfg, email) if email else None, email, person_id)
    except UnknownSubject as exc:
        raise StageError(str(exc)) from None


def _remove_rows(ctx: RunContext, table: str, doomed: Any, erasure_id: str) -> tuple[int, int] | None:
    frame: DataFrame = ctx.store.read(table)
    hits = frame.where(doomed).count()
    if hits == 0:
        return None
    kept = frame.where(~doomed).localCheckpoint()
    result = ctx.store.write(table, kept, mode="overwrite", txn=Txn(f"erase/{erasure_id}", 1))
    ctx.wrote(table, result.version)
    if ctx.cfg.privacy.erase_purges_history:
        ctx.store.vacuum(table, retention_hours=0)
        ctx.store.purge_history(table)
    return result.version, hits


def _warehouse_delete(spark: SparkSession, cfg: CdpConfig, target: ErasureTarget) -> dict[str, int]:
    settings = cfg.warehouse
    if not settings.enabled:
        return {}
    connection = jdbc.target_from_env(settings.url, settings.driver, settings.user_env, settings.password_env)
    done: dict[str, int] = {}
    for table in settings.tables:
        _, name = split_name(table)
        found = jdbc.fetch_one(spark, connection, columns_query(settings.schema_name, name))
        present = set(str(found.get("c") or "").split(",")) & set(settings.columns.get(table) or
                                                                   ["person_id", "record_id"])
        statements = erase_statements(settings.schema_name, name, sorted(present), sorted(target.persons),
                                      sorted(target.records))
        if statements:
            jdbc.execute_in_transaction(spark, connection, statements)
            done[table] = len(statements)
    return done


def run(spark: SparkSession, cfg: CdpConfig, email: str | None = None, person_id: str | None = None,
        ctx: RunContext | None = None) -> dict[str, Any]:
    if bool(email) == bool(person_id):
        raise StageError("give exactly one of --email and --person-id")
    ctx = ctx or make_context(spark, cfg)
    key = cfg.privacy.key()  # the suppression list needs it: fail before touching anything
    if not ctx.store.exists(PERSON_REGISTRY):
        raise StageError(f"{PERSON_REGISTRY} does not exist: nothing has been resolved yet")
    target, suppress = find_subject(spark, ctx, cfg, email, person_id)
    erasure_id = uuid.uuid4().hex[:12]
    now = datetime.now(UTC).replace(tzinfo=None)
    hashes = [(kind, keyed_hash(key, value), erasure_id, now) for kind, values in suppress.items()
              for value in sorted(values)]
    ctx.store.append_rows(SUPPRESSION, hashes, declared_schema(SUPPRESSION), txn=Txn(f"erase/{erasure_id}", 1))
    sources = entity_keys(cfg)
    removed: dict[str, dict[str, int]] = {}
    for table in ctx.store.tables():
        if table.startswith(KEEP):
            continue
        doomed = erasure_predicate(table, ctx.store.read(table).columns, target, sources)
        if doomed is None:
            continue
        outcome = _remove_rows(ctx, table, doomed, erasure_id)
        if outcome:
            removed[table] = {"version": outcome[0], "rows_removed": outcome[1]}
            log.info("erase %s: %d rows removed from %s (version %d)", erasure_id, outcome[1], table, outcome[0])
    warehouse = _warehouse_delete(spark, cfg, target)
    receipt_rows = [(erasure_id, t, v["version"], v["rows_removed"], now) for t, v in removed.items()]
    ctx.store.append_rows(ERASURE_RECEIPTS, receipt_rows, declared_schema(ERASURE_RECEIPTS),
                          txn=Txn(f"erase/{erasure_id}", 1))
    receipt = {"erasure_id": erasure_id, "erased_at": now.isoformat(), "persons": len(target.persons),
               "source_records": len(target.records), "tables": removed, "warehouse_tables": warehouse,
               "suppressed_hashes": len(hashes)}
    ctx.counts["erase"] = receipt
    record_manifest(spark, ctx, "erase", "succeeded", json.dumps({"erasure_id": erasure_id}))
    return receipt
