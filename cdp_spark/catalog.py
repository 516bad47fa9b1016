"""The table catalog: every table of the lake declared once (docs/design.md §1).

A table's name is ``<layer>.<table>``. Each spec says what one row is, its key columns, the schema where rows
are written from the driver (the others take the schema of the frame that builds them), the meaning of its
own columns (the data dictionary, ``cdp dictionary``, adds the score registry's and the config's), and the
quality suite the project ships for it (``conf/expectations/<name>.yaml``). The warehouse takes a synced
table's key from here unless ``warehouse.keys`` overrides it.

Per-entity tables (``bronze.<entity>``, ``silver.<entity>``, ``quarantine.<entity>``) follow the source
contracts of the config: :func:`bronze_of`, :func:`silver_of`, :func:`quarantine_of`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pyspark.sql import types as T


@dataclass(frozen=True)
class TableSpec:
    name: str
    description: str
    keys: tuple[str, ...] = ()
    schema: T.StructType | None = None
    columns: Mapping[str, str] = field(default_factory=dict)
    suite: bool = False  # a suite ships in conf/expectations/<name>.yaml; validate publishes the table

    @property
    def layer(self) -> str:
        return self.name.split(".", 1)[0]


def _fields(*columns: tuple[str, T.DataType]) -> T.StructType:
    return T.StructType([T.StructField(name, kind) for name, kind in columns])


STRING, LONG, INT, DATE, TIMESTAMP = T.StringType(), T.LongType(), T.IntegerType(), T.DateType(), T.TimestampType()

# identity (identity/, pipelines/resolve.py)
PERSON_REGISTRY = "gold.person_registry"
PERSON_PROFILE = "gold.person_profile"
IDENTITY_EVENTS = "gold.identity_events"
IDENTITY_EDGES = "silver.identity_edges"
IDENTITY_MODEL = "silver.identity_model"
# scores (scores/, pipelines/score.py)
PERSON_SCORES = "gold.person_scores"
RFM_CUT_POINTS = "gold.rfm_cut_points"
SEGMENT_MEMBERSHIP = "gold.segment_membership"
SEGMENT_CHANGES = "gold.segment_changes"
MEASURES = "gold.measures"
STATE_HISTORY = "gold.person_state_history"
# predictions (predict/, pipelines/predict.py)
CLV = "gold.clv"
CLV_MODEL = "gold.clv_model"
PERSON_PERSONAS = "gold.person_personas"
PERSONA_MODEL = "gold.persona_model"
RECOMMENDATIONS = "gold.product_recommendations"
# quality and bookkeeping
QUALITY_RESULTS = "quality.results"
PUBLISHED = "meta.published"
RUN_MANIFEST = "meta.run_manifest"
INGESTION_LOG = "meta.ingestion_log"
OBJECT_MANIFEST = "meta.object_manifest"
SUPPRESSION = "meta.suppression"
ERASURE_RECEIPTS = "meta.erasure_receipts"
SYNC_LOG = "meta.sync_log"
EXPORT_LOG = "meta.export_log"
REPORT_TABLES = ("report_headlines", "report_segment_metrics", "report_rfm_grid", "report_state_movement",
                 "report_persona_heatmap", "report_funnel", "report_repeat_purchase", "report_next_order_products",
                 "report_same_cart_products")

_SPECS = [
    TableSpec(PERSON_REGISTRY, "one row per source record: the person it belongs to", ("record_id",), columns={
        "system": "source system of the record (crm, ecommerce, loyalty, ...)",
        "source_key": "the record's key in its source",
        "record_hash": "hash of the columns matching looks at; a change marks the record as changed",
    }, suite=True),
    TableSpec(PERSON_PROFILE, "one row per person: surviving attribute values (identity.survivorship)",
              ("person_id",), columns={
                  "record_count": "number of source records of the person",
                  "systems": "sorted distinct source systems of the person's records",
                  "updated_at": "latest update time among the person's records",
                  "email_hash": "HMAC-SHA256 of the normalised e-mail (privacy.hash_key_env)",
                  "phone_hash": "HMAC-SHA256 of the E.164 phone",
                  "email_norm": "e-mail, normalised (lower case, provider rules)",
                  "phone_e164": "phone in E.164 form",
              }, suite=True),
    TableSpec(IDENTITY_EVENTS, "per run, persons that appeared, grew, merged or split", ("run_id", "person_id"),
              columns={
                  "event": "new | grew | merged | split | unchanged membership change of the person",
                  "predecessors": "previous person ids whose records are now in this person",
                  "at": "when the event was recorded",
              }),
    TableSpec(IDENTITY_EDGES, "accepted record pairs with their evidence (cdp explain)", ("record_a", "record_b")),
    TableSpec(IDENTITY_MODEL, "the fitted matching model and the run's matching counts, one row per run",
              schema=_fields(("run_id", STRING), ("model", STRING), ("counts", STRING), ("fitted_at", TIMESTAMP))),
    TableSpec(PERSON_SCORES, "one row per person: the score library as of a date (docs/design.md §5)",
              ("person_id",), suite=True),
    TableSpec(RFM_CUT_POINTS, "RFM quantile cut points per run", ("run_id", "metric"), schema=_fields(
        ("run_id", STRING), ("as_of", DATE), ("metric", STRING), ("cut_points", T.ArrayType(T.DoubleType())),
        ("groups", INT)), columns={
        "metric": "recency | frequency | monetary",
        "cut_points": "ascending cut points; a value scores 1 + the number of cut points below it",
        "groups": "number of RFM groups (5, or 3 Klaviyo-style)",
    }),
    TableSpec(SEGMENT_MEMBERSHIP, "one row per person and segment whose rule holds", ("person_id", "segment"),
              suite=True),
    TableSpec(SEGMENT_CHANGES, "who entered or left each segment on each as-of date",
              ("as_of", "person_id", "segment"), columns={"change": "entered | left"}),
    TableSpec(MEASURES, "named aggregates (scores.measures) over all persons and per segment",
              ("as_of", "measure", "segment"), columns={"measure": "measure name", "value": "its value"}),
    TableSpec(STATE_HISTORY, "each person's RFM segment and lifecycle state over time (SCD type 2)",
              ("person_id", "state", "valid_from"), columns={
                  "state": "the tracked column (scores.history_columns)",
                  "value": "its value in this period",
                  "valid_from": "first as-of date with this value",
                  "valid_to": "first as-of date without it (null: still current)",
              }),
    TableSpec(CLV, "BG/NBD + Gamma-Gamma customer lifetime value per customer", ("person_id",), columns={
        "frequency": "repeat purchase days (purchase days - 1)",
        "recency": "first to last purchase day, in predictions.clv.unit_days units",
        "T": "first purchase day to the as-of date, in units",
        "monetary_value": "mean net amount of the repeat purchase days (0 without repeats)",
        "probability_alive": "probability the customer is still active (BG/NBD)",
        "predicted_purchases": "expected purchase days over the horizon",
        "expected_average_value": "expected value of a purchase (Gamma-Gamma)",
        "predicted_clv": "discounted expected value over the horizon",
    }, suite=True),
    TableSpec(CLV_MODEL, "fitted CLV parameters per run", ("run_id", "model"), schema=_fields(
        ("run_id", STRING), ("model", STRING), ("parameters", STRING), ("as_of", DATE)), columns={
        "model": "bgnbd | gamma_gamma", "parameters": "fitted parameters and log-likelihood (JSON)",
    }),
    TableSpec(PERSON_PERSONAS, "each customer's persona and propensity per category", ("person_id",), columns={
        "propensity": "category -> zero | low | medium | high (the persona's level)",
    }),
    TableSpec(PERSONA_MODEL, "one row per persona", ("persona_id",), columns={
        "persons": "members of the persona",
        "share": "category -> mean share of the members' purchases",
        "levels": "category -> zero | low | medium | high",
        "cut_points": "tertile cut points of the non-zero shares (low / medium / high)",
    }),
    TableSpec(RECOMMENDATIONS, "top products per person from purchase co-occurrence", ("person_id", "rank"),
              columns={"score": "sum of co-buyers with the person's products"}),
    TableSpec("gold.report_segment_metrics", "Pleasepoint's 9 metrics per group of customers",
              ("grouping", "segment"), columns={
                  "grouping": "rfm_segment | hibernation_state | clv_tier | persona_name",
                  "average_ticket": "total spend / orders",
                  "average_recency_days": "mean days since the last order",
                  "total_spend": "sum of net amounts",
                  "orders_per_customer": "orders / customers",
                  "spend_per_customer": "total spend / customers",
                  "customers_share": "customers / all customers",
                  "revenue_share": "total spend / all spend",
              }),
    TableSpec("gold.report_headlines", "the report's headline figures per as-of date, with the previous date's",
              ("metric", "as_of"), columns={
                  "metric": "persons | buyers | revenue | files_ingested | rows_quarantined (both of the last "
                            "ingest run) | suites_passed (tables whose last validated version was published)",
                  "value": "the figure as of this report",
                  "previous_value": "the figure as of the newest earlier date (null for the first)",
                  "previous_as_of": "that earlier as-of date",
              }),
    TableSpec("gold.report_rfm_grid", "customers per recency x frequency score", columns={
        "average_amount": "mean total amount of the cell's customers",
    }),
    TableSpec("gold.report_state_movement", "persons moving between states since the previous as-of date", columns={
        "state": "rfm_segment | hibernation_state", "from_value": "value on from_date ((none): absent)",
        "to_value": "value on to_date", "persons": "persons moving", "from_date": "previous as-of date",
        "to_date": "this as-of date",
    }),
    TableSpec("gold.report_persona_heatmap", "personas x categories", columns={
        "persons": "members of the persona", "share": "mean share of purchases", "level": "propensity level",
    }),
    TableSpec("gold.report_funnel", "ordered funnels over events", ("funnel", "step_number"), columns={
        "funnel": "funnel name (reports.funnels)", "step_number": "1-based step", "step": "event type",
        "actors": "persons and anonymous visitors reaching the step",
        "pct_of_first": "actors / actors of step 1", "pct_of_previous": "actors / actors of the previous step",
    }),
    TableSpec("gold.report_repeat_purchase", "repeat purchases per category", ("category",), columns={
        "buyers": "persons who bought the category", "repeat_buyers": "buyers on 2 or more days",
        "repeat_purchases": "gaps between purchase days of the category",
        "average_days_between": "mean gap in days", "median_days_between": "median gap in days",
    }),
    TableSpec("gold.report_next_order_products", "products bought in the same person's next order", columns={
        "next_product_id": "product of the next order", "share": "orders / orders with the product",
    }),
    TableSpec("gold.report_same_cart_products", "products bought in the same order", columns={
        "other_product_id": "the other product", "confidence": "P(other | product)",
        "lift": "confidence / share of orders with the other product",
    }),
    TableSpec(QUALITY_RESULTS, "one row per expectation checked on a table version", schema=_fields(
        ("run_id", STRING), ("table_name", STRING), ("table_version", LONG), ("expectation", STRING),
        ("kwargs", STRING), ("success", T.BooleanType()), ("element_count", LONG), ("unexpected_count", LONG),
        ("observed_value", T.DoubleType()), ("validated_at", TIMESTAMP), ("action", STRING))),
    TableSpec(PUBLISHED, "table versions that passed their suite: what sync and export deliver",
              ("table_name", "table_version"), schema=_fields(
                  ("table_name", STRING), ("table_version", LONG), ("run_id", STRING), ("published_at", TIMESTAMP))),
    TableSpec(RUN_MANIFEST, "one row per stage run: versions read and written, settings hash, counts", schema=_fields(
        ("run_id", STRING), ("job", STRING), ("status", STRING), ("as_of", DATE), ("started_at", TIMESTAMP),
        ("finished_at", TIMESTAMP), ("config_hash", STRING), ("code_version", STRING), ("engine", STRING),
        ("input_versions", STRING), ("output_versions", STRING), ("row_counts", STRING), ("message", STRING))),
    TableSpec(INGESTION_LOG, "one row per landing file, object or JDBC read: rows read, accepted, quarantined",
              schema=_fields(
                  ("run_id", STRING), ("source", STRING), ("entity", STRING), ("file", STRING), ("sha256", STRING),
                  ("size_bytes", LONG), ("status", STRING), ("rows_read", LONG), ("rows_accepted", LONG),
                  ("rows_quarantined", LONG), ("rescued_columns", STRING), ("message", STRING),
                  ("ingested_at", TIMESTAMP), ("rows_suppressed", LONG))),
    TableSpec(OBJECT_MANIFEST, "every object version seen in object storage and what became of it",
              ("bucket", "key", "etag"), schema=_fields(
                  ("bucket", STRING), ("key", STRING), ("etag", STRING), ("size_bytes", LONG),
                  ("last_modified", TIMESTAMP), ("source", STRING), ("sha256", STRING), ("status", STRING),
                  ("bronze_version", LONG), ("run_id", STRING), ("ingested_at", TIMESTAMP))),
    TableSpec(SUPPRESSION, "keyed hashes of erased identifiers; ingest drops rows that carry one", ("kind", "hash"),
              schema=_fields(("kind", STRING), ("hash", STRING), ("erasure_id", STRING),
                             ("suppressed_at", TIMESTAMP))),
    TableSpec(ERASURE_RECEIPTS, "per erasure, the rows removed from each table", ("erasure_id", "table_name"),
              schema=_fields(("erasure_id", STRING), ("table_name", STRING), ("table_version", LONG),
                             ("rows_removed", LONG), ("erased_at", TIMESTAMP))),
    TableSpec(SYNC_LOG, "published versions delivered to the warehouse", ("table_name", "table_version", "target"),
              schema=_fields(
                  ("run_id", STRING), ("table_name", STRING), ("table_version", LONG), ("target", STRING),
                  ("target_table", STRING), ("rows", LONG), ("synced_at", TIMESTAMP), ("mode", STRING),
                  ("upserted", LONG), ("deleted", LONG))),
    TableSpec(EXPORT_LOG, "published versions written as export files", ("table_name", "table_version", "target"),
              schema=_fields(
                  ("run_id", STRING), ("table_name", STRING), ("table_version", LONG), ("target", STRING),
                  ("rows", LONG), ("files", INT), ("exported_at", TIMESTAMP))),
]
TABLES: dict[str, TableSpec] = {spec.name: spec for spec in _SPECS}


def spec(name: str) -> TableSpec:
    """The declared table ``name``; a KeyError names the tables there are."""
    if name not in TABLES:
        raise KeyError(f"{name} is not in the table catalog (cdp_spark/catalog.py); tables: {sorted(TABLES)}")
    return TABLES[name]


def declared_schema(name: str) -> T.StructType:
    """The declared schema of a table written from driver-held rows."""
    declared = spec(name).schema
    if declared is None:
        raise KeyError(f"{name} has no declared schema: it takes the schema of the frame that builds it")
    return declared


def bronze_of(entity: str) -> str:
    """The raw rows of a source entity, as accepted by ingest."""
    return f"bronze.{entity}"


def silver_of(entity: str) -> str:
    """A source entity normalised, one row per source key."""
    return f"silver.{entity}"


def quarantine_of(entity: str) -> str:
    """The rows of a source entity ingest set aside, with reason, detail, raw text, file and line."""
    return f"quarantine.{entity}"


def quarantine_of_table(table: str) -> str:
    """Where validate sets aside the rows of ``table`` that fail a quarantine rule."""
    return "quarantine." + table.replace(".", "_")


def report_table(name: str) -> str:
    return f"gold.{name}"
