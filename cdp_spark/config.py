"""Typed, layered configuration.

Layers, later wins: every ``*.yaml`` in ``conf/base`` (alphabetical), then every ``*.yaml`` in the
environment overlay ``conf/<env>``, then CLI overrides ``key.path=value`` (values parsed as YAML).
Every model forbids unknown keys; a wrong key or type raises :class:`ConfigError` naming the file
(or the CLI override) that set it and the dotted key.
Secrets are never values here: only the *names* of environment variables that hold them.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

SPARK_TYPES = ("string", "int", "long", "double", "boolean", "date", "timestamp")


class ConfigError(ValueError):
    """A configuration file or override is wrong; the message names the file and the key."""


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class SparkSettings(Model):
    """Session settings. ``master`` stays unset on clusters, where spark-submit decides."""

    master: str | None = None
    """e.g. local[2]; leave null on clusters (spark-submit, Databricks, EMR decide)"""
    app_name: str = "cdp-spark"
    """Spark application name"""
    shuffle_partitions: int = Field(8, ge=1)
    """spark.sql.shuffle.partitions"""
    driver_memory: str | None = None
    """spark.driver.memory in local mode (ignored once a JVM runs)"""
    jars: list[str] = Field(default_factory=list)
    """extra jars on the classpath, e.g. the JDBC driver; missing files are skipped"""
    conf: dict[str, str] = Field(default_factory=dict)
    """any other Spark setting, verbatim"""


class StorageSettings(Model):
    """Where the lake lives and which Delta engine writes it (DESIGN §2)."""

    lake_root: str = "{data_dir}/lake"
    """root of the Delta tables: <lake_root>/<layer>/<table>; a path or s3:// URI"""
    engine: Literal["auto", "spark", "rs"] = "auto"
    """Delta writer: spark (delta-spark jars), rs (delta-rs commits), auto (spark when its jars load)"""
    checkpoint_dir: str = "{data_dir}/checkpoints"
    """Spark checkpoints of iterative jobs (connected components)"""


class SourceSettings(Model):
    """One landing source: a file per entity, mapped by header name (DESIGN §1, seeds' file rules)."""

    entity: str
    """bronze/silver table the rows land in (customers, orders, order_items, products, stores, events)"""
    system: str = Field(description="name other tables use for this source, e.g. orders.customer_source")
    format: Literal["csv", "json"]
    """csv (header line, UTF-8 with or without BOM) or json (one object per line)"""
    path: str = Field(description="file or glob, relative to the landing directory unless absolute")
    separator: str | None = None
    """CSV separator; null = detected: the candidate that splits the header line into the most fields"""
    encoding: Literal["utf-8"] = "utf-8"
    """UTF-8 with or without BOM; UTF-16 files and non-UTF-8 headers are rejected, bad lines quarantined"""
    source_key: list[str] = Field(min_length=1)
    """columns that identify a row in the source"""
    columns: dict[str, str] = Field(min_length=1)
    """source column -> type (string, int, long, double, boolean, date, timestamp, decimal(p,s))"""
    required: list[str] = Field(default_factory=list)
    """columns that must be present and non-empty; other rows are quarantined"""

    @field_validator("columns")
    @classmethod
    def _known_types(cls, columns: dict[str, str]) -> dict[str, str]:
        for name, type_name in columns.items():
            if type_name not in SPARK_TYPES and not type_name.startswith("decimal("):
                raise ValueError(f"column '{name}' has unknown type '{type_name}'; use one of {SPARK_TYPES}")
        return columns

    @model_validator(mode="after")
    def _keys_are_columns(self) -> SourceSettings:
        missing = [k for k in [*self.source_key, *self.required] if k not in self.columns]
        if missing:
            raise ValueError(f"source_key/required columns {missing} are not declared in 'columns'")
        return self


