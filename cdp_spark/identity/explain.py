"""Why are these records one person? The evidence behind a person id.

``explain(store, person_id)`` returns the person's source records, the accepted edges between them
(with per-field comparison levels and weights, the total match weight and probability, the candidate
sources and any forced rule) and the person's identity events; ``render`` prints it for humans.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyspark.sql import functions as F

from cdp_spark.catalog import IDENTITY_EDGES, IDENTITY_EVENTS, PERSON_REGISTRY
from cdp_spark.io.tables import TableStore


class UnknownPerson(LookupError):
    pass


@dataclass
class Explanation:
    person_id: str
    records: list[dict[str, Any]]
    edges: list[dict[str, Any]]
    events: list[dict[str, Any]]


def explain(store: TableStore, person_id: str) -> Explanation:
    registry = store.read(PERSON_REGISTRY).where(F.col("person_id") == person_id)
    records = [r.asDict() for r in registry.select("record_id", "system", "source_key").orderBy("record_id").collect()]
    if not records:
        raise UnknownPerson(f"no person {person_id} in gold.person_registry")
    ids = [r["record_id"] for r in records]
    edges_df = store.read(IDENTITY_EDGES).where(F.col("record_a").isin(ids) & F.col("record_b").isin(ids))
    edges = [r.asDict(recursive=True) for r in edges_df.orderBy("record_a", "record_b").collect()]
    events = []
    if store.exists(IDENTITY_EVENTS):
        events = [r.asDict() for r in store.read(IDENTITY_EVENTS).where(F.col("person_id") == person_id)
                  .orderBy("at").collect()]
    return Explanation(person_id, records, edges, events)


def _level_name(field: str, level: int, levels: dict[str, list[str]]) -> str:
    if level < 0:
        return "null"
    names = levels.get(field, [])
    return names[level] if level < len(names) else str(level)


def render(explanation: Explanation, levels: dict[str, list[str]] | None = None) -> str:
    """Human-readable explanation; ``levels``: field -> level names, worst first (the comparisons' levels)."""
    levels = levels or {}
    lines = [f"person {explanation.person_id}: {len(explanation.records)} source records"]
    lines += [f"  {r['record_id']}" for r in explanation.records]
    lines.append(f"{len(explanation.edges)} accepted links:")
    for edge in explanation.edges:
        probability = edge.get("match_probability")
        head = f"  {edge['record_a']} <-> {edge['record_b']}"
        if probability is not None:
            head += f"  weight {edge['match_weight']:.2f}  probability {probability:.6f}"
        if edge.get("forced"):
            head += f"  forced {edge['forced']}"
        head += f"  via {', '.join(edge.get('sources') or [])}"
        lines.append(head)
        levels_of_edge = edge.get("levels") or {}
        weights = edge.get("field_weights") or {}
        for field in sorted(levels_of_edge):
            lines.append(f"      {field:<18} {_level_name(field, int(levels_of_edge[field]), levels):<26} "
                         f"{weights.get(field, 0.0):+7.2f}")
    if explanation.events:
        lines.append("events:")
        lines += [f"  {e['at']}  {e['event']}  from {', '.join(e['predecessors']) or '-'}" for e in explanation.events]
    return "\n".join(lines)
