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
    class_data_sharing: bool = True
    """local mode: the driver JVM maps the classes an earlier run loaded from an archive (written when the first
    run's JVM exits), so it starts and runs its first queries sooner (docs/design.md §9, "JVM start")"""
    class_archive_dir: str | None = None
    """where those archives are kept (about 200 MB each); default $XDG_CACHE_HOME or ~/.cache, /cdp-spark/jvm"""
    generated_code_min_rows: int = Field(200_000, ge=0)
    """``cdp run``: normalise, score, predict, report and validate run on Spark's expression interpreter, without
    generated code, while the lake's largest bronze table holds fewer rows (docs/design.md §9, "Compiled code");
    0 always generates code"""


class StorageSettings(Model):
    """Where the lake lives and which Delta engine writes it (docs/design.md §2)."""

    lake_root: str = "{data_dir}/lake"
    """root of the Delta tables: <lake_root>/<layer>/<table>; a path or s3:// URI"""
    engine: Literal["auto", "spark", "rs"] = "auto"
    """Delta writer: spark (delta-spark jars), rs (delta-rs commits), auto (spark when its jars load)"""
    checkpoint_dir: str = "{data_dir}/checkpoints"
    """Spark checkpoints of iterative jobs (connected components)"""
    lock: bool = True
    """one writing run per lake: a run holds <lake_root>/_cdp_run.lock; a second run fails naming the first"""
    lock_wait_s: int = Field(3600, ge=0)
    """with --wait, how long a run waits for the lake before failing"""
    lock_stale_after_s: int = Field(300, ge=30)
    """a lock whose heartbeat (every 30 s) is older than this, or whose process is gone, is taken over"""


DEFAULT_TRUE_VALUES = ("true", "t", "yes", "y", "1")
DEFAULT_FALSE_VALUES = ("false", "f", "no", "n", "0")


class ValueFormats(Model):
    """How a source writes its values (its locale): for the whole source under ``values``, or for one column
    beside its type, where it wins over the source's. Unset keys keep the strict defaults."""

    decimal_separator: Literal[".", ","] | None = None
    """numbers: the decimal mark (default "."); "," reads 12,50 as 12.5"""
    thousands_separator: str | None = Field(None, min_length=1, max_length=1)
    """numbers: a grouping character removed before reading, e.g. "." (1.234,50) or a space; default none"""
    true_values: list[str] | None = None
    """booleans: the words read as true, ignoring case (default true, t, yes, y, 1), e.g. [sí, si, oui, 1]"""
    false_values: list[str] | None = None
    """booleans: the words read as false, ignoring case (default false, f, no, n, 0), e.g. [no, non, 0]"""
    null_values: list[str] | None = None
    """values read as missing in any column, ignoring case and surrounding spaces, e.g. [NULL, N/A, "-"];
    an empty value is always missing in a non-text column"""
    timezone: str | None = None
    """timestamps without an offset are wall-clock time in this IANA zone (e.g. Europe/Madrid) and are stored
    in UTC; default: UTC. A value with its own offset (Z, +02:00) keeps it"""

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, zone: str | None) -> str | None:
        if zone is not None:
            from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

            try:
                ZoneInfo(zone)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone '{zone}'; use an IANA name such as Europe/Madrid") from None
        return zone


class SourceValueFormats(ValueFormats):
    """A source's value formats: those of every column, and the date and timestamp patterns of its date and
    timestamp columns that name none of their own."""

    date_formats: list[str] = Field(default_factory=list)
    """Spark datetime patterns tried in order for date columns, e.g. [dd/MM/yyyy, yyyy-MM-dd]; empty = ISO"""
    timestamp_formats: list[str] = Field(default_factory=list)
    """patterns tried in order for timestamp columns, e.g. ["dd/MM/yyyy HH:mm"]; empty = ISO"""


class ColumnFormat(BaseModel):
    """The formats one column is read with, its own settings over its source's over the defaults."""

    model_config = ConfigDict(frozen=True)

    patterns: list[str]
    decimal_separator: str
    thousands_separator: str | None
    true_values: list[str]
    false_values: list[str]
    null_values: list[str]
    timezone: str | None