class JdbcSourceSettings(Model):
    """A table read over JDBC: partitioned, incremental by a watermark column with an overlap window."""

    entity: str
    """bronze/silver table the rows land in"""
    system: str
    """name other tables use for this source"""
    url: str = Field(description="JDBC URL without credentials")
    driver: str = "org.postgresql.Driver"
    """JDBC driver class (its jar in spark.jars)"""
    table: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
    """schema.table to read"""
    user_env: str
    """environment variable holding the user name"""
    password_env: str
    """environment variable holding the password"""
    source_key: list[str] = Field(min_length=1)
    """columns that identify a row in the source"""
    columns: dict[str, str] = Field(min_length=1)
    """column -> type, as for file sources"""
    watermark_column: str | None = None
    """timestamp column: read only rows changed since the stored watermark (minus the overlap)"""
    overlap_seconds: int = Field(3600, ge=0)
    """re-read this much before the watermark (late commits); duplicates are merged by key"""
    partition_column: str | None = Field(None, description="numeric, date or timestamp column to split reads")
    num_partitions: int = Field(4, ge=1)
    """parallel reads split on partition_column"""
    fetch_size: int = Field(10_000, ge=1)
    """rows per JDBC round trip"""

    @model_validator(mode="after")
    def _columns_known(self) -> JdbcSourceSettings:
        named = [*self.source_key, *(c for c in (self.watermark_column, self.partition_column) if c)]
        missing = [c for c in named if c not in self.columns]
        if missing:
            raise ValueError(f"columns {missing} are not declared in 'columns'")
        if any(t not in SPARK_TYPES and not t.startswith("decimal(") for t in self.columns.values()):
            raise ValueError(f"column types must be among {SPARK_TYPES} or decimal(p,s)")
        if any(ch in self.url for ch in ("password=", "user=")):
            raise ValueError("url must not carry credentials; use user_env/password_env")
        return self


class EmailRule(Model):
    """How a mail provider treats addresses: Gmail ignores dots and +tags in the local part."""

    strip_dots: bool = False
    """ignore dots in the local part"""
    strip_plus_tag: bool = True
    """drop +tag from the local part"""
    canonical_domain: str | None = None
    """rewrite the domain to this one (googlemail.com -> gmail.com)"""


class ValueTransform(Model):
    """Config-driven value transforms applied to silver person records (Klaviyo's data transformation).

    format:      ``column`` to ``upper`` | ``lower`` | ``title`` | ``trim``
    standardise: ``column`` values replaced through ``values`` (matched case-insensitively)
    merge:       ``columns`` joined by ``separator`` into ``into``
    """

    op: Literal["format", "standardise", "merge"]
    """format, standardise or merge"""
    column: str | None = None
    """format / standardise: the column changed"""
    style: Literal["upper", "lower", "title", "trim"] | None = None
    """format: the style"""
    values: dict[str, str] = Field(default_factory=dict)
    """standardise: value -> replacement"""
    columns: list[str] = Field(default_factory=list)
    """merge: the columns joined"""
    separator: str = " "
    """merge: text between the values"""
    into: str | None = None
    """merge: the column written"""

    @model_validator(mode="after")
    def _complete(self) -> ValueTransform:
        if self.op == "format" and (not self.column or not self.style):
            raise ValueError("format needs 'column' and 'style'")
        if self.op == "standardise" and (not self.column or not self.values):
            raise ValueError("standardise needs 'column' and 'values'")
        if self.op == "merge" and (len(self.columns) < 2 or not self.into):
            raise ValueError("merge needs at least two 'columns' and 'into'")
        return self


class ComparisonSettings(Model):
    """One field compared between two records. Kinds and their levels (best last):
    name: different / JW >= low / JW >= high / same nickname / exact;  email: different / same local part
    or edit distance <= 1 / exact;  phone: different / same last 7 digits / exact;  date: different /
    2 of 3 parts or day-month swapped / exact;  postcode: different / same first 2 characters / exact;
    exact: different / exact.  A null on either side is its own level and weighs nothing."""

    field: str
    """silver person column compared"""
    kind: Literal["name", "email", "phone", "date", "postcode", "exact"]
    """comparison levels (see above)"""
    term_frequency: bool = False
    """adjust an exact match's weight by how common the value is"""
    canonical: str | None = Field(None, description="name kind: column whose equality is the nickname level")


