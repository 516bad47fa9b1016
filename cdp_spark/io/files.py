"""Landing files: discovery, header sniffing and numbered lines.

The seeds' file rules: one file per entity, CSV with any separator and a header on the first line, or
JSON; UTF-8 with or without BOM; gzip-compressed when the name ends in ``.gz``. Files are read as text
lines so that every quarantined row keeps its raw text and its line number (a CSV record whose quoted
field holds line breaks is joined again by ``cdp_spark.ingest.files.csv_records``).
"""

from __future__ import annotations

import codecs
import glob
import hashlib
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

UTF8_BOM = codecs.BOM_UTF8
CANDIDATE_SEPARATORS = [",", ";", "\t", "|"]
SNIFF_BYTES = 64 * 1024
BINARY_SIGNATURES = [
    (b"PK\x03\x04", "workbook", "file is a ZIP archive (an .xlsx workbook?); export one sheet as CSV (UTF-8)"),
    (b"\xd0\xcf\x11\xe0", "workbook", "file is an OLE document (an .xls workbook?); export one sheet as CSV (UTF-8)"),
    (codecs.BOM_UTF16_LE, "invalid_encoding", "file is UTF-16 encoded; save it as UTF-8 (with or without BOM)"),
    (codecs.BOM_UTF16_BE, "invalid_encoding", "file is UTF-16 encoded; save it as UTF-8 (with or without BOM)"),
]


class FileRejected(ValueError):
    """The whole file cannot be ingested; the message names the file and the problem."""

    def __init__(self, path: str, reason_code: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.reason_code = reason_code


@dataclass(frozen=True)
class FileInfo:
    path: str  # where it is read from
    size: int
    modified_ms: int
    sha256: str
    origin: str = ""  # where it came from (s3://... for staged objects); lineage uses it
    has_quotes: bool = True  # whether its text holds a '"' (False only when known: then no quoted line breaks)

    @property
    def lineage(self) -> str:
        return self.origin or self.path


@dataclass(frozen=True)
class Header:
    """What the first line of a landing file says."""

    columns: list[str]
    separator: str | None  # None for JSON
    has_bom: bool
    json_array: bool = False


def discover(landing_dir: str, pattern: str) -> list[str]:
    """Files matching ``pattern`` (absolute, or relative to ``landing_dir``), sorted by name."""
    full = pattern if os.path.isabs(pattern) else os.path.join(landing_dir, pattern)
    return sorted(p for p in glob.glob(full) if os.path.isfile(p))


GZIP_SUFFIX = ".gz"


def is_gzip(path: str) -> bool:
    """Whether a landing file is gzip-compressed (``.csv.gz``, ``.jsonl.gz``): Spark decompresses it by its name."""
    return path.lower().endswith(GZIP_SUFFIX)


def _gunzip_head(sample: bytes) -> bytes:
    """The text at the start of gzip-compressed bytes (a file's first bytes suffice)."""
    try:
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(sample, SNIFF_BYTES)
    except zlib.error:
        return sample  # not gzip after all: the binary checks name it


def file_info(path: str, origin: str = "") -> FileInfo:
    """Size, time, SHA-256 of the bytes and whether the (decompressed) text holds a quote, in one pass."""
    digest = hashlib.sha256()
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS) if is_gzip(path) else None
    has_quotes = False
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
            if not has_quotes:
                try:
                    has_quotes = b'"' in (inflate.decompress(chunk) if inflate else chunk)
                except zlib.error:
                    has_quotes = True  # unreadable here: Spark will say so; assume the general case
    stat = os.stat(path)
    return FileInfo(path=str(Path(path).absolute()), size=stat.st_size, modified_ms=int(stat.st_mtime * 1000),
                    sha256=digest.hexdigest(), origin=origin, has_quotes=has_quotes)


def _first_line(path: str, sample: bytes | None = None) -> tuple[bytes, bool]:
    if sample is None:
        with open(path, "rb") as handle:
            sample = handle.read(SNIFF_BYTES)
    if is_gzip(path):
        sample = _gunzip_head(sample)
    if not sample.strip():
        raise FileRejected(path, "empty_file", "file is empty (no header line)")
    for magic, code, message in BINARY_SIGNATURES:
        if sample.startswith(magic):
            raise FileRejected(path, code, message)
    if b"\x00" in sample:
        raise FileRejected(path, "binary_file", "file holds NUL bytes: it is binary, not CSV or JSON text")
    has_bom = sample.startswith(UTF8_BOM)
    if has_bom:
        sample = sample[len(UTF8_BOM):]
    line = sample.split(b"\n", 1)[0].rstrip(b"\r")
    return line, has_bom


def detect_separator(header_line: str) -> str:
    """The candidate separator that splits the header into the most fields (ties: the first candidate)."""
    counts = {sep: header_line.count(sep) for sep in CANDIDATE_SEPARATORS}
    best = max(CANDIDATE_SEPARATORS, key=lambda sep: counts[sep])
    return best if counts[best] > 0 else ","


def read_csv_header(path: str, separator: str | None, sample: bytes | None = None) -> Header:
    """The header of a CSV file; ``sample`` (its first bytes) when the file is not on local disk."""
    raw, has_bom = _first_line(path, sample)
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileRejected(path, "invalid_encoding",
                           f"header line is not valid UTF-8 (byte {exc.start}); save the file as UTF-8") from None
    sep = separator or detect_separator(line)
    import csv

    columns = next(csv.reader([line], delimiter=sep))
    columns = [c.strip() for c in columns]
    if any(not c for c in columns):
        raise FileRejected(path, "bad_header", f"header has an empty column name: {columns}")
    duplicates = sorted({c for c in columns if columns.count(c) > 1})
    if duplicates:
        raise FileRejected(path, "bad_header", f"header repeats column names {duplicates}")
    return Header(columns=columns, separator=sep, has_bom=has_bom)


