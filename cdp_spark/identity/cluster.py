"""Connected components over accepted edges.

``connected_components(spark, nodes, edges, ...)``
    in:  nodes (record_id), undirected edges (record_a, record_b)
    out: ``Clustering``: ``components`` (record_id, component) where component is the smallest record_id
         of the component; on the driver path also the size of every component with an edge (so callers
         need no Spark job to find oversized components or count them).

Two equivalent paths: graphs of up to ``driver_max_edges`` edges (the usual case: accepted edges are
about one per duplicate record, far fewer than records) are collected once and solved on the driver with
scipy's sparse-graph components; larger graphs use iterative min-label propagation in Spark with the
lineage cut by checkpoints.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components as sparse_components

log = logging.getLogger(__name__)


@dataclass
class Clustering:
    components: DataFrame
    linked_sizes: dict[str, int] | None = None
    """component -> records, for components with at least one edge; None when solved in Spark"""


def connected_components(spark: SparkSession, nodes: DataFrame, edges: DataFrame, max_iterations: int = 40,
                         checkpoint_every: int = 5, driver_max_edges: int = 0,
                         edge_count: int | None = None) -> Clustering:
    """Components of the graph; on the driver when it has at most ``driver_max_edges`` edges
    (``edge_count``: the number of edges, when the caller knows it)."""
    pairs = edges.select("record_a", "record_b")
    if edge_count is None and driver_max_edges > 0:
        edge_count = pairs.limit(driver_max_edges + 1).count()
    if driver_max_edges > 0 and edge_count is not None and edge_count <= driver_max_edges:
        return driver_components(spark, nodes, pairs)
    return Clustering(propagated_components(spark, nodes, pairs, max_iterations, checkpoint_every))


def driver_components(spark: SparkSession, nodes: DataFrame, edges: DataFrame) -> Clustering:
    """One collect of the edges, scipy's components, the labels joined back to every node."""
    frame: pd.DataFrame = edges.toPandas()
    if frame.empty:
        return Clustering(nodes.select("record_id", F.col("record_id").alias("component")).distinct(), {})
    # codes are ranks in sorted order, so a component's smallest record_id is its smallest code
    codes, names = pd.factorize(pd.concat([frame["record_a"], frame["record_b"]], ignore_index=True), sort=True)
    n_edges, n_nodes = len(frame), len(names)
    graph = coo_matrix((np.ones(n_edges, dtype=np.int8), (codes[:n_edges], codes[n_edges:])),
                       shape=(n_nodes, n_nodes))
    n_labels, labels = sparse_components(graph, directed=False)
    smallest = np.full(n_labels, n_nodes)
    np.minimum.at(smallest, labels, np.arange(n_nodes))
    record_ids = np.asarray(names, dtype=object)
    anchors = record_ids[smallest]
    linked = pd.DataFrame({"record_id": record_ids, "component": anchors[labels]})
    labelled = spark.createDataFrame(linked, "record_id string, component string")
    log.info("connected components on the driver: %d edges, %d linked records", n_edges, n_nodes)
    sizes = dict(zip(map(str, anchors), map(int, np.bincount(labels, minlength=n_labels)), strict=True))
    return Clustering(nodes.select("record_id").distinct().join(labelled, "record_id", "left")
                      .select("record_id", F.coalesce("component", "record_id").alias("component")), sizes)


def propagated_components(spark: SparkSession, nodes: DataFrame, edges: DataFrame, max_iterations: int = 40,
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