class SnmPass(Model):
    """One Sorted Neighbourhood pass: sort by ``key`` (a SQL expression over the record's columns),
    pair each record with the next ``window - 1``, inside partitions of the key's first ``prefix_length``
    characters."""

    name: str
    """pass name, recorded on the edges it finds"""
    key: str
    """SQL sort key over the record's columns"""
    window: int = Field(5, ge=2, le=50)
    """each record is paired with the next window - 1 records"""
    prefix_length: int = Field(1, ge=0)
    """partition by this many first characters of the key (0 = one partition)"""


class MatchingSettings(Model):
    blocking_keys: list[str] = Field(default_factory=lambda: ["email_norm", "phone_e164"])
    """exact-key blocking: records sharing a value become candidate pairs"""
    snm_passes: list[SnmPass] = Field(default_factory=list)
    """Sorted Neighbourhood passes that add candidate pairs"""
    comparisons: list[ComparisonSettings] = Field(min_length=1)
    """fields compared and how; each gives a level with an m/u weight"""
    jaro_winkler_high: float = Field(0.92, gt=0, le=1)
    """name kind: upper Jaro-Winkler band"""
    jaro_winkler_low: float = Field(0.85, gt=0, le=1)
    """name kind: lower Jaro-Winkler band"""
    match_probability: float = Field(0.99, gt=0, lt=1, description="accept pairs at or above this probability")
    tf_max_boost: float = Field(1.0, ge=0, description="bits a rare value may add to an exact match's weight")
    tf_max_penalty: float = Field(5.0, ge=0, description="bits a common value may take from it")
    force_match: list[str] = Field(default_factory=list, description="SQL over l.* and r.*: always a match")
    force_nonmatch: list[str] = Field(default_factory=list, description="SQL over l.* and r.*: never a match")
    u_sample_pairs: int = Field(200_000, ge=1000)
    """random pairs sampled to estimate u"""
    em_iterations: int = Field(30, ge=1)
    """EM iterations for m"""
    max_cluster_size: int = Field(50, ge=2, description="larger clusters are split back to forced edges")
    max_key_group: int = Field(50, ge=2, description="a key value shared by more records is a junk identifier")
    broadcast_records: int = Field(
        500_000, ge=0, description="up to this many records, the compared columns are broadcast to the pair "
        "comparison instead of shuffling the candidate pairs twice")
    seed: int = 42
    """seed of the u sample"""


class SurvivorshipRule(Model):
    rule: Literal["most_recent", "source_priority", "most_frequent", "most_complete"] = "most_recent"
    """most_recent, source_priority (first source in the list that has a value), most_frequent, most_complete"""
    source_priority: list[str] = Field(default_factory=list)
    """source_priority: systems, best first"""


class ComputedField(Model):
    """A column computed with SQL from the current table's own columns; ``{as_of}`` is the run's date."""

    name: str = Field(pattern=r"^[a-z_][a-z0-9_]*$")
    """column added"""
    sql: str
    """SQL expression over the table's own columns"""