class ColumnOptions(ValueFormats):
    """A contract column written as a mapping instead of a bare type: which header names it accepts, for
    dates and timestamps which patterns it reads, and its value formats (:class:`ValueFormats`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True, populate_by_name=True)

    type: str = "string"
    """string, int, long, double, boolean, date, timestamp, decimal(p,s)"""
    from_: list[str] = Field(default_factory=list, alias="from")
    """header names (or JSON keys) that fill this column besides its own name, matched ignoring case and
    surrounding spaces, e.g. [given_name, Nombre]"""
    formats: list[str] = Field(default_factory=list)
    """date / timestamp: Spark datetime patterns tried in order, e.g. [yyyyMMdd, dd/MM/yyyy]; empty = ISO"""


def _split_columns(data: Any) -> Any:
    """``columns`` may map a name to a type or to :class:`ColumnOptions`: the types stay in ``columns`` and
    the options move to ``column_options``, so code that only needs types reads a plain mapping."""
    if not isinstance(data, Mapping) or not isinstance(data.get("columns"), Mapping):
        return data
    types: dict[str, Any] = {}
    options: dict[str, Any] = dict(data.get("column_options") or {})
    for name, spec in data["columns"].items():
        if isinstance(spec, Mapping | ColumnOptions):
            parsed = spec if isinstance(spec, ColumnOptions) else ColumnOptions.model_validate(spec)
            types[name], options[name] = parsed.type, parsed
        else:
            types[name] = spec
    return {**data, "columns": types, "column_options": options}


class SourceSettings(Model):
    """One landing source: a file per entity, mapped by header name (docs/design.md §1, seeds' file rules)."""

    entity: str
    """bronze/silver table the rows land in (customers, orders, order_items, products, stores, events)"""
    system: str = Field(description="name other tables use for this source, e.g. orders.customer_source")
    format: Literal["csv", "json", "parquet", "delta"]
    """csv (header line, UTF-8 with or without BOM), json (one object per line, or a document), parquet, or
    delta (a Delta table read by version: what was committed since the last ingested version); csv and json
    files may be gzip-compressed (.gz)"""
    path: str = Field(description="file or glob, relative to the landing directory unless absolute; for delta the "
                                  "table's folder or URL")
    separator: str | None = None
    """CSV separator; null = detected: the candidate that splits the header line into the most fields"""
    encoding: Literal["utf-8"] = "utf-8"
    """UTF-8 with or without BOM; UTF-16 files and non-UTF-8 headers are rejected, bad lines quarantined"""
    source_key: list[str] = Field(min_length=1)
    """columns that identify a row in the source"""
    columns: dict[str, str] = Field(min_length=1)
    """contract column -> type (string, int, long, double, boolean, date, timestamp, decimal(p,s)), or ->
    {type, from, formats, and any value format of ``values``} (see column_options)"""
    column_options: dict[str, ColumnOptions] = Field(default_factory=dict)
    """per column: accepted header names, date patterns and value formats (filled from mappings in ``columns``)"""
    required: list[str] = Field(default_factory=list)
    """columns that must be present and non-empty; other rows are quarantined"""
    values: SourceValueFormats = Field(default_factory=SourceValueFormats)
    """how the source writes numbers, booleans, missing values, dates and times (a locale); a column may
    override any of it beside its type"""

    @model_validator(mode="before")
    @classmethod
    def _column_mappings(cls, data: Any) -> Any:
        return _split_columns(data)

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
        unknown = sorted(set(self.column_options) - set(self.columns))
        if unknown:
            raise ValueError(f"column_options name columns {unknown} that are not in 'columns'")
        return self

    def accepted_names(self) -> dict[str, list[str]]:
        """Contract column -> the header names it accepts (its own name first)."""
        return {name: [name, *(self.column_options[name].from_ if name in self.column_options else [])]
                for name in self.columns}

    def formats(self, column: str) -> list[str]:
        """The date/timestamp patterns of a column: its own, else its source's for its type (empty = ISO)."""
        options = self.column_options.get(column)
        if options and options.formats:
            return list(options.formats)
        kind = self.columns.get(column)
        return list({"date": self.values.date_formats, "timestamp": self.values.timestamp_formats}.get(kind or "", []))

    def column_format(self, column: str) -> ColumnFormat:
        """How ``column`` is read: each setting from the column, else the source's ``values``, else the default."""
        own = self.column_options.get(column)

        def pick(name: str, default: Any) -> Any:
            for level in (own, self.values):
                value = getattr(level, name) if level is not None else None
                if value is not None:
                    return value
            return default

        return ColumnFormat(patterns=self.formats(column), decimal_separator=pick("decimal_separator", "."),
                            thousands_separator=pick("thousands_separator", None),
                            true_values=list(pick("true_values", DEFAULT_TRUE_VALUES)),
                            false_values=list(pick("false_values", DEFAULT_FALSE_VALUES)),
                            null_values=list(pick("null_values", [])), timezone=pick("timezone", None))


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
    """One column compared between two records; each pair gets the first level, best first, that holds
    (docs/identity.md has the table). A null on either side is its own level and weighs nothing.

    name:     exact / nickname (``canonical`` equal) / swapped (equal to the other record's ``swap_with``) /
              Damerau-Levenshtein bands / the shorter name's words all in the other (a second surname
              left out) / Jaro-Winkler bands / different
    text:     exact / Damerau-Levenshtein bands / Jaro-Winkler bands / different (addresses, ids, free text)
    exact:    exact / different
    email:    exact / same local part or one edit / different
    phone:    exact / same last 7 digits / different
    date:     exact / one typo (Damerau-Levenshtein 1 on yyyyMMdd) / day and month swapped / two of three
              parts equal / within ``tolerance`` days / different
    number:   exact / within ``tolerance`` (absolute) / different
    postcode: exact / one typo / same first two characters / different
    address:  one comparison over the ``parts`` of an address (street, number, postcode, city), whose
              disagreements go together when a person moves: exact / street and number / street and
              postcode / postcode and number / postcode / postcode one typo / city / different; ``field``
              only names it (null when no part can be compared)"""

    field: str
    """person column compared (a silver column, e.g. last_name_key, street_key, house_number)"""
    kind: Literal["name", "text", "exact", "email", "phone", "date", "number", "postcode", "address"]
    """comparison levels (see above)"""
    parts: dict[Literal["street", "number", "postcode", "city"], str] = Field(default_factory=dict)
    """address kind: the person column of each part (street similarity by Jaro-Winkler >= 0.9)"""
    term_frequency: bool = False
    """adjust an exact match's weight by how common the value is"""
    canonical: str | None = Field(None, description="name kind: column whose equality is the nickname level")
    swap_with: str | None = Field(None, description="name kind: the other name column; equality across the two "
                                                    "(given name in one record = surname in the other) is a level")
    jaro_winkler: list[float] | None = None
    """name / text: Jaro-Winkler similarity bands, highest first; null = the kind's default (name: 0.92, 0.85,
    0.7; text: 0.92, 0.8)"""
    damerau_levenshtein: list[int] | None = None
    """name / text: edit-distance bands (insertions, deletions, substitutions, adjacent transpositions),
    smallest first; null = none"""
    tolerance: list[float] | None = None
    """number: absolute differences; date: days; smallest first; null = the kind's default (date: 365)"""

    @model_validator(mode="after")
    def _options_fit_kind(self) -> ComparisonSettings:
        if (self.kind == "address") != bool(self.parts):
            raise ValueError("the address kind, and only it, needs 'parts' (street, number, postcode, city)")
        if self.kind == "address" and not ({"street", "postcode", "city"} & set(self.parts)):
            raise ValueError("an address comparison needs a street, postcode or city part")
        if self.term_frequency and self.kind == "address":
            raise ValueError("term_frequency does not apply to the address kind")
        if (self.canonical or self.swap_with) and self.kind != "name":
            raise ValueError("canonical and swap_with belong to the name kind")
        if (self.jaro_winkler or self.damerau_levenshtein) and self.kind not in ("name", "text"):
            raise ValueError("jaro_winkler and damerau_levenshtein bands belong to the name and text kinds")
        if self.tolerance and self.kind not in ("number", "date"):
            raise ValueError("tolerance belongs to the number and date kinds")
        for bands, name, descending in ((self.jaro_winkler, "jaro_winkler", True),
                                        (self.damerau_levenshtein, "damerau_levenshtein", False),
                                        (self.tolerance, "tolerance", False)):
            if bands and list(bands) != sorted(bands, reverse=descending):
                raise ValueError(f"{name} bands must be ordered {'highest' if descending else 'smallest'} first")
        if self.jaro_winkler and not all(0 < b <= 1 for b in self.jaro_winkler):
            raise ValueError("jaro_winkler bands lie in (0, 1]")
        if self.damerau_levenshtein and not all(b >= 1 for b in self.damerau_levenshtein):
            raise ValueError("damerau_levenshtein bands are at least 1")
        return self

    def columns(self) -> list[str]:
        """The person columns the comparison reads."""
        if self.kind == "address":
            return list(self.parts.values())
        return [x for x in (self.field, self.canonical, self.swap_with) if x]

    def valued_columns(self) -> list[str]:
        """The columns whose own values it compares: ``columns()`` without ``swap_with``, which only feeds the
        swapped level (a block on the surname says nothing about the given name)."""
        return [x for x in self.columns() if x != self.swap_with]


class BlockingRule(Model):
    """Records that agree exactly on every field of the rule (all non-null) become candidate pairs: every pair
    inside a block of at most ``max_block_size`` records. Larger blocks (a placeholder value, a very common
    name) give no pairs and are reported."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    """rule name, recorded on the pairs it proposes"""
    fields: list[str] = Field(min_length=1, max_length=4)
    """normalised person columns that must be equal"""
    any_order: bool = False
    """the fields' values compared as a set: given name and surname swapped still agree"""
    identifier: bool = False
    """the value identifies a person (e-mail, phone, national id): an oversized block is a junk identifier,
    ignored in comparisons too, and pairs from this rule are strong evidence for the giant-cluster guard"""
    max_block_size: int | None = Field(None, ge=2)
    """override of matching.max_block_size for this rule"""

    @model_validator(mode="after")
    def _any_order_needs_two(self) -> BlockingRule:
        if self.any_order and len(self.fields) < 2:
            raise ValueError("any_order needs at least two fields")
        return self


class SnmPass(Model):
    """One Sorted Neighbourhood pass: sort by ``key`` (a SQL expression over the record's columns) inside
    partitions of the key's first ``prefix_length`` characters, and pair each record with the next
    ``window - 1`` records; the window grows up to ``max_window - 1`` records while the next record's key
    starts with the same ``dense_prefix`` characters (dense regions of similar keys get a wider window)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    """pass name, recorded on the pairs it finds"""
    key: str
    """SQL sort key over the record's columns"""
    window: int = Field(4, ge=2, le=50)
    """each record is paired with at least the next window - 1 records"""
    max_window: int | None = Field(None, ge=2, le=100)
    """adaptive window: up to max_window - 1 records while keys share ``dense_prefix`` characters"""
    dense_prefix: int = Field(6, ge=1)
    """characters of the key two records must share for the window to grow past ``window``"""
    prefix_length: int = Field(1, ge=0)
    """partition by this many first characters of the key (0 = one partition)"""

    @model_validator(mode="after")
    def _windows_grow(self) -> SnmPass:
        if self.max_window is not None and self.max_window < self.window:
            raise ValueError("max_window must be at least window")
        return self


class MatchingSettings(Model):
    """Probabilistic matching (docs/design.md §4): blocking rules and SNM passes propose candidate pairs,
    the comparisons give each pair a level per column, Fellegi-Sunter weights (u from random pairs, m by EM
    in training blocks taken from the blocking rules) decide."""

    blocking_rules: list[BlockingRule] = Field(default_factory=list)
    """exact-agreement rules that propose candidate pairs (and are EM's training blocks)"""
    snm_passes: list[SnmPass] = Field(default_factory=list)
    """Sorted Neighbourhood passes that add candidate pairs"""
    max_block_size: int = Field(100, ge=2, description="blocks of a blocking rule with more records give no "
                                                       "pairs (k records give k(k-1)/2 pairs)")
    comparisons: list[ComparisonSettings] = Field(min_length=1)
    """fields compared and how; each gives a level with an m/u weight"""
    match_probability: float = Field(0.95, gt=0, lt=1, description="accept pairs at or above this probability "
                                     "(the prior is the chance that two random records match)")
    tf_max_boost: float = Field(1.0, ge=0, description="bits a rare value may add to an exact match's weight")
    tf_max_penalty: float = Field(5.0, ge=0, description="bits a common value may take from it")
    force_match: list[str] = Field(default_factory=list, description="SQL over l.* and r.*: always a match")
    force_nonmatch: list[str] = Field(default_factory=list, description="SQL over l.* and r.*: never a match")
    u_sample_pairs: int = Field(200_000, ge=1000)
    """random pairs sampled to estimate u"""
    em_iterations: int = Field(30, ge=1)
    """EM iterations per training block"""
    max_cluster_size: int = Field(50, ge=2, description="larger clusters are split back to strong edges")
    broadcast_records: int = Field(
        500_000, ge=0, description="up to this many records, the compared columns are broadcast to the pair "
        "comparison instead of shuffling the candidate pairs twice")
    seed: int = 42
    """seed of the u sample"""

    @model_validator(mode="after")
    def _names_unique(self) -> MatchingSettings:
        names = [r.name for r in self.blocking_rules] + [p.name for p in self.snm_passes]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"blocking rule and SNM pass names must be unique: {repeated}")
        if len(names) > 62:
            raise ValueError("at most 62 blocking rules and SNM passes together (one bit each in a long)")
        fields = [c.field for c in self.comparisons]
        if len(set(fields)) != len(fields):
            raise ValueError("each field is compared once")
        return self

    def identifier_fields(self) -> list[str]:
        """Fields of single-field identifier rules (e-mail, phone, national id)."""
        return [r.fields[0] for r in self.blocking_rules if r.identifier and len(r.fields) == 1]


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
    """Identity resolution (docs/design.md §4): normalisation and transforms, exact keys or probabilistic matching,
    connected components, stable person ids, survivorship into gold.person_profile."""

    person_sources: list[str] = Field(min_length=1, description="silver entities that describe persons")
    match_keys: list[str] = Field(default_factory=lambda: ["email_norm", "phone_e164"])
    """exact keys that link records when identity.matching is null"""
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
    """BG/NBD + Gamma-Gamma (docs/design.md §5): time in units of ``unit_days`` (7 = weeks, as in the paper)."""

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
    erase_purges_history: bool = True
    """cdp erase vacuums the changed tables with zero retention (lifting Delta's 7-day check for that call)
    and drops their older commits: no earlier version keeps the person, and time travel before the
    erasure ends; false leaves the old files to the regular vacuum"""
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
    keys: dict[str, list[str]] = Field(default_factory=dict, description="primary key per synced table, where it "
                                       "differs from the table catalog's key (cdp_spark/catalog.py)")
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
    path_style_access: bool = True
    """with endpoint_url: Spark's S3A addresses buckets by path (endpoint/bucket/key), as MinIO and moto need"""
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
        """A stable hash of the effective config that decides what the stages write, stored in run manifests:
        the Spark session's and the run notifications' settings are left out (they change no table)."""
        payload = json.dumps(self.model_dump(mode="json", exclude={"spark", "notifications"}), sort_keys=True)
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
