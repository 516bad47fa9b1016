"""Ingest landing files into ``bronze.<entity>`` and ``quarantine.<entity>`` (docs/design.md §1).

Per file: the header is checked (source key and required columns present, else the whole file is
rejected with a clear message), every line is parsed by header name, typed against the entity contract
and either accepted (bronze, with lineage columns) or quarantined (reason code + raw text). Every file
leaves one row in ``meta.ingestion_log`` with rows read = accepted + quarantined.

Exactly once: the bronze, quarantine and log writes of a file carry the idempotency token
``(ingest/<source>/<sha256 of content>, 1)``, so re-running on the same file changes nothing, and a run
that crashed between two of those writes completes the missing ones on the next run.

The rules are in ``cdp_spark.ingest`` (files, jdbc, objects, suppression, rules); this module reads through
``cdp_spark.io``, applies them, writes and records.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from cdp_spark.catalog import INGESTION_LOG, OBJECT_MANIFEST, SUPPRESSION, bronze_of, declared_schema, quarantine_of
from cdp_spark.config import CdpConfig, JdbcSourceSettings, SourceSettings
from cdp_spark.ingest import jdbc as ingest_jdbc_rules
from cdp_spark.ingest import suppression
from cdp_spark.ingest.files import (
    bronze_rows,
    checked_csv,
    checked_json,
    csv_columns,
    csv_records,
    opens_quoted_field,
    quarantine_rows,
    typed_records,
    with_duplicates_flagged,
)
from cdp_spark.ingest.objects import source_location, spark_reads_objects
from cdp_spark.io import jdbc
from cdp_spark.io.delta_source import delta_changes, read_delta_files
from cdp_spark.io.files import (
    SNIFF_BYTES,
    FileInfo,
    FileRejected,
    discover,
    file_info,
    numbered_lines,
    read_csv_header,
    read_json_array,
    read_json_header,
    read_parquet,
)
from cdp_spark.io.object_store import ObjectRef, ObjectStore, is_object_url
from cdp_spark.io.tables import Txn
from cdp_spark.pipelines.common import InputRejected, RunContext, StageError, make_context, record_manifest
from cdp_spark.progress import activity

log = logging.getLogger("cdp.ingest")



@dataclass(frozen=True)
class FileOutcome:
    source: str
    file: str
    status: str  # ingested | skipped | rejected
    rows_read: int = 0
    rows_accepted: int = 0
    rows_quarantined: int = 0
    message: str = ""
    rows_suppressed: int = 0


@dataclass(frozen=True)
class CheckedRead:
    """A file's records with typed contract columns, ``_rescued`` and ``_reasons`` (duplicate source keys not
    yet flagged: see :func:`with_duplicates_flagged`), a CSV header's rescued (unknown) columns, and, when a
    CSV file's lines were checked one by one though it holds quotes, the test of a line that opens a quoted
    field: the file's totals evaluate it, and if any line does, its records are joined and checked again
    (:func:`checked_rows` with ``joined=True``)."""

    rows: DataFrame
    rescued: list[str]
    spans_lines: Column | None = None


class RecordsSpanLines(Exception):
    """A CSV file checked line by line has records that span lines."""


def checked_rows(spark: SparkSession, source: SourceSettings, path: str, sample: bytes | None = None,
                 has_quotes: bool = True, size: int | None = None, joined: bool = False) -> CheckedRead:
    """The file read and checked (:class:`CheckedRead`). ``has_quotes=False``: the file is known to hold no
    quote, so no record spans lines. A CSV file's lines are checked as records unless ``joined``: most files
    have no record spanning lines, and the totals tell (docs/design.md §9, "Records spanning lines").
    ``size``: its bytes, when known. Raises :class:`FileRejected` for file-level problems."""
    if source.format == "csv":
        header = read_csv_header(path, source.separator, sample)
        columns = csv_columns(path, header.columns, header.separator, source)
        separator = header.separator or ","
        lines = numbered_lines(spark, path, size).where(F.col("_row") > 1)
        records = csv_records(lines, separator) if joined else lines
        rows, rescued = checked_csv(records, columns, separator, source, path)
        return CheckedRead(rows, rescued, opens_quoted_field(separator) if has_quotes and not joined else None)
    if source.format == "parquet":
        return CheckedRead(checked_json(typed_records(read_parquet(spark, path), source, path), source, path), [])
    json_header = read_json_header(path, sample)
    lines = read_json_array(spark, path) if json_header.json_array else numbered_lines(spark, path, size)
    return CheckedRead(checked_json(lines, source, path), [])  # JSON objects name their own keys: see land


def suppression_flag(ctx: RunContext, source: SourceSettings | JdbcSourceSettings,
                     rows: DataFrame) -> Column | None:
    """True on rows of a person entity that match ``meta.suppression``; None when nothing is suppressed."""
    cfg = ctx.cfg
    if source.entity not in cfg.identity.person_sources or not ctx.store.exists(SUPPRESSION):
        return None
    hashes = sorted(r["hash"] for r in ctx.store.read(SUPPRESSION).select("hash").distinct().collect())
    return suppression.suppression_flag(rows, source, hashes, cfg.privacy.key(), cfg.identity) if hashes else None


def ingest_file(spark: SparkSession, ctx: RunContext, name: str, source: SourceSettings,
                info: FileInfo, sample: bytes | None = None) -> FileOutcome:
    txn = Txn(f"ingest/{name}/{info.sha256}", 1)
    if already_landed(ctx, txn):
        return FileOutcome(name, info.lineage, "skipped", message="already ingested (same content)")
    now = datetime.now(UTC)
    try:
        read = checked_rows(spark, source, info.path, sample, info.has_quotes, info.size)
    except FileRejected as exc:
        message = str(exc).replace(info.path, info.lineage)  # name the object, not its staged copy
        log.error("rejected %s", message)
        _log_row(spark, ctx, txn, name, source, info, "rejected", 0, 0, 0, [], message, now)
        return FileOutcome(name, info.lineage, "rejected", message=message)
    try:
        return land(spark, ctx, name, source, info, read.rows, read.rescued, txn, now, spans_lines=read.spans_lines)
    except RecordsSpanLines:
        log.info("%s: records span lines; joining them", info.lineage)
        read = checked_rows(spark, source, info.path, sample, info.has_quotes, info.size, joined=True)
        return land(spark, ctx, name, source, info, read.rows, read.rescued, txn, now)


def already_landed(ctx: RunContext, txn: Txn) -> bool:
    """Whether a read with this token was landed: its ingestion log row is the last of its writes."""
    return ctx.store.exists(INGESTION_LOG) and (ctx.store.txn_version(INGESTION_LOG, txn.app_id) or 0) >= 1


def land(spark: SparkSession, ctx: RunContext, name: str, source: SourceSettings, info: FileInfo,
         checked: DataFrame, rescued: list[str], txn: Txn, now: datetime,
         metadata: dict[str, str] | None = None, spans_lines: Column | None = None) -> FileOutcome:
    """Writes one read's checked rows (``checked_rows``): accepted ones to bronze (with ``metadata`` in that
    commit), the others to the quarantine, and its ingestion log row, each write under ``txn``. Raises
    :class:`RecordsSpanLines`, before any write, when ``spans_lines`` holds on a line."""
    bronze_table, quarantine_table = bronze_of(source.entity), quarantine_of(source.entity)
    parsed = checked = checked.persist()
    try:
        # JSON objects (and typed rows) name their own keys: found with the totals
        checked, totals = with_duplicates_flagged(parsed, source.source_key, rescued_keys=source.format != "csv",
                                                  spans_lines=spans_lines)
        if totals.spans_lines:
            raise RecordsSpanLines(info.lineage)
        read, accepted = totals.read, totals.valid
        rescued = totals.rescued_keys if source.format != "csv" else rescued
        accepted_rows = bronze_rows(checked.where(F.col("_reasons") == ""), source, name, info.lineage,
                                    F.col("_row"), F.col("_rescued"), now)
        quarantined_rows = quarantine_rows(checked.where(F.col("_reasons") != ""), name, info.lineage,
                                           F.col("_row"), F.col("_reasons"), F.col("_detail"), F.col("value"), now)
        flag = suppression_flag(ctx, source, accepted_rows)
        suppressed = 0
        if flag is not None:
            suppressed = accepted_rows.where(flag).count()
            accepted_rows, accepted = accepted_rows.where(~flag), accepted - suppressed
        bronze_result = ctx.store.write(bronze_table, accepted_rows, txn=txn, evolve_schema=True, metadata=metadata)
        ctx.wrote(bronze_table, bronze_result.version)
        quarantined = read - accepted - suppressed
        if quarantined:
            ctx.wrote(quarantine_table, ctx.store.write(quarantine_table, quarantined_rows, txn=txn).version)
        elif not ctx.store.exists(quarantine_table):  # analysts find the table, empty, from the first file on
            ctx.wrote(quarantine_table, ctx.store.create(quarantine_table, quarantined_rows.schema).version)
        if bronze_result.rows_written and bronze_result.rows_written != accepted:
            raise StageError(f"{info.lineage}: wrote {bronze_result.rows_written} rows to {bronze_table}, "
                             f"expected {accepted}")
    finally:
        checked.unpersist()
        parsed.unpersist()
    message = f"rescued columns {rescued} kept in _rescued" if rescued else ""
    if rescued:
        log.warning("%s: schema drift, columns %s are not in the %s contract", info.lineage, rescued, name)
    if suppressed:
        log.warning("%s: %d rows of erased persons suppressed (meta.suppression)", info.lineage, suppressed)
    _log_row(spark, ctx, txn, name, source, info, "ingested", read, accepted, quarantined, rescued, message, now,
             suppressed)
    return FileOutcome(name, info.lineage, "ingested", read, accepted, quarantined, message, suppressed)


def _log_row(spark: SparkSession, ctx: RunContext, txn: Txn, name: str,
             source: SourceSettings | JdbcSourceSettings, info: FileInfo,
             status: str, read: int, accepted: int, quarantined: int, rescued: list[str], message: str,
             now: datetime, suppressed: int = 0) -> None:
    row = (ctx.run_id, name, source.entity, info.lineage, info.sha256, info.size, status, read, accepted, quarantined,
           ",".join(rescued) or None, message, now.replace(tzinfo=None), suppressed)
    result = ctx.store.append_rows(INGESTION_LOG, [row], declared_schema(INGESTION_LOG), txn=txn, evolve_schema=True)
    ctx.wrote(INGESTION_LOG, result.version)


def ingest_delta(spark: SparkSession, ctx: RunContext, name: str, source: SourceSettings,
                 location: str) -> FileOutcome:
    """Ingests what was committed to a Delta table since the version ingested last (kept as commit metadata
    of bronze, ``cdp.delta_version.<source>``, written with the rows, as the JDBC watermark is); ``--full-refresh``
    reads the whole current version. The writes carry ``ingest/<source>/delta-v<version>``, so a version is
    landed once."""
    version_key = f"cdp.delta_version.{name}"
    stored = None if ctx.full_refresh else ctx.store.latest_metadata(bronze_of(source.entity), version_key)
    previous = int(stored) if stored is not None else None
    now = datetime.now(UTC)
    info = FileInfo(path=location, size=0, modified_ms=0, sha256="")
    try:
        changes = delta_changes(location, previous)
        txn = Txn(f"ingest/{name}/delta-v{changes.version}", 1)
        if not changes.files:
            return FileOutcome(name, location, "skipped", message=f"no new data files since version {previous}")
        if already_landed(ctx, txn):
            return FileOutcome(name, location, "skipped", message=f"version {changes.version} was ingested already")
        checked = checked_json(typed_records(read_delta_files(spark, changes), source, location), source, location)
    except FileRejected as exc:
        log.error("rejected %s", exc)
        _log_row(spark, ctx, Txn(f"ingest/{name}/delta-rejected/{now.isoformat()}", 1), name, source, info,
                 "rejected", 0, 0, 0, [], str(exc), now)
        return FileOutcome(name, location, "rejected", message=str(exc))
    info = FileInfo(path=location, size=0, modified_ms=0, sha256=f"delta-v{changes.version}",
                    origin=f"{location}@v{changes.version}")
    outcome = land(spark, ctx, name, source, info, checked, [], txn, now, {version_key: str(changes.version)})
    read = "the whole table" if changes.whole else f"files added since version {previous}"
    return replace(outcome, message="; ".join(m for m in (f"version {changes.version}: {read}", outcome.message)
                                              if m))


def ingest_objects(spark: SparkSession, cfg: CdpConfig, ctx: RunContext, name: str,
                   source: SourceSettings, location: str) -> list[FileOutcome]:
    """Ingests the objects matching ``location`` (``s3://bucket/prefix/*.csv``) not yet in the manifest.

    Rule for re-uploads: an object is identified by (bucket, key, ETag). The same ETag is never read
    again. New content under the same key is a new ETag: it is ingested as a new file (bronze keeps both,
    with ``_file`` naming the object; silver keeps the latest row per source key). A re-upload of content
    already ingested is recorded in the manifest as ``duplicate_content`` and adds no rows.
    """
    settings = cfg.object_store
    store = ObjectStore(settings.endpoint_url, settings.region, settings.max_attempts,
                        settings.connect_timeout_s, settings.read_timeout_s)
    refs = store.list(location)
    if not refs:
        log.warning("source %s: no objects match %s", name, location)
    direct = read_directly(spark, settings.read_mode)
    seen = manifest_entries(ctx)
    outcomes = []
    for ref in refs:
        if (ref.bucket, ref.key, ref.etag) in seen:
            outcomes.append(FileOutcome(name, ref.uri, "skipped", message="already in the object manifest"))
            continue
        if direct:  # Spark reads s3a:// itself; the header comes from a ranged GET, the token from the ETag
            info = FileInfo(path=f"s3a://{ref.bucket}/{ref.key}", size=ref.size,
                            modified_ms=int(ref.last_modified.timestamp() * 1000), sha256=f"etag-{ref.etag}",
                            origin=ref.uri)
            outcome = ingest_file(spark, ctx, name, source, info, sample=store.read_head(ref, SNIFF_BYTES))
        else:
            with store.staged(ref, cfg.staging_dir) as local:
                info = file_info(local, origin=ref.uri)
                outcome = ingest_file(spark, ctx, name, source, info)
        status = "duplicate_content" if outcome.status == "skipped" else outcome.status
        record_object(spark, ctx, name, ref, info.sha256, status)
        outcomes.append(outcome)
    return outcomes


def read_directly(spark: SparkSession, read_mode: str) -> bool:
    """Whether Spark reads objects itself (``s3a://``) or boto3 stages them on local disk first."""
    from cdp_spark.session import s3a_available

    return read_mode != "stage" and spark_reads_objects(read_mode, s3a_available(spark))


def manifest_entries(ctx: RunContext) -> set[tuple[str, str, str]]:
    if not ctx.store.exists(OBJECT_MANIFEST):
        return set()
    rows = ctx.store.read(OBJECT_MANIFEST).select("bucket", "key", "etag").distinct().collect()
    return {(r.bucket, r.key, r.etag) for r in rows}


def record_object(spark: SparkSession, ctx: RunContext, name: str, ref: ObjectRef, sha256: str,
                  status: str) -> None:
    bronze_version = ctx.outputs.get(bronze_of(ctx.cfg.sources[name].entity))
    row = (ref.bucket, ref.key, ref.etag, ref.size, ref.last_modified.replace(tzinfo=None), name, sha256,
           status, bronze_version, ctx.run_id, datetime.now(UTC).replace(tzinfo=None))
    token = Txn(f"manifest/{ref.bucket}/{ref.key}/{ref.etag}", 1)
    result = ctx.store.append_rows(OBJECT_MANIFEST, [row], declared_schema(OBJECT_MANIFEST), txn=token)
    ctx.wrote(OBJECT_MANIFEST, result.version)


def ingest_jdbc(spark: SparkSession, ctx: RunContext, name: str, source: JdbcSourceSettings) -> FileOutcome:
    """Reads new and changed rows of a JDBC table (watermark minus the overlap window), merges them into
    ``bronze.<entity>`` on (source key, _source) and stores the new watermark in that same commit, so data
    and watermark move together or not at all. ``ctx.full_refresh`` ignores the stored watermark."""
    bronze_table, quarantine_table = bronze_of(source.entity), quarantine_of(source.entity)
    origin = f"{source.url}#{source.table}"
    target = jdbc.target_from_env(source.url, source.driver, source.user_env, source.password_env)
    watermark_key = f"cdp.watermark.{name}"
    previous = None if ctx.full_refresh else ctx.store.latest_metadata(bronze_table, watermark_key)
    where = ingest_jdbc_rules.watermark_filter(source, previous)
    stats = jdbc.fetch_one(spark, target, ingest_jdbc_rules.window_stats_query(source, where))
    now = datetime.now(UTC)
    if not stats.get("n"):
        log.info("%s: no new rows since watermark %s", name, previous)
        return FileOutcome(name, origin, "skipped", message=f"no rows after watermark {previous}")
    raw = jdbc.partitioned_read(spark, target, ingest_jdbc_rules.rows_query(source, where), source.partition_column,
                                stats["lo"], stats["hi"], source.num_partitions, source.fetch_size)
    checked = ingest_jdbc_rules.checked_jdbc_rows(raw, source).persist()
    try:
        counts = checked.agg(F.count(F.lit(1)).alias("read"), F.count("reason").alias("bad")).first()
        read, bad = (int(counts["read"]), int(counts["bad"])) if counts else (0, 0)
        accepted_rows = bronze_rows(checked.where(F.col("reason").isNull()), source, name, origin, F.lit(None),
                                    F.lit(None), now)
        flag = suppression_flag(ctx, source, accepted_rows)
        suppressed = accepted_rows.where(flag).count() if flag is not None else 0
        if flag is not None:
            accepted_rows = accepted_rows.where(~flag)
        metadata = {watermark_key: _iso(stats["wm"])} if source.watermark_column and stats.get("wm") else None
        try:
            merged = ctx.store.merge(bronze_table, accepted_rows, keys=[*source.source_key, "_source"],
                                     evolve_schema=True, metadata=metadata)
        except Exception as exc:  # the read happens inside the write: a lost connection surfaces here
            raise jdbc.JdbcError(target.scrub(f"reading {origin} failed mid-read; nothing was committed to "
                                              f"{bronze_table}: {jdbc.first_line(exc)}")) from None
        ctx.wrote(bronze_table, merged.version)
        if bad:
            bad_rows = quarantine_rows(checked.where(F.col("reason").isNotNull()), name, origin, F.lit(None),
                                       F.col("reason"), F.lit(None), F.col("value"), now)
            ctx.wrote(quarantine_table, ctx.store.write(quarantine_table, bad_rows).version)
    finally:
        checked.unpersist()
    info = FileInfo(path=origin, size=0, modified_ms=0, sha256="")
    message = f"watermark {previous} -> {metadata[watermark_key] if metadata else None}"
    _log_row(spark, ctx, Txn(f"jdbc/{name}/{now.isoformat()}", 1), name, source, info, "ingested", read,
             read - bad - suppressed, bad, [], message, now, suppressed)
    return FileOutcome(name, origin, "ingested", read, read - bad - suppressed, bad, message, suppressed)


def _iso(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


@dataclass(frozen=True)
class PendingInput:
    """One input ingest would look at (``--plan``): a file, an object, a JDBC table or a Delta table, whether it
    holds something new, and what."""

    source: str
    location: str
    new: bool
    note: str


def pending_inputs(cfg: CdpConfig, ctx: RunContext) -> list[PendingInput]:
    """What ``run`` would read, found as it finds it, reading and writing nothing: a file is new unless its
    content was ingested (its token), an object unless it is in the object manifest, a Delta source when
    versions were committed since the one ingested last; a JDBC table reads the rows after its watermark."""
    pending: list[PendingInput] = []
    seen = manifest_entries(ctx)
    for name in ctx.chosen_sources(cfg.sources):
        source = cfg.sources[name]
        location = source_location(cfg.landing_dir, source.path)
        if source.format == "delta":
            stored = None if ctx.full_refresh else ctx.store.latest_metadata(bronze_of(source.entity),
                                                                            f"cdp.delta_version.{name}")
            changes = delta_changes(location, int(stored) if stored is not None else None)
            read = "the whole table" if changes.whole else f"{len(changes.files)} files added since version {stored}"
            pending.append(PendingInput(name, location, bool(changes.files),
                                        f"version {changes.version}: {read}" if changes.files
                                        else f"no new data files since version {stored}"))
        elif is_object_url(location):
            settings = cfg.object_store
            store = ObjectStore(settings.endpoint_url, settings.region, settings.max_attempts,
                                settings.connect_timeout_s, settings.read_timeout_s)
            for ref in store.list(location):
                new = (ref.bucket, ref.key, ref.etag) not in seen
                pending.append(PendingInput(name, ref.uri, new, "new object" if new else "already in the manifest"))
        else:
            for path in discover(cfg.landing_dir, source.path):
                new = not already_landed(ctx, Txn(f"ingest/{name}/{file_info(path).sha256}", 1))
                pending.append(PendingInput(name, path, new, "new file" if new else "already ingested (same content)"))
    for name in ctx.chosen_sources(cfg.jdbc_sources):
        jdbc_source = cfg.jdbc_sources[name]
        watermark = None if ctx.full_refresh else ctx.store.latest_metadata(bronze_of(jdbc_source.entity),
                                                                           f"cdp.watermark.{name}")
        pending.append(PendingInput(name, f"{jdbc_source.url}#{jdbc_source.table}", True,
                                    f"rows changed after watermark {watermark} (minus the overlap)" if watermark
                                    else "every row (no watermark stored)"))
    return pending


def run(spark: SparkSession, cfg: CdpConfig, ctx: RunContext | None = None) -> list[FileOutcome]:
    """Ingests every configured source's new files. Raises :class:`StageError` if any file was rejected
    (after every other file has been ingested and logged)."""
    ctx = ctx or make_context(spark, cfg)
    outcomes: list[FileOutcome] = []
    for name in ctx.chosen_sources(cfg.sources):
        source = cfg.sources[name]
        location = source_location(cfg.landing_dir, source.path)
        if source.format == "delta":
            outcomes.append(ingest_delta(spark, ctx, name, source, location))
            continue
        if is_object_url(location):
            outcomes += ingest_objects(spark, cfg, ctx, name, source, location)
            continue
        paths = discover(cfg.landing_dir, source.path)
        if not paths:
            log.warning("source %s: no files match %s under %s", name, source.path, cfg.landing_dir)
        for number, path in enumerate(paths, start=1):
            with activity(spark, f"{name}: file {number} of {len(paths)}, {os.path.basename(path)}"):
                outcome = ingest_file(spark, ctx, name, source, file_info(path))
            log.info("%s %s: %s read=%d accepted=%d quarantined=%d", name, path, outcome.status,
                     outcome.rows_read, outcome.rows_accepted, outcome.rows_quarantined)
            outcomes.append(outcome)
    for name in ctx.chosen_sources(cfg.jdbc_sources):
        outcome = ingest_jdbc(spark, ctx, name, cfg.jdbc_sources[name])
        log.info("%s: %s read=%d accepted=%d quarantined=%d (%s)", name, outcome.status, outcome.rows_read,
                 outcome.rows_accepted, outcome.rows_quarantined, outcome.message)
        outcomes.append(outcome)
    ctx.counts["ingest"] = {  # files, objects and JDBC tables alike
        "files": len(outcomes),
        "rows_read": sum(o.rows_read for o in outcomes),
        "rows_accepted": sum(o.rows_accepted for o in outcomes),
        "rows_quarantined": sum(o.rows_quarantined for o in outcomes),
    }
    rejected = [o for o in outcomes if o.status == "rejected"]
    record_manifest(spark, ctx, "ingest", "failed" if rejected else "succeeded",
                    "; ".join(o.message for o in rejected))
    if rejected:
        raise InputRejected("rejected files:\n  " + "\n  ".join(o.message for o in rejected))
    return outcomes