class IdentitySettings(Model):
    """Identity resolution (DESIGN §4): normalisation and transforms, exact keys or probabilistic matching,
    connected components, stable person ids, survivorship into gold.person_profile."""

    person_sources: list[str] = Field(min_length=1, description="silver entities that describe persons")
    match_keys: list[str] = Field(default_factory=lambda: ["email_norm", "phone_e164"])
    """exact keys that link records when identity.matching is null (matching uses its blocking_keys)"""
    default_region: str = Field("ES", description="phone numbers without a country prefix are read as here")
    email_rules: dict[str, EmailRule] = Field(default_factory=dict, description="per mail domain")
    nicknames: dict[str, str] = Field(default_factory=dict, description="nickname -> canonical given name")
    transforms: list[ValueTransform] = Field(default_factory=list)
    """value transforms applied to person records before matching"""
    matching: MatchingSettings | None = None
    """probabilistic matching (Fellegi-Sunter); null = exact keys only"""
    incremental: bool = Field(True, description="once a registry and a model exist, compare only new and "
                                                "changed records (with the stored model)")
    max_cluster_iterations: int = Field(40, ge=1)
    """cap on label-propagation rounds of connected components in Spark"""
    checkpoint_every: int = Field(5, ge=1)
    """cut the lineage every this many rounds"""
    driver_cluster_max_edges: int = Field(
        2_000_000, ge=0, description="up to this many accepted edges, connected components run on the driver "
        "(scipy, one collect); above it, iterative label propagation in Spark. 0 = always Spark")
    profile_attributes: list[str] = Field(min_length=1)
    """columns of gold.person_profile chosen by survivorship"""
    computed_fields: list[ComputedField] = Field(default_factory=list, description="on gold.person_profile")
    survivorship_default: SurvivorshipRule = SurvivorshipRule()
    """rule for attributes without their own"""
    survivorship: dict[str, SurvivorshipRule] = Field(default_factory=dict)
    """rule per attribute"""


class LifecycleSettings(Model):
    """Pleasepoint hibernation states on days since the last order: active < inactive_after_days <=
    inactive < hibernating_after_days <= hibernating <= lost_after_days < lost."""

    inactive_after_days: int = Field(182, ge=1)
    """days since the last order from which a customer is inactive"""
    hibernating_after_days: int = Field(365, ge=1)
    """... hibernating"""
    lost_after_days: int = Field(730, ge=1)
    """... lost (after this many days)"""

    @model_validator(mode="after")
    def _ordered(self) -> LifecycleSettings:
        if not self.inactive_after_days < self.hibernating_after_days < self.lost_after_days:
            raise ValueError("thresholds must grow: inactive_after_days < hibernating_after_days < lost_after_days")
        return self


class RfmSegment(Model):
    name: str
    """segment name"""
    rule: str = Field(description="SQL over r, f and m (the 1..groups scores), e.g. 'r >= 4 AND f >= 4'")


class RfmSettings(Model):
    """RFM scores from stored quantile cut points: 5 groups (quintiles), or 3 for Klaviyo-style groups."""

    groups: Literal[3, 5] = 5
    """5 = quintiles, 3 = Klaviyo-style low/medium/high"""
    segments: list[RfmSegment] = Field(min_length=1, description="ordered: the first rule that holds names the "
                                                                 "segment")


class CustomAggregate(Model):
    """A per-person aggregate over another table, e.g. the sum of subscription amounts where the product is
    'Marketing CRM'. Rows reach persons through the registry: (system, key) -> person_id, the system from
    ``system_column`` or the fixed ``system``."""

    name: str = Field(pattern=r"^[a-z_][a-z0-9_]*$")
    """column added to gold.person_scores"""
    table: str
    """table aggregated (layer.table)"""
    function: Literal["sum", "avg", "min", "max", "count", "last"]
    """sum, avg, min, max, count or last (by order_by)"""
    column: str | None = None
    """column aggregated (not for count)"""
    order_by: str | None = Field(None, description="timestamp column choosing the last value")
    filter: str | None = Field(None, description="SQL condition over the table's columns")
    key_column: str
    """column holding the source key of the person"""
    system_column: str | None = None
    """column holding the source system of the key"""
    system: str | None = None
    """fixed source system of the key"""

    @model_validator(mode="after")
    def _complete(self) -> CustomAggregate:
        if (self.system_column is None) == (self.system is None):
            raise ValueError("set exactly one of system_column and system")
        if self.function != "count" and not self.column:
            raise ValueError(f"function {self.function} needs 'column'")
        if self.function == "last" and not self.order_by:
            raise ValueError("function last needs 'order_by'")
        return self




class SegmentRule(Model):
    """A named segment: SQL over gold.person_profile and gold.person_scores columns, e.g.
    ``loyalty_points > 1000``."""

    name: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_ -]*$")
    """segment name"""
    rule: str
    """SQL condition over gold.person_profile and gold.person_scores columns"""


