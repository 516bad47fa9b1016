"""A Delta table as an ingestion source (docs/pipeline.md, "Ingestion rules"): what was committed since the
last version ingested, read from the table's log with delta-rs and its data files with Spark.

``delta_changes(location, since)``
    in:  the table's location (a folder, or a URL delta-rs opens with credentials from the environment) and
         the version ingested last (None: never)
    out: ``DeltaChanges``: the table's current version and the data files to read: those added since
         ``since`` when every file of that version is still there (appends), else the whole current version
         (rows were rewritten or deleted since, or that version's log was cleaned up; silver keeps the newest
         row per source key, so reading rows again changes nothing there)
``read_delta_files(spark, changes)``
    the files' rows as one DataFrame, partition columns included (Hive-style folders under the table root).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession

from cdp_spark.io.files import FileRejected, numbered

log = logging.getLogger(__name__)

UNREADABLE_FEATURES = frozenset({"deletionVectors", "columnMapping"})
"""reader features whose rows the data files alone do not give (deleted rows, renamed columns)"""


@dataclass(frozen=True)
class DeltaChanges:
    location: str
    version: int
    files: list[str]
    whole: bool
    """True: ``files`` are the whole current version (a first read, or rows rewritten or deleted since)"""


def _spark_uri(uri: str) -> str:
    """delta-rs names S3 objects ``s3://``; Hadoop reads them through ``s3a://``."""
    return "s3a://" + uri[len("s3://"):] if uri.startswith("s3://") else uri


def delta_changes(location: str, since: int | None) -> DeltaChanges:
    from deltalake import DeltaTable

    if not DeltaTable.is_deltatable(location):
        raise FileRejected(location, "not_a_delta_table", "no Delta table here (no readable _delta_log)")
    current = DeltaTable(location)
    features = set(current.protocol().reader_features or []) & UNREADABLE_FEATURES
    if features:
        raise FileRejected(location, "unsupported_delta_table",
                           f"the table uses reader features {sorted(features)}, which reading its data files "
                           "alone would get wrong; write the source without them, or ingest a copy")
    version = current.version()
    now = current.file_uris()
    if since is None:
        return DeltaChanges(location, version, [_spark_uri(f) for f in now], whole=True)
    if since >= version:
        return DeltaChanges(location, version, [], whole=False)
    try:
        before = set(DeltaTable(location, version=since).file_uris())
    except Exception as exc:  # that version's log entries were cleaned up
        log.warning("%s: version %d can no longer be loaded (%s); reading the whole table", location, since, exc)
        return DeltaChanges(location, version, [_spark_uri(f) for f in now], whole=True)
    if not before <= set(now):
        log.warning("%s: rows were rewritten or deleted since version %d; reading the whole table (deletions "
                    "are not propagated)", location, since)
        return DeltaChanges(location, version, [_spark_uri(f) for f in now], whole=True)
    return DeltaChanges(location, version, [_spark_uri(f) for f in now if f not in before], whole=False)


def read_delta_files(spark: SparkSession, changes: DeltaChanges) -> DataFrame:
    """The rows of ``changes.files`` with ``_row``, their position in this read (Spark reads the table root
    as the base path, so partition folders give their columns)."""
    return numbered(spark.read.option("basePath", _spark_uri(changes.location)).parquet(*changes.files))
