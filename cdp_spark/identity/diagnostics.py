"""Is the matching model sane? What ``cdp identity diagnostics`` shows (docs/identity.md, "Diagnostics").

``diagnostics(model, counts, match_probability)``
    in:  the fitted model and the counts the resolve stage stored with it (``silver.identity_model``)
    out: a JSON-ready dict: the prior, the threshold as a probability and as a match weight, per comparison
         and level m, u and the weight in bits (with the training blocks that estimated m), candidate
         pairs per blocking rule and SNM pass, oversized blocks, and the histogram of the candidates'
         match weights.
``render(report)``
    the same for a terminal: tables, and the histogram as bars with the threshold marked.

What to look for: agreement levels with positive weights and disagreement with negative ones, m of the
exact level well above its u, a histogram with two humps (non-matches on the left, matches on the right)
and the threshold in the valley between them.
"""

from __future__ import annotations

import math
from typing import Any

from cdp_spark.identity.fellegi_sunter import FsModel


def diagnostics(model: FsModel, counts: dict[str, Any], match_probability: float) -> dict[str, Any]:
    comparisons = []
    for name in model.fields:
        weights = model.weights(name)
        comparisons.append({
            "field": name, "trained_by": model.trained_by.get(name, []),
            "term_frequency": name in model.tf_fields,
            "levels": [{"level": level, "m": round(m, 6), "u": round(u, 8), "weight": round(w, 2)}
                       for level, m, u, w in zip(model.levels[name], model.m[name], model.u[name], weights,
                                                 strict=True)]})
    histogram = {int(k): int(v) for k, v in (counts.get("weight_histogram") or {}).items()}
    return {
        "records": counts.get("records"), "candidate_pairs": counts.get("candidate_pairs"),
        "accepted_pairs": counts.get("accepted_pairs"),
        "prior": model.prior, "prior_weight": round(math.log2(model.prior / (1 - model.prior)), 2),
        "candidate_share": model.candidate_share, "threshold_probability": match_probability,
        "threshold_weight": round(math.log2(match_probability / (1 - match_probability)), 2),
        "comparisons": comparisons, "anchors": model.anchors,
        "pairs_per_source": counts.get("pairs_per_source") or {},
        "oversized_blocks": counts.get("oversized_blocks") or {},
        "weight_histogram": dict(sorted(histogram.items())),
    }


def render(report: dict[str, Any], width: int = 50) -> str:
    lines = [f"matching model: {report['records']} records, {report['candidate_pairs']} candidate pairs, "
             f"{report['accepted_pairs']} accepted",
             f"prior (two random records match): {report['prior']:.3g} = {report['prior_weight']:+.2f} bits; "
             f"threshold: probability {report['threshold_probability']} = match weight "
             f"{report['threshold_weight']:+.2f}", ""]
    for comparison in report["comparisons"]:
        trained = ", ".join(comparison["trained_by"]) or "no block (start values)"
        lines.append(f"{comparison['field']}  (m trained in: {trained}"
                     f"{'; term-frequency adjusted' if comparison['term_frequency'] else ''})")
        for level in reversed(comparison["levels"]):
            lines.append(f"    {level['level']:<28} m {level['m']:<9.4g} u {level['u']:<11.3g} "
                         f"weight {level['weight']:+7.2f}")
    lines += ["", "candidate pairs per source:"]
    lines += [f"    {source:<28} {pairs}" for source, pairs in sorted(report["pairs_per_source"].items())]
    for rule, entry in sorted(report["oversized_blocks"].items()):
        lines.append(f"    {rule}: {entry['blocks']} blocks over the size limit gave no pairs "
                     f"(largest {entry['largest']} records)")
    histogram = report["weight_histogram"]
    if histogram:
        lines += ["", "match weights of the candidate pairs (bits; | marks the threshold):"]
        top = max(histogram.values())
        threshold = report["threshold_weight"]
        for weight in range(min(histogram), max(histogram) + 1):  # empty bins shown: the valley matters
            pairs = histogram.get(weight, 0)
            bar = "#" * max(1, round(width * pairs / top)) if pairs else ""
            marker = "|" if weight <= threshold < weight + 1 else " "
            lines.append(f"  {weight:>4} {marker} {bar} {pairs}")
    return "\n".join(lines)