class Measure(Model):
    """A named business aggregate over the persons (profile + scores columns), globally and per segment,
    e.g. ``{name: revenue, sql: "sum(orders_total_amount)"}``. Per-person measures are custom aggregates."""

    name: str = Field(pattern=r"^[a-z_][a-z0-9_]*$")
    """measure name"""
    sql: str = Field(description="an aggregate SQL expression")


class ScoreSettings(Model):
    business_timezone: str = "UTC"
    """time zone of the business day (order dates, as-of cut-off)"""
    custom_aggregates: list[CustomAggregate] = Field(default_factory=list)
    """per-person aggregates over other tables"""
    computed_fields: list[ComputedField] = Field(default_factory=list, description="on gold.person_scores")
    lifecycle: LifecycleSettings = LifecycleSettings()
    """hibernation state thresholds"""
    rfm: RfmSettings | None = None
    """RFM scores and named segments; null = no RFM"""
    segments: list[SegmentRule] = Field(default_factory=list)
    """named segments over profile and score columns"""
    measures: list[Measure] = Field(default_factory=list)
    """named aggregates per segment and overall"""
    history_columns: list[str] = Field(default_factory=lambda: ["rfm_segment", "hibernation_state"],
                                       description="person_scores columns kept with valid_from / valid_to")
    orders_entity: str = "orders"
    """silver table holding the orders"""
    order_customer_source: str = Field("customer_source", description="orders column naming the source")
    order_customer_key: str = Field("customer_key", description="orders column holding the source key")


class ClvSettings(Model):
    """BG/NBD + Gamma-Gamma (DESIGN §5): time in units of ``unit_days`` (7 = weeks, as in the paper)."""

    unit_days: float = Field(7.0, gt=0)
    """length of a time unit in days"""
    horizon_units: int = Field(52, ge=1, description="predict purchases and value over this many units")
    discount_per_unit: float = Field(0.0, ge=0, lt=1, description="discount rate per unit for the CLV")
    min_customers: int = Field(100, ge=1, description="refuse to fit BG/NBD on fewer customers")
    min_repeat_customers: int = Field(20, ge=1, description="refuse to fit on fewer repeat buyers")


class PersonaSettings(Model):
    """Customer personas (Pleasepoint): k-means on the customer x category purchase-frequency matrix."""

    k: int = Field(5, ge=2, le=12)
    """number of personas (clusters)"""
    scaling: Literal["none", "normalise", "standardise"] = Field(
        "normalise", description="normalise: each customer's row sums to 1; standardise: each category z-scored")
    seed: int = 7
    """k-means seed (fixed: reruns give the same personas)"""
    max_iterations: int = Field(50, ge=1)
    """k-means iterations"""
    top_categories_in_name: int = Field(2, ge=1, le=5)
    """categories named in a persona's name"""


class RecommendationSettings(Model):
    """Top-N products per person from purchase co-occurrence (people who bought X also bought Y)."""

    top_n: int = Field(5, ge=1, le=50)
    """products recommended per person"""
    max_products_per_person: int = Field(50, ge=2, description="most recent distinct products considered")
    min_co_buyers: int = Field(2, ge=1, description="a pair of products needs this many common buyers")
    max_in_memory_pairs: int = Field(
        5_000_000, ge=0, description="up to this many product pairs, scoring is a broadcast sparse-matrix "
                                     "product per batch of persons; above it, a Spark join")


class PredictionSettings(Model):
    clv: ClvSettings | None = ClvSettings()
    """BG/NBD + Gamma-Gamma CLV; null = off"""
    personas: PersonaSettings | None = PersonaSettings()
    """k-means customer personas; null = off"""
    recommendations: RecommendationSettings | None = RecommendationSettings()
    """co-occurrence product recommendations; null = off"""


class QualitySettings(Model):
    enabled: bool = True
    """validate gold tables before publishing (false: publish without a gate)"""
    suites_dir: str = "{conf_dir}/expectations"
    """folder of expectation suites, one <layer>.<table>.yaml per table"""


