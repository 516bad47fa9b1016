"""Exact-key edges and connected components.

``exact_key_edges(records, keys, max_group)``
    in:  record_id + one column per match key
    out: (record_a, record_b, rule, key_hash) star edges: every record sharing a key value is linked to
         the smallest record_id holding that value, so a value shared by k records gives k-1 edges, not k².
         A value shared by more than ``max_group`` records is a junk identifier (``test@test.com``) and is
         ignored; :func:`junk_values` reports them.
``connected_components(spark, nodes, edges, ...)``
    in:  nodes (record_id), undirected edges (record_a, record_b)
    out: (record_id, component) where component is the smallest record_id of the component.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

log = logging.getLogger(__name__)


def _key_groups(records: DataFrame, keys: Sequence[str]) -> DataFrame:
    return records.select(
        "record_id",
        F.explode(F.array(*[F.struct(F.lit(k).alias("rule"), F.col(k).cast("string").alias("value"))
                            for k in keys])).alias("k"),
    ).select("record_id", "k.rule", "k.value").where(F.col("value").isNotNull())


def junk_values(records: DataFrame, keys: Sequence[str], max_group: int) -> DataFrame:
    """(rule, key_hash, records): key values shared by more than ``max_group`` records."""
    return (_key_groups(records, keys).groupBy("rule", "value").agg(F.count("*").alias("records"))
            .where(F.col("records") > max_group)
            .select("rule", F.sha2("value", 256).alias("key_hash"), "records"))


def exact_key_edges(records: DataFrame, keys: Sequence[str], max_group: int) -> DataFrame:
    groups = _key_groups(records, keys)
    window = Window.partitionBy("rule", "value")
    with_anchor = (groups.withColumn("anchor", F.min("record_id").over(window))
                   .withColumn("group_size", F.count("*").over(window))
                   .where(F.col("group_size") <= max_group))
    return (with_anchor.where(F.col("record_id") != F.col("anchor"))
            .select(F.col("anchor").alias("record_a"), F.col("record_id").alias("record_b"), "rule",
                    F.sha2("value", 256).alias("key_hash"))
            .dropDuplicates(["record_a", "record_b", "rule"]))


def connected_components(spark: SparkSession, nodes: DataFrame, edges: DataFrame, max_iterations: int = 40,
                         checkpoint_every: int = 5) -> DataFrame:
    """Min-label propagation over undirected edges until no label changes. The plan's lineage is cut
    with a checkpoint every ``checkpoint_every`` iterations so long runs do not grow the plan."""
    both = (edges.select(F.col("record_a").alias("src"), F.col("record_b").alias("dst"))
            .unionByName(edges.select(F.col("record_b").alias("src"), F.col("record_a").alias("dst")))
            .distinct().persist())
    labels = nodes.select("record_id", F.col("record_id").alias("component")).distinct()
    for iteration in range(1, max_iterations + 1):
        neighbour_min = (both.join(labels.withColumnRenamed("record_id", "dst"), "dst")
                         .groupBy("src").agg(F.min("component").alias("candidate")))
        updated = (labels.join(neighbour_min.withColumnRenamed("src", "record_id"), "record_id", "left")
                   .select("record_id", F.least("component", F.coalesce("candidate", "component"))
                           .alias("component"), (F.col("candidate") < F.col("component")).alias("changed")))
        updated = updated.checkpoint() if iteration % checkpoint_every == 0 else updated.localCheckpoint()
        changed = updated.where("changed").limit(1).count()
        labels = updated.drop("changed")
        if changed == 0:
            log.info("connected components converged after %d iterations", iteration)
            both.unpersist()
            return labels
    both.unpersist()
    raise RuntimeError(f"connected components did not converge in {max_iterations} iterations; "
                       "raise identity.max_cluster_iterations")
