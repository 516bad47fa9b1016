"""Stable person ids (docs/design.md §4).

``assign_person_ids(components, previous, salt)``
    in:  components (record_id, component); previous registry (record_id, person_id) or None
    out: (record_id, person_id, component)

Each previous person id goes to the component holding most of its records (ties: the smaller
component id), and each component keeps, of the ids it won, the one with most of its records (ties: the
smaller id). So a rerun on unchanged input changes no id, a new record joins its person's id, a merge
keeps the id of the largest predecessor and a split leaves the old id with the largest part. Components
with no id get ``P`` + 16 hex digits of sha256(smallest record_id | salt); the salt is the registry
version being written, so an id given up by a split is never handed out again.

``identity_events(assigned, previous)``
    out: (person_id, event, predecessors) with event new | merged | split | unchanged.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F


def assign_person_ids(components: DataFrame, previous: DataFrame | None, salt: str) -> DataFrame:
    new_id = F.concat(F.lit("P"), F.substring(F.sha2(F.concat_ws("|", F.col("component"), F.lit(salt)), 256), 1, 16))
    if previous is None:
        return components.select("record_id", new_id.alias("person_id"), "component")
    overlap = (components.join(previous.select("record_id", "person_id"), "record_id")
               .groupBy("component", "person_id").agg(F.count("*").alias("shared")))
    by_person = Window.partitionBy("person_id").orderBy(F.col("shared").desc(), F.col("component"))
    won = overlap.withColumn("rank", F.row_number().over(by_person)).where("rank = 1").drop("rank")
    by_component = Window.partitionBy("component").orderBy(F.col("shared").desc(), F.col("person_id"))
    kept = (won.withColumn("rank", F.row_number().over(by_component)).where("rank = 1")
            .select("component", F.col("person_id").alias("kept_id")))
    return (components.join(kept, "component", "left")
            .select("record_id", F.coalesce("kept_id", new_id).alias("person_id"), "component"))


def identity_events(assigned: DataFrame, previous: DataFrame | None) -> DataFrame:
    """One row per current person whose membership changed, naming the predecessor ids."""
    if previous is None:
        return assigned.select("person_id").distinct().select(
            "person_id", F.lit("new").alias("event"), F.array().cast("array<string>").alias("predecessors"))
    joined = assigned.join(previous.select("record_id", F.col("person_id").alias("previous_id")), "record_id", "left")
    per_person = joined.groupBy("person_id").agg(
        F.array_sort(F.collect_set("previous_id")).alias("predecessors"),
        F.count("*").alias("records"), F.count("previous_id").alias("known_records"))
    previous_sizes = previous.groupBy(F.col("person_id").alias("previous_id")).agg(F.count("*").alias("before"))
    same_size = (per_person.select("person_id", "records", "known_records")
                 .join(previous_sizes.withColumnRenamed("previous_id", "person_id"), "person_id", "left"))
    split_ids = (joined.where(F.col("previous_id").isNotNull())
                 .groupBy("previous_id").agg(F.countDistinct("person_id").alias("parts"))
                 .where("parts > 1").select(F.col("previous_id").alias("split_from")))
    events = (per_person.join(same_size.select("person_id", "before"), "person_id", "left")
              .join(split_ids, F.array_contains(F.col("predecessors"), F.col("split_from")), "left")
              .groupBy("person_id", "predecessors", "records", "known_records", "before")
              .agg(F.count("split_from").alias("from_split")))
    event = (F.when(F.size("predecessors") == 0, F.lit("new"))
             .when(F.size("predecessors") > 1, F.lit("merged"))
             .when(F.col("from_split") > 0, F.lit("split"))
             .when((F.col("records") != F.col("before")) | (F.col("known_records") != F.col("records")),
                   F.lit("grew"))
             .otherwise(F.lit("unchanged")))
    return events.select("person_id", event.alias("event"), "predecessors").where(F.col("event") != "unchanged")