class ExportSettings(Model):
    """Published table versions as files for COPY-style loads: ``<target>/<table>/v<version>/`` with a
    manifest written last."""

    enabled: bool = False
    """write exports in the pipeline's export stage"""
    target: str = Field("{data_dir}/exports", description="a local folder or an s3:// prefix")
    tables: list[str] = Field(default_factory=list)
    """tables exported (published versions only)"""
    formats: list[Literal["parquet", "csv"]] = Field(["parquet"], min_length=1)
    """parquet and/or csv"""
    columns: dict[str, list[str]] = Field(default_factory=dict, description="column allow-list per table")


class PrivacySettings(Model):
    """Keyed hashing (HMAC-SHA256) of normalised identifiers; the key only by environment variable name."""

    enabled: bool = True
    """add keyed hashes of identifiers to the profile"""
    hash_key_env: str = "CDP_HASH_KEY"
    """environment variable holding the HMAC key"""
    hashed_columns: dict[str, str] = Field(
        default_factory=lambda: {"email_norm": "email_hash", "phone_e164": "phone_hash"},
        description="gold.person_profile column -> its keyed-hash column")
    no_stats_columns: list[str] = Field(
        default_factory=lambda: ["birth_date", "age"],
        description="numeric/date columns that never get min/max statistics in the Delta log (text never does)")

    def key(self) -> bytes:
        value = os.environ.get(self.hash_key_env, "")
        if not value:
            raise ConfigError(f"privacy.hash_key_env names {self.hash_key_env}, which is not set: export a secret "
                              f"key (for example `export {self.hash_key_env}=$(openssl rand -hex 32)`), or set "
                              "privacy.enabled: false")
        return value.encode("utf-8")


class NotificationSettings(Model):
    """An HTTP POST of the run summary after ``cdp run`` (success and failure). The URL may be given as is or,
    when it carries a token, by the name of the environment variable holding it."""

    webhook_url: str | None = None
    """URL the run summary is POSTed to; null = no notification"""
    webhook_url_env: str | None = Field(None, description="environment variable holding the webhook URL")
    timeout_s: float = Field(10.0, gt=0)
    """timeout per POST"""
    attempts: int = Field(3, ge=1, le=10)
    """attempts with backoff"""
    fail_run_on_error: bool = Field(False, description="false: an unreachable webhook is only logged")

    def url(self) -> str | None:
        if self.webhook_url_env:
            value = os.environ.get(self.webhook_url_env)
            if not value:
                raise ConfigError(f"notifications.webhook_url_env names {self.webhook_url_env}, which is not set")
            return value
        return self.webhook_url


class WarehouseSettings(Model):
    """JDBC warehouse sync. Credentials only by environment variable name."""

    enabled: bool = False
    """sync published gold tables in the pipeline's sync stage"""
    url: str = ""
    """JDBC URL of the warehouse, without credentials"""
    driver: str = "org.postgresql.Driver"
    """JDBC driver class"""
    schema_name: str = "cdp"
    """warehouse schema the tables are created in"""
    user_env: str = "CDP_WAREHOUSE_USER"
    """environment variable holding the user name"""
    password_env: str = "CDP_WAREHOUSE_PASSWORD"
    """environment variable holding the password"""
    tables: list[str] = Field(default_factory=list)
    """gold tables synced"""
    keys: dict[str, list[str]] = Field(default_factory=dict, description="primary key per synced table")
    columns: dict[str, list[str]] = Field(
        default_factory=dict, description="column allow-list per synced table (all columns when absent)")
    incremental: bool = Field(True, description="MERGE only the changed rows (the warehouse needs standard "
                                                "MERGE: PostgreSQL 15+, Snowflake, Redshift, BigQuery); "
                                                "false: always replace the whole table")
    batch_size: int = Field(5000, ge=1)
    """rows per JDBC batch"""

    @model_validator(mode="after")
    def _url_when_enabled(self) -> WarehouseSettings:
        if self.enabled and not self.url.startswith("jdbc:"):
            raise ValueError("warehouse.url must be a jdbc: URL when warehouse.enabled is true")
        if any(ch in self.url for ch in ("password=", "user=")):
            raise ValueError("warehouse.url must not carry credentials; use user_env/password_env")
        return self


