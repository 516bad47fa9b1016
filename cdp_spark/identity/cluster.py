"""Connected components over accepted edges.

``connected_components(spark, nodes, edges, ...)``
    in:  nodes (record_id), undirected edges (record_a, record_b)
    out: (record_id, component) where component is the smallest record_id of the component.
"""

from __future__ import annotations

import logging

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

log = logging.getLogger(__name__)


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
