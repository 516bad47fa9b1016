"""Entity-resolution quality against ground truth.

``evaluate(assigned, truth, candidates=None)``
    assigned:   (record_id, person_id) from the registry
    truth:      (record_id, true_person)
    candidates: optional (record_a, record_b[, sources]) candidate pairs, for pair completeness
    returns pairwise precision / recall / F1 (over record pairs placed in the same person), cluster
    precision / recall / F1 (share of predicted persons equal to a true person, and of true persons
    found exactly), and pair completeness (share of true pairs among the candidates). With ``sources``
    (the rules and passes that proposed each pair) also ``completeness_per_source``: per source the share
    of true pairs it proposes, the true pairs only it proposes, and its candidate pairs.
"""

from __future__ import annotations

from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F


def _pairs(groups: DataFrame, group: str) -> DataFrame:
    left = groups.select(F.col("record_id").alias("record_a"), F.col(group).alias("g"))
    right = groups.select(F.col("record_id").alias("record_b"), F.col(group).alias("g"))
    return left.join(right, "g").where(F.col("record_a") < F.col("record_b")).select("record_a", "record_b")


def _f1(precision: float, recall: float) -> float:
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def evaluate(assigned: DataFrame, truth: DataFrame, candidates: DataFrame | None = None) -> dict[str, Any]:
    predicted = _pairs(assigned, "person_id").persist()
    true = _pairs(truth, "true_person").persist()
    n_pred, n_true = predicted.count(), true.count()
    hits = predicted.join(true, ["record_a", "record_b"]).count()
    precision = hits / n_pred if n_pred else 1.0
    recall = hits / n_true if n_true else 1.0
    members_pred = assigned.groupBy("person_id").agg(F.array_sort(F.collect_list("record_id")).alias("m"))
    members_true = truth.groupBy("true_person").agg(F.array_sort(F.collect_list("record_id")).alias("m"))
    exact = members_pred.join(members_true, "m").count()
    cluster_precision = exact / max(members_pred.count(), 1)
    cluster_recall = exact / max(members_true.count(), 1)
    out: dict[str, Any] = {"pairwise_precision": round(precision, 5), "pairwise_recall": round(recall, 5),
           "pairwise_f1": round(_f1(precision, recall), 5), "cluster_precision": round(cluster_precision, 5),
           "cluster_recall": round(cluster_recall, 5), "cluster_f1": round(_f1(cluster_precision, cluster_recall), 5),
           "predicted_pairs": n_pred, "true_pairs": n_true}
    if candidates is not None:
        ordered = candidates.select(F.least("record_a", "record_b").alias("record_a"),
                                    F.greatest("record_a", "record_b").alias("record_b"),
                                    *(["sources"] if "sources" in candidates.columns else [])).persist()
        found = true.join(ordered, ["record_a", "record_b"]).count()
        out["pair_completeness"] = round(found / n_true if n_true else 1.0, 5)
        if "sources" in ordered.columns:
            out["completeness_per_source"] = completeness_per_source(ordered, true, n_true)
        ordered.unpersist()
    predicted.unpersist()
    true.unpersist()
    return out


def completeness_per_source(candidates: DataFrame, true: DataFrame, n_true: int) -> dict[str, dict[str, float]]:
    """Per candidate source: ``completeness`` (share of the true pairs it proposes), ``only`` (true pairs no
    other source proposes) and ``pairs`` (candidate pairs it proposes)."""
    flagged = candidates.join(true.withColumn("is_true", F.lit(True)), ["record_a", "record_b"], "left")
    rows = (flagged.select(F.explode("sources").alias("source"), F.coalesce("is_true", F.lit(False)).alias("is_true"),
                           (F.size("sources") == 1).alias("alone"))
            .groupBy("source").agg(F.count(F.lit(1)).alias("pairs"), F.count_if("is_true").alias("true_pairs"),
                                   F.count_if(F.col("is_true") & F.col("alone")).alias("only")).collect())
    return {r["source"]: {"completeness": round(r["true_pairs"] / n_true if n_true else 1.0, 5), "only": r["only"],
                          "pairs": r["pairs"]} for r in sorted(rows, key=lambda r: r["source"])}