class FunnelSettings(Model):
    """An ordered funnel over events: a person (or anonymous visitor) reaches step k when they did steps
    1..k in that order, each within ``within_days`` of the first step; an event counts for one step only
    and events without a time for none."""

    name: str = Field(min_length=1)
    """funnel name"""
    steps: list[str] = Field(min_length=2, description="event types, in order")
    within_days: int = Field(30, ge=1)
    """each step must happen within this many days of the first"""


class ReportSettings(Model):
    """``cdp report``: the gold.report_* tables and one self-contained HTML file."""

    output_dir: str = "{data_dir}/reports"
    """folder of the HTML reports"""
    events_entity: str = Field("events", description="silver.<entity> with the events of the funnels")
    event_type_column: str = "event_type"
    """events column with the event type"""
    event_ts_column: str = "event_ts"
    """events column with the event time"""
    anonymous_id_column: str | None = Field("anonymous_id", description="visitor id of events without a customer")
    funnels: list[FunnelSettings] = Field(default_factory=list)
    """funnels reported"""
    top_products: int = Field(5, ge=1, le=50, description="catalog insights: products listed per product")
    min_orders: int = Field(2, ge=1, description="catalog insights: a product pair needs this many orders")
    clv_tiers: list[float] = Field(default_factory=lambda: [0.1, 0.3, 0.6],
                                   description="CLV tiers by predicted-CLV rank: top 10 %, next 20 %, ...")


class PathSettings(Model):
    data_dir: str = "data"
    """root of the demo/local data: landing files, lake, exports (also `--data-dir`)"""
    landing_dir: str = "{data_dir}/landing"
    """where file sources are read from"""
    staging_dir: str = Field("{data_dir}/staging", description="where objects are downloaded before reading")


class ObjectStoreSettings(Model):
    """S3 or an S3-compatible endpoint. Credentials come from the AWS chain (env, profile, role), never here."""

    endpoint_url: str | None = None
    """S3-compatible endpoint (MinIO, moto); null = AWS"""
    region: str = "us-east-1"
    """AWS region"""
    max_attempts: int = Field(5, ge=1, le=20)
    """attempts per request (503 SlowDown, timeouts) with exponential backoff"""
    connect_timeout_s: float = Field(5.0, gt=0)
    """connection timeout per request"""
    read_timeout_s: float = Field(30.0, gt=0)
    """read timeout per request"""
    read_mode: Literal["auto", "direct", "stage"] = Field(
        "auto", description="direct: Spark reads s3a:// itself; stage: boto3 downloads first; auto: direct "
                            "when the session has the S3A filesystem")


class CdpConfig(Model):
    """The whole configuration of one run."""

    paths: PathSettings = PathSettings()
    spark: SparkSettings = SparkSettings()
    storage: StorageSettings = StorageSettings()
    sources: dict[str, SourceSettings] = Field(default_factory=dict)
    """file and object-storage sources by name"""
    jdbc_sources: dict[str, JdbcSourceSettings] = Field(default_factory=dict)
    """database tables read over JDBC, by name"""
    object_store: ObjectStoreSettings = ObjectStoreSettings()
    identity: IdentitySettings
    scores: ScoreSettings = ScoreSettings()
    predictions: PredictionSettings = PredictionSettings()
    quality: QualitySettings = QualitySettings()
    warehouse: WarehouseSettings = WarehouseSettings()
    reports: ReportSettings = ReportSettings()
    notifications: NotificationSettings = NotificationSettings()
    privacy: PrivacySettings = PrivacySettings()
    exports: ExportSettings = ExportSettings()
    conf_dir: str = "conf"
    """the config folder (set from --conf)"""

    def resolve(self, template: str) -> str:
        """Expands ``{data_dir}`` and ``{conf_dir}`` in a configured path."""
        data_dir = self.paths.data_dir
        return template.format(data_dir=data_dir, conf_dir=self.conf_dir)

    @property
    def lake_root(self) -> str:
        return self.resolve(self.storage.lake_root)

    @property
    def landing_dir(self) -> str:
        return self.resolve(self.paths.landing_dir)

    @property
    def staging_dir(self) -> str:
        return self.resolve(self.paths.staging_dir)

    def all_sources(self) -> dict[str, SourceSettings | JdbcSourceSettings]:
        """File/object sources and JDBC sources by name (both carry entity, system, key and columns)."""
        return {**self.sources, **self.jdbc_sources}

    def fingerprint(self) -> str:
        """A stable hash of the effective config, stored in run manifests."""
        payload = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _yaml_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.yaml") if p.is_file())


