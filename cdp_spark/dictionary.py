"""The data dictionary of the curated tables: every column of every gold table, its type and meaning.

``build(store, cfg)`` reads the schemas of the gold tables present in the lake and explains each column
from, in order: the table's own notes (``TABLES``), the score registry (``scores.library.SCORES``), the
configured custom fields and segments, and the shared column notes (``COMMON``). ``render(rows)`` writes
Markdown (``cdp dictionary``). A column without a meaning is listed with an empty one (a test keeps that
from happening for the demo pipeline's tables).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cdp_spark.config import CdpConfig
from cdp_spark.io.tables import TableStore
from cdp_spark.scores.library import SCORES


@dataclass(frozen=True)
class Column:
    table: str
    column: str
    type: str
    meaning: str


COMMON = {
    "person_id": "stable person id (P + 16 hex); kept across runs, see gold.identity_events",
    "as_of": "business date the row was computed as of (orders up to that day, business time zone)",
    "run_id": "id of the job run that wrote the row (meta.run_manifest)",
    "record_id": "source record: <system>:<source key>",
    "segment": "segment name (scores.segments), or * for all persons",
    "category": "product category",
    "product_id": "product id of the catalog",
    "persona_id": "persona id, stable across runs",
    "persona_name": "persona name: its categories with the highest lift",
    "rank": "rank within the row's group, 1 = first",
    "customers": "customers (persons with at least one purchase)",
    "orders": "number of orders",
}

TABLES: dict[str, tuple[str, dict[str, str]]] = {
    "gold.person_registry": ("one row per source record: the person it belongs to", {
        "system": "source system of the record (crm, ecommerce, loyalty, ...)",
        "source_key": "the record's key in its source",
        "record_hash": "hash of the columns matching looks at; a change marks the record as changed",
    }),
    "gold.person_profile": ("one row per person: surviving attribute values (identity.survivorship)", {
        "record_count": "number of source records of the person",
        "systems": "sorted distinct source systems of the person's records",
        "updated_at": "latest update time among the person's records",
        "email_hash": "HMAC-SHA256 of the normalised e-mail (privacy.hash_key_env)",
        "phone_hash": "HMAC-SHA256 of the E.164 phone",
        "email_norm": "e-mail, normalised (lower case, provider rules)",
        "phone_e164": "phone in E.164 form",
    }),
    "gold.identity_events": ("per run, persons that appeared, grew, merged or split", {
        "event": "new | grew | merged | split | unchanged membership change of the person",
        "predecessors": "previous person ids whose records are now in this person",
        "at": "when the event was recorded",
    }),
    "gold.person_scores": ("one row per person: the score library as of a date (docs/design.md §5)", {}),
    "gold.rfm_cut_points": ("RFM quantile cut points per run", {
        "metric": "recency | frequency | monetary",
        "cut_points": "ascending cut points; a value scores 1 + the number of cut points below it",
        "groups": "number of RFM groups (5, or 3 Klaviyo-style)",
    }),
    "gold.segment_membership": ("one row per person and segment whose rule holds", {}),
    "gold.segment_changes": ("who entered or left each segment on each as-of date", {
        "change": "entered | left",
    }),
    "gold.measures": ("named aggregates (scores.measures) over all persons and per segment", {
        "measure": "measure name", "value": "its value",
    }),
    "gold.person_state_history": ("each person's RFM segment and lifecycle state over time (SCD type 2)", {
        "state": "the tracked column (scores.history_columns)",
        "value": "its value in this period",
        "valid_from": "first as-of date with this value",
        "valid_to": "first as-of date without it (null: still current)",
    }),
    "gold.clv": ("BG/NBD + Gamma-Gamma customer lifetime value per customer", {
        "frequency": "repeat purchase days (purchase days - 1)",
        "recency": "first to last purchase day, in predictions.clv.unit_days units",
        "T": "first purchase day to the as-of date, in units",
        "monetary_value": "mean net amount of the repeat purchase days (0 without repeats)",
        "probability_alive": "probability the customer is still active (BG/NBD)",
        "predicted_purchases": "expected purchase days over the horizon",
        "expected_average_value": "expected value of a purchase (Gamma-Gamma)",
        "predicted_clv": "discounted expected value over the horizon",
    }),
    "gold.clv_model": ("fitted CLV parameters per run", {
        "model": "bgnbd | gamma_gamma", "parameters": "fitted parameters and log-likelihood (JSON)",
    }),
    "gold.person_personas": ("each customer's persona and propensity per category", {
        "propensity": "category -> zero | low | medium | high (the persona's level)",
    }),
    "gold.persona_model": ("one row per persona", {
        "persons": "members of the persona",
        "share": "category -> mean share of the members' purchases",
        "levels": "category -> zero | low | medium | high",
        "cut_points": "tertile cut points of the non-zero shares (low / medium / high)",
    }),
    "gold.product_recommendations": ("top products per person from purchase co-occurrence", {
        "score": "sum of co-buyers with the person's products",
    }),
    "gold.report_segment_metrics": ("Pleasepoint's 9 metrics per group of customers", {
        "grouping": "rfm_segment | hibernation_state | clv_tier | persona_name",
        "average_ticket": "total spend / orders",
        "average_recency_days": "mean days since the last order",
        "total_spend": "sum of net amounts",
        "orders_per_customer": "orders / customers",
        "spend_per_customer": "total spend / customers",
        "customers_share": "customers / all customers",
        "revenue_share": "total spend / all spend",
    }),
    "gold.report_rfm_grid": ("customers per recency x frequency score", {
        "average_amount": "mean total amount of the cell's customers",
    }),
    "gold.report_state_movement": ("persons moving between states since the previous as-of date", {
        "state": "rfm_segment | hibernation_state", "from_value": "value on from_date ((none): absent)",
        "to_value": "value on to_date", "persons": "persons moving", "from_date": "previous as-of date",
        "to_date": "this as-of date",
    }),
    "gold.report_persona_heatmap": ("personas x categories", {
        "persons": "members of the persona", "share": "mean share of purchases", "level": "propensity level",
    }),
    "gold.report_funnel": ("ordered funnels over events", {
        "funnel": "funnel name (reports.funnels)", "step_number": "1-based step", "step": "event type",
        "actors": "persons and anonymous visitors reaching the step",
        "pct_of_first": "actors / actors of step 1", "pct_of_previous": "actors / actors of the previous step",
    }),
    "gold.report_repeat_purchase": ("repeat purchases per category", {
        "buyers": "persons who bought the category", "repeat_buyers": "buyers on 2 or more days",
        "repeat_purchases": "gaps between purchase days of the category",
        "average_days_between": "mean gap in days", "median_days_between": "median gap in days",
    }),
    "gold.report_next_order_products": ("products bought in the same person's next order", {
        "next_product_id": "product of the next order", "share": "orders / orders with the product",
    }),
    "gold.report_same_cart_products": ("products bought in the same order", {
        "other_product_id": "the other product", "confidence": "P(other | product)",
        "lift": "confidence / share of orders with the other product",
    }),
}


def _meaning(table: str, column: str, cfg: CdpConfig, scores: dict[str, str]) -> str:
    notes = TABLES.get(table, ("", {}))[1]
    if column in notes:
        return notes[column]
    if column in scores:
        return scores[column]
    custom = {a.name: f"custom aggregate: {a.function} of {a.table}.{a.column or '*'}"
              for a in cfg.scores.custom_aggregates}
    custom |= {f.name: f"computed field: {f.sql}" for f in [*cfg.scores.computed_fields, *cfg.identity.computed_fields]}
    if column in custom:
        return custom[column]
    if column.endswith("_source") and table == "gold.person_profile":
        return f"source record ({column.removesuffix('_source')}) whose value survived"
    if table == "gold.person_profile" and column in cfg.identity.profile_attributes:
        return f"{column.replace('_', ' ')}, the surviving value (identity.survivorship)"
    if table == "gold.report_segment_metrics" and column == "segment":
        return "the group's value (segment, state, tier or persona)"
    return COMMON.get(column, "")


def build(store: TableStore, cfg: CdpConfig) -> list[Column]:
    scores = {s.column: f"{s.name}: {s.definition}" for s in SCORES}
    rows = []
    for table in sorted(TABLES):
        if not store.exists(table):
            continue
        for field in store.read(table).schema.fields:
            rows.append(Column(table, field.name, field.dataType.simpleString(), _meaning(table, field.name, cfg,
                                                                                          scores)))
    return rows


def render(rows: list[Column]) -> str:
    lines = ["# Data dictionary", "", "Generated by `cdp dictionary` from the tables' schemas and the score "
             "registry. Read the tables with Spark, delta-rs, pyarrow, polars or DuckDB.", ""]
    for table in dict.fromkeys(r.table for r in rows):
        lines += [f"## {table}", "", TABLES[table][0], "", "| column | type | meaning |", "|---|---|---|"]
        lines += [f"| `{r.column}` | `{r.type}` | {r.meaning.replace('|', '/')} |" for r in rows if r.table == table]
        lines.append("")
    return "\n".join(lines)


def write(rows: list[Column], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(rows), encoding="utf-8")
    return path
