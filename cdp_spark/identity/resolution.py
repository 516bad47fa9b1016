"""Identity resolution as pure transforms over the person records (docs/design.md §4, docs/identity.md):
the columns matching reads, the record hash that marks a record as changed, the edges of each mode, the
giant-cluster guard, and the registry, events and profile built from the components.

Person records: ``record_id`` (``<system>:<source key>``), ``system``, ``source_key``, the matched and profile
columns, ``updated_at``, ``record_hash``. Edges: ``record_a``, ``record_b``, ``sources``, ``forced``, (with
matching) levels, weights and probability, ``run_id``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from cdp_spark.config import CdpConfig, IdentitySettings, MatchingSettings
from cdp_spark.identity.candidates import key_pairs
from cdp_spark.identity.cluster import Clustering, connected_components
from cdp_spark.identity.fellegi_sunter import FsModel
from cdp_spark.identity.matching import match
from cdp_spark.identity.registry import identity_events
from cdp_spark.identity.survivorship import survive
from cdp_spark.privacy.hashing import add_hashes
from cdp_spark.scores.enrichment import computed_fields

log = logging.getLogger("cdp.resolve")

MAX_KEY_GROUP = 50  # exact-key mode: a value shared by more records is junk, not an identifier


def matched_fields(identity: IdentitySettings) -> list[str]:
    """The person columns matching reads: compared fields (and their canonical and swap columns), blocking
    rule fields, columns named by SNM keys are among these or the profile's; the exact keys without
    matching."""
    matching = identity.matching
    if matching is None:
        return list(identity.match_keys)
    compared = [x for c in matching.comparisons for x in c.columns()]
    return list(dict.fromkeys([*compared, *(f for r in matching.blocking_rules for f in r.fields)]))


def record_hash(records: DataFrame, identity: IdentitySettings) -> Column:
    """Hash of the columns matching looks at: a record whose hash changed is compared again."""
    columns = sorted(matched_fields(identity))
    return F.sha2(F.concat_ws("\u241f", *[F.coalesce(F.col(c).cast("string"), F.lit("\u2400"))
                                          for c in columns if c in records.columns]), 256)


def key_edges(records: DataFrame, match_keys: Sequence[str], run_id: str) -> DataFrame:
    """Exact-key mode: records sharing a normalised identifier are linked (forced), with the keys shared."""
    return (key_pairs(records, match_keys, MAX_KEY_GROUP)
            .groupBy("record_a", "record_b").agg(F.array_sort(F.collect_set("source")).alias("sources"))
            .withColumn("run_id", F.lit(run_id)).withColumn("forced", F.lit("match")))


@dataclass
class IncrementalMatch:
    edges: DataFrame  # the kept edges and this run's, with run_id
    new_edges: DataFrame  # this run's accepted pairs (persisted by match)
    counts: dict[str, Any]
    changed: DataFrame  # record_id of new or changed records
    removed: DataFrame  # record_id of records gone since the registry


def incremental_match(records: DataFrame, registry: DataFrame, stored_edges: DataFrame, settings: MatchingSettings,
                      model: FsModel, run_id: str) -> IncrementalMatch:
    """Compares only the pairs touching a new or changed record (``record_hash`` differs from the registry's)
    with the stored ``model``; keeps the stored edges between unchanged records."""
    known = registry.select("record_id", "record_hash")
    changed = records.join(known, ["record_id", "record_hash"], "left_anti").select("record_id")
    removed = known.join(records, "record_id", "left_anti").select("record_id")
    stale = changed.unionByName(removed)
    result = match(records, settings, model=model, touching=changed)
    kept = (stored_edges.join(stale.withColumnRenamed("record_id", "record_a"), "record_a", "left_anti")
            .join(stale.withColumnRenamed("record_id", "record_b"), "record_b", "left_anti"))
    edges = kept.unionByName(result.edges.withColumn("run_id", F.lit(run_id)))
    return IncrementalMatch(edges, result.edges, result.counts, changed, removed)


def guard_giant_clusters(spark: SparkSession, records: DataFrame, edges: DataFrame, clustering: Clustering,
                         cfg: CdpConfig) -> tuple[Clustering, list[tuple[str, int]]]:
    """Components larger than ``max_cluster_size`` are re-formed from their strongest evidence only
    (forced matches and key-sharing pairs); the oversized clusters are reported."""
    limit = cfg.identity.matching.max_cluster_size if cfg.identity.matching else MAX_KEY_GROUP
    components = clustering.components
    if clustering.linked_sizes is not None:  # sizes already known on the driver
        giants = sorted((c, n) for c, n in clustering.linked_sizes.items() if n > limit)
    else:
        sizes = components.groupBy("component").count()
        giants = [(r["component"], int(r["count"])) for r in sizes.where(F.col("count") > limit).collect()]
    if not giants:
        return clustering, []
    giant_ids = components.join(F.broadcast(spark.createDataFrame([(c,) for c, _ in giants], "component string")),
                                "component")
    inside = giant_ids.select(F.col("record_id").alias("record_a"))
    matching = cfg.identity.matching
    identifiers = [f"block:{r.name}" for r in matching.blocking_rules if r.identifier] if matching else []
    strong = (F.col("forced") == "match") | F.exists(
        "sources", lambda s: s.startswith("key:") | s.isin(*identifiers) if identifiers else s.startswith("key:"))
    kept = (edges.join(inside, "record_a", "left_anti").unionByName(
        edges.join(inside, "record_a", "left_semi").where(strong)))
    for component, size in giants:
        log.warning("giant cluster of %d records (anchor %s…) split back to its key and forced edges", size,
                    component[:12])
    return connected_components(spark, records.select("record_id"), kept, cfg.identity.max_cluster_iterations,
                                cfg.identity.checkpoint_every, cfg.identity.driver_cluster_max_edges), giants


def registry_rows(records: DataFrame, assigned: DataFrame, run_id: str) -> DataFrame:
    """``gold.person_registry``: (record_id, system, source_key, person_id, record_hash, run_id)."""
    return (records.select("record_id", "system", "source_key", "record_hash").join(assigned, "record_id")
            .select("record_id", "system", "source_key", "person_id", "record_hash", F.lit(run_id).alias("run_id")))


def event_rows(assigned: DataFrame, previous: DataFrame | None, run_id: str) -> DataFrame:
    """``gold.identity_events``: (run_id, person_id, event, predecessors, at)."""
    return identity_events(assigned, previous).select(
        F.lit(run_id).alias("run_id"), "person_id", "event", "predecessors",
        F.lit(datetime.now(UTC)).cast("timestamp").alias("at"))


def profile_rows(records: DataFrame, assigned: DataFrame, cfg: CdpConfig, table: str, as_of: Any,
                 hash_key: bytes | None) -> DataFrame:
    """``gold.person_profile``: one row per person, each attribute's surviving value (and source), the
    computed fields, and the keyed hashes when ``hash_key`` is given."""
    with_person = records.join(assigned.select("record_id", "person_id"), "record_id")
    systems = [source.system for source in cfg.all_sources().values()]  # every record's system is one of these
    profile = computed_fields(survive(with_person, cfg.identity.profile_attributes, cfg.identity.survivorship_default,
                                      cfg.identity.survivorship, systems),
                              cfg.identity.computed_fields, table, as_of)
    return add_hashes(profile, cfg.privacy.hashed_columns, hash_key) if hash_key is not None else profile
