"""Identity resolution: silver person records -> identity edges, person registry, person profile
(docs/design.md §4, docs/identity.md).

The edges come from one of three modes: exact keys (``identity.matching: null``: records sharing a
normalised identifier of ``identity.match_keys`` are linked, junk values ignored); a full probabilistic match
(candidates, comparisons, Fellegi-Sunter with a model fitted on this run's records and stored in
``silver.identity_model``); or, with a stored model and registry, an incremental match that compares only
pairs touching a new or changed record and keeps the other edges. Then connected components, the giant-cluster
guard, stable ids from the previous registry and survivorship per attribute from config. The transforms are
in ``cdp_spark.identity`` (``resolution``: the modes' edges, the guard, the registry, events and profile rows);
this module reads the silver entities and the stored model, picks the mode, writes and records.

Tables written:
    silver.identity_edges  accepted pairs with their evidence and run_id           overwrite
    gold.person_registry   (record_id, system, source_key, person_id, record_hash, run_id)  overwrite
    gold.identity_events   (run_id, person_id, event, predecessors, at)           append
    gold.person_profile    one row per person                                     overwrite
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from cdp_spark.catalog import (
    IDENTITY_EDGES,
    IDENTITY_EVENTS,
    IDENTITY_MODEL,
    PERSON_PROFILE,
    PERSON_REGISTRY,
    declared_schema,
    silver_of,
)
from cdp_spark.config import CdpConfig
from cdp_spark.identity.candidates import junk_values
from cdp_spark.identity.cluster import connected_components
from cdp_spark.identity.fellegi_sunter import FsModel
from cdp_spark.identity.matching import match, model_fits
from cdp_spark.identity.records import record_id, source_key
from cdp_spark.identity.registry import assign_person_ids
from cdp_spark.identity.resolution import (
    MAX_KEY_GROUP,
    event_rows,
    guard_giant_clusters,
    incremental_match,
    key_edges,
    matched_fields,
    profile_rows,
    record_hash,
    registry_rows,
)
from cdp_spark.pipelines.common import RunContext, StageError, make_context, record_manifest

log = logging.getLogger("cdp.resolve")

def person_records(ctx: RunContext, cfg: CdpConfig) -> DataFrame:
    """Union of the silver person entities as (record_id, system, source_key, match keys, attributes,
    updated_at). record_id = ``<system>:<source key>``."""
    wanted = list(dict.fromkeys([*matched_fields(cfg.identity), *cfg.identity.profile_attributes]))
    silvers = []
    seen: set[str] = set()
    for source in cfg.all_sources().values():
        if source.entity not in cfg.identity.person_sources or source.entity in seen:
            continue
        seen.add(source.entity)
        table = silver_of(source.entity)
        if not ctx.exists(table):
            raise StageError(f"{table} does not exist; run the ingest and normalise stages first")
        silvers.append((source, ctx.read(table)))
    column_types: dict[str, str] = {}
    for _, silver in silvers:
        for name, type_name in silver.dtypes:
            column_types.setdefault(name, type_name)
    frames = []
    for source, silver in silvers:
        types = {**column_types, **dict(silver.dtypes)}
        frames.append(silver.select(
            record_id(F.col("_system"), source.source_key).alias("record_id"), F.col("_system").alias("system"),
            source_key(source.source_key).alias("source_key"),
            *[(F.col(c) if c in silver.columns else F.lit(None)).cast(types.get(c, "string")).alias(c)
              for c in wanted],
            (F.col("updated_at") if "updated_at" in types else F.col("_ingested_at")).alias("updated_at")))
    if not frames:
        raise StageError(f"no configured source has an entity in identity.person_sources "
                         f"{cfg.identity.person_sources}")
    records = frames[0]
    for frame in frames[1:]:
        records = records.unionByName(frame, allowMissingColumns=True)
    return records


def stored_model(ctx: RunContext) -> tuple[FsModel, dict[str, Any]] | None:
    """The most recently fitted matching model and the counts stored with it, if any (None also for a
    model from before named comparison levels)."""
    if not ctx.exists(IDENTITY_MODEL):
        return None
    models = ctx.read(IDENTITY_MODEL)
    order = F.col("fitted_at").desc_nulls_last() if "fitted_at" in models.columns else F.col("run_id")
    row = models.orderBy(order).first()
    model = FsModel.from_json(row["model"]) if row else None
    if row is None or model is None:
        return None
    return model, json.loads(row["counts"] or "{}")


def latest_model(ctx: RunContext) -> FsModel | None:
    """The most recently fitted matching model when it fits the configured comparisons."""
    stored = stored_model(ctx)
    matching = ctx.cfg.identity.matching
    if stored is None:
        return None
    if matching is not None and not model_fits(stored[0], matching):
        log.info("the stored matching model was fitted for other comparisons: fitting a new one")
        return None
    return stored[0]


def run(spark: SparkSession, cfg: CdpConfig, ctx: RunContext | None = None) -> dict[str, object]:
    ctx = ctx or make_context(spark, cfg)
    hash_key = cfg.privacy.key() if cfg.privacy.enabled else None  # fails before any work when missing
    records = person_records(ctx, cfg)
    records = records.withColumn("record_hash", record_hash(records, cfg.identity)).persist()
    matching = cfg.identity.matching
    junk = [] if matching else junk_values(records, cfg.identity.match_keys, MAX_KEY_GROUP).collect()
    for row in junk:
        log.warning("junk identifier ignored: %s value (sha256 %s…) shared by %d records", row["rule"],
                    row["key_hash"][:12], row["records"])
    match_counts: dict[str, object] = {}
    cached = [records]  # unpersisted at the end
    previous_registry = ctx.read(PERSON_REGISTRY) if ctx.exists(PERSON_REGISTRY) else None
    if matching:
        stored = latest_model(ctx) if cfg.identity.incremental else None
        incremental = (stored is not None and previous_registry is not None and ctx.exists(IDENTITY_EDGES)
                       and "record_hash" in previous_registry.columns)
        if incremental:
            assert previous_registry is not None and stored is not None
            found = incremental_match(records, previous_registry, ctx.read(IDENTITY_EDGES), matching, stored,
                                      ctx.run_id)
            edges = found.edges.persist()
            n_edges = edges.count()
            cached += [found.new_edges, edges]
            match_counts = {**found.counts, "mode": "incremental", "changed_records": found.changed.count(),
                            "removed_records": found.removed.count()}
        else:
            result = match(records, matching)
            cached.append(result.edges)  # persisted and counted by match: adding run_id reads the cache
            edges, n_edges = result.edges.withColumn("run_id", F.lit(ctx.run_id)), int(result.counts["accepted_pairs"])
            match_counts = {**result.counts, "mode": "full"}
            model_row = (ctx.run_id, result.model.to_json(), json.dumps(result.counts), datetime.now(UTC))
            model_rows = ctx.store.append_rows(IDENTITY_MODEL, [model_row], declared_schema(IDENTITY_MODEL),
                                               evolve_schema=True)
            ctx.wrote(IDENTITY_MODEL, model_rows.version)
    else:
        edges = key_edges(records, cfg.identity.match_keys, ctx.run_id).persist()
        n_edges = edges.count()
        cached.append(edges)
    n_records = int(match_counts["records"]) if matching else records.count()  # type: ignore[call-overload]
    clustering = connected_components(spark, records.select("record_id"), edges,
                                      cfg.identity.max_cluster_iterations, cfg.identity.checkpoint_every,
                                      cfg.identity.driver_cluster_max_edges, edge_count=n_edges)
    clustering, giants = guard_giant_clusters(spark, records, edges, clustering, cfg)
    components = clustering.components
    previous = previous_registry.select("record_id", "person_id") if previous_registry is not None else None
    salt = str((ctx.inputs.get(PERSON_REGISTRY) or -1) + 1)
    assigned = assign_person_ids(components, previous, salt).persist()
    registry = registry_rows(records, assigned, ctx.run_id)
    events = event_rows(assigned, previous, ctx.run_id)
    profile = profile_rows(records, assigned, cfg, PERSON_PROFILE, ctx.as_of, hash_key)
    for table, frame, mode in ((IDENTITY_EDGES, edges, "overwrite"), (PERSON_REGISTRY, registry, "overwrite"),
                               (IDENTITY_EVENTS, events, "append"), (PERSON_PROFILE, profile, "overwrite")):
        written = ctx.store.write(table, frame, mode=mode)  # type: ignore[arg-type]
        ctx.wrote(table, written.version)
    # one person per component: unlinked records are their own component
    linked = clustering.linked_sizes
    persons = (n_records - sum(linked.values()) + len(linked) if linked is not None
               else assigned.select("person_id").distinct().count())
    counts = {"records": n_records, "persons": persons, "edges": n_edges, "junk_identifiers": len(junk),
              "giant_clusters": len(giants), **match_counts}
    for detail in ("weight_histogram", "pairs_per_source", "oversized_blocks"):  # kept with the model
        counts.pop(detail, None)
    for frame in (*cached, assigned):
        frame.unpersist()
    ctx.counts["resolve"] = counts
    record_manifest(spark, ctx, "resolve", "succeeded")
    log.info("resolved %d records into %d persons", counts["records"], counts["persons"])
    return counts