def _merge(target: dict[str, Any], layer: Mapping[str, Any], origin: str, origins: dict[str, str],
           prefix: str = "") -> None:
    for key, value in layer.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _merge(target[key], value, origin, origins, f"{dotted}.")
        else:
            target[key] = json.loads(json.dumps(value, default=str)) if isinstance(value, Mapping) else value
            origins[dotted] = origin
            if isinstance(value, Mapping):
                for sub in _flatten_keys(value, f"{dotted}."):
                    origins[sub] = origin


def _flatten_keys(mapping: Mapping[str, Any], prefix: str) -> Iterable[str]:
    for key, value in mapping.items():
        yield f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from _flatten_keys(value, f"{prefix}{key}.")


def _set_dotted(target: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = target
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override '{dotted}': '{part}' is not a section")
    node[parts[-1]] = value


def _origin_of(loc: tuple[Any, ...], origins: Mapping[str, str]) -> str:
    parts = [str(p) for p in loc]
    for end in range(len(parts), 0, -1):
        found = origins.get(".".join(parts[:end]))
        if found:
            return found
    return "defaults"


def load_config(conf_dir: str | Path = "conf", env: str | None = "local",
                overrides: Iterable[str] = (), data_dir: str | None = None) -> CdpConfig:
    """Loads ``conf/base`` + ``conf/<env>`` + ``key=value`` overrides into a :class:`CdpConfig`."""
    conf_path = Path(conf_dir)
    base = conf_path / "base"
    if not base.is_dir():
        raise ConfigError(f"config directory '{base}' does not exist")
    layers: list[Path] = _yaml_files(base)
    if env:
        overlay = conf_path / env
        if not overlay.is_dir():
            known = sorted(p.name for p in conf_path.iterdir() if p.is_dir() and p.name not in ("base", "expectations"))
            raise ConfigError(f"environment overlay '{overlay}' does not exist (known: {known})")
        layers += _yaml_files(overlay)
    merged: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for layer_file in layers:
        try:
            content = yaml.safe_load(layer_file.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{layer_file}: not valid YAML: {exc}") from exc
        if not isinstance(content, Mapping):
            raise ConfigError(f"{layer_file}: top level must be a mapping of sections")
        _merge(merged, content, str(layer_file), origins)
    for override in overrides:
        key, sep, raw = override.partition("=")
        if not sep or not key:
            raise ConfigError(f"override '{override}' must look like section.key=value")
        _set_dotted(merged, key.strip(), yaml.safe_load(raw))
        origins[key.strip()] = f"CLI override '{override}'"
    merged.setdefault("conf_dir", str(conf_path))
    if data_dir is not None:
        merged.setdefault("paths", {})["data_dir"] = data_dir
    env_data_dir = os.environ.get("CDP_DATA_DIR")
    if data_dir is None and env_data_dir:
        merged.setdefault("paths", {})["data_dir"] = env_data_dir
    try:
        return CdpConfig.model_validate(merged)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            dotted = ".".join(str(p) for p in error["loc"])
            problems.append(f"{_origin_of(error['loc'], origins)}: key '{dotted}': {error['msg']}")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems)) from None
