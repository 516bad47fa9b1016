"""Entity-resolution quality against ground truth.

``evaluate(assigned, truth, candidates=None)``
    assigned:   (record_id, person_id) from the registry
    truth:      (record_id, true_person)
    candidates: optional (record_a, record_b) candidate pairs, for pair completeness
    returns pairwise precision / recall / F1 (over record pairs placed in the same person), cluster
    precision / recall / F1 (share of predicted persons equal to a true person, and of true persons
    found exactly), and pair completeness (share of true pairs among the candidates).
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F


def _pairs(groups: DataFrame, group: str) -> DataFrame:
    left = groups.select(F.col("record_id").alias("record_a"), F.col(group).alias("g"))
    right = groups.select(F.col("record_id").alias("record_b"), F.col(group).alias("g"))
    return left.join(right, "g").where(F.col("record_a") < F.col("record_b")).select("record_a", "record_b")


def _f1(precision: float, recall: float) -> float:
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def evaluate(assigned: DataFrame, truth: DataFrame, candidates: DataFrame | None = None) -> dict[str, float]:
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
    out = {"pairwise_precision": round(precision, 5), "pairwise_recall": round(recall, 5),
           "pairwise_f1": round(_f1(precision, recall), 5), "cluster_precision": round(cluster_precision, 5),
           "cluster_recall": round(cluster_recall, 5), "cluster_f1": round(_f1(cluster_precision, cluster_recall), 5),
           "predicted_pairs": n_pred, "true_pairs": n_true}
    if candidates is not None:
        ordered = candidates.select(F.least("record_a", "record_b").alias("record_a"),
                                    F.greatest("record_a", "record_b").alias("record_b")).distinct()
        found = true.join(ordered, ["record_a", "record_b"]).count()
        out["pair_completeness"] = round(found / n_true if n_true else 1.0, 5)
    predicted.unpersist()
    true.unpersist()
    return out