def read_json_header(path: str, sample: bytes | None = None) -> Header:
    """JSON Lines, or one JSON document (``json_array``): a file starting with ``[`` (an array of records,
    pretty-printed or not) or whose first line is a lone ``{`` (pretty-printed objects, as json.dumps with
    an indent, jq or JSON.stringify write them)."""
    raw, has_bom = _first_line(path, sample)
    stripped = raw.strip()
    return Header(columns=[], separator=None, has_bom=has_bom,
                  json_array=stripped.startswith(b"[") or stripped == b"{")


def numbered_lines(spark: SparkSession, path: str, size: int | None = None) -> DataFrame:
    """The file's lines as ``_row`` (1-based line number, :func:`numbered`) and ``value`` (text, invalid UTF-8
    bytes replaced by U+FFFD, no trailing carriage return), computed on the JVM. ``size``: the file's bytes,
    when known (:func:`numbered`)."""
    lines = numbered(spark.read.option("lineSep", "\n").text(path), one_split(spark, size))
    # Invalid UTF-8 bytes become U+FFFD explicitly (the rules quarantine such lines as invalid_encoding);
    # CRLF files lose the trailing carriage return by a suffix test, cheaper than a regex.
    text = F.make_valid_utf8(F.col("value"))
    return lines.select(
        "_row",
        F.when(text.endswith("\r"), F.substring(text, F.lit(1), F.length(text) - 1)).otherwise(text).alias("value"),
    )


def one_split(spark: SparkSession, size: int | None) -> bool:
    """Whether Spark reads a file of ``size`` bytes as one split, known without planning the read: Spark splits
    files at ``min(maxPartitionBytes, max(openCostInBytes, bytes per core))`` (its ``FilePartition.maxSplitBytes``),
    never below ``min(maxPartitionBytes, openCostInBytes)`` (4 MB by default). False when unknown."""
    if size is None:
        return False
    conf = spark._jsparkSession.sessionState().conf()
    return size <= min(conf.filesMaxPartitionBytes(), conf.filesOpenCostInBytes())


def numbered(frame: DataFrame, single_split: bool = False) -> DataFrame:
    """``frame`` (one file's rows, its splits in file order) with ``_row``, the 1-based position in the file:
    ``monotonically_increasing_id`` gives the row within each partition, and the partitions' counts give
    their offsets. ``single_split`` (:func:`one_split`): the file is known to be read as one split, so nothing
    is planned or counted, and the frame says it is one partition, so aggregations over it (the totals) run in
    its one task without exchanges (docs/design.md §9, "Small files")."""
    columns = [F.col(f"`{c}`") for c in frame.columns]
    if single_split:  # one partition: its ids count from 0
        return frame.coalesce(1).select((F.monotonically_increasing_id() + 1).alias("_row"), *columns)
    tagged = frame.withColumn("_pid", F.spark_partition_id()).withColumn("_mid", F.monotonically_increasing_id())
    if tagged.rdd.getNumPartitions() == 1:  # a small file is one split: planning only
        counts = [(0, 0)]
    else:
        counts = sorted((r["_pid"], r["count"]) for r in tagged.groupBy("_pid").count().collect())
    offsets, running = {}, 0
    for pid, count in counts:
        offsets[pid] = running
        running += count
    offset_col = F.lit(0).cast("long")
    for pid, offset in offsets.items():
        offset_col = F.when(F.col("_pid") == pid, F.lit(offset)).otherwise(offset_col)
    in_partition = F.col("_mid") - F.shiftleft(F.col("_pid").cast("long"), 33)
    return tagged.select((offset_col + in_partition + 1).alias("_row"), *columns)


def read_parquet(spark: SparkSession, path: str) -> DataFrame:
    """A Parquet file's rows with their typed columns and ``_row`` (position in the file); a file that is not
    Parquet is rejected naming it."""
    try:
        return numbered(spark.read.parquet(path))
    except Exception as exc:  # AnalysisException / SparkException: not a Parquet file, unreadable footer
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FileRejected(path, "unreadable_file", f"not a readable Parquet file: {first}") from None


def read_json_array(spark: SparkSession, path: str) -> DataFrame:
    """A JSON document's records, one per row, numbered by position (``_row`` = index + 1): the elements of
    a top-level array, or top-level objects (pretty-printed ones follow each other with their closing brace
    at the start of a line). A document that does not parse is one row holding its whole text, so it is
    quarantined as malformed rather than lost."""
    text = F.col("value")
    objects = F.concat(F.lit("["), F.regexp_replace(text, r"(?m)^\}[ \t]*\r?\n\{", "},\n{"), F.lit("]"))
    records = F.from_json(F.when(F.ltrim(text).startswith("["), text).otherwise(objects), "ARRAY<STRING>")
    whole = spark.read.text(path, wholetext=True)  # the keyword: text() would reset the option to False
    return (whole.select(F.posexplode(F.coalesce(records, F.array(text))).alias("pos", "value"))
            .select((F.col("pos") + 1).cast("long").alias("_row"), "value"))
