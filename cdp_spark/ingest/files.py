"""Landing files as pure DataFrame transforms: the header against the contract, the records typed and
checked, the totals, and the row shapes of bronze and quarantine (shared with JDBC sources).

In: numbered lines (``_row``, ``value``) as ``cdp_spark.io.files`` reads them. Out: the contract's typed
columns + ``_rescued``, ``_reasons``, ``_detail``, ``value``, ``_row`` (``cdp_spark.ingest.rules``)."""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import pyarrow as pa
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from cdp_spark.config import JdbcSourceSettings, SourceSettings
from cdp_spark.ingest.rules import (
    apply_contract,
    duplicate_keys,
    flag_duplicate_keys,
    header_mapping,
    parse_csv,
    parse_json,
    row_hash,
    sql_name,
)
from cdp_spark.io.files import FileRejected


def csv_columns(path: str, header: Sequence[str], separator: str | None, source: SourceSettings) -> list[str]:
    """The contract column each header column fills (:func:`header_mapping`); rejects a file whose header is
    ambiguous or lacks a source key column (:class:`FileRejected` naming ``path``). ``separator``: the CSV
    file's, named in the message (None for a typed file's columns)."""
    try:
        columns = header_mapping(header, source)
    except ValueError as exc:
        raise FileRejected(path, "ambiguous_header", str(exc)) from None
    missing_keys = [k for k in source.source_key if k not in columns]
    if missing_keys:
        found = (f"header has no source key column {missing_keys} (header: {columns}, separator {separator!r})"
                 if separator else f"no source key column {missing_keys} among the columns {columns}")
        raise FileRejected(path, "no_source_key", f"{found}; every file needs its source key")
    return columns


def typed_records(rows: DataFrame, source: SourceSettings, path: str) -> DataFrame:
    """Rows of a typed source (Parquet, Delta: ``_row`` and its own columns) as the JSON rules read them:
    ``_row`` and ``value``, the row as a JSON object whose keys are the contract's names where a column maps
    to one (names matched as a CSV header's are, :func:`csv_columns`); dates and timestamps become ISO text,
    nested columns nested objects."""
    own = [c for c in rows.columns if c != "_row"]
    mapped = csv_columns(path, own, None, source)
    record = F.struct(*[F.col(f"`{c}`").alias(name) for c, name in zip(own, mapped, strict=True)])
    return rows.select("_row", F.to_json(record).alias("value"))


MAX_RECORD_LINES = 1000
"""lines one CSV record may span: a quote that opens a field and is not closed within them is a stray quote,
and its line stands alone (so one stray quote cannot swallow the rest of the file)"""


def quoted_field_patterns(separator: str) -> tuple[str, str]:
    """Two Java regular expressions over one line of a CSV file with this separator (RFC 4180 quoting, ``""``
    inside quotes): ``opens``, the line read from its start ends inside a quoted field (the field goes on on
    the next line); ``stays``, the line read from inside a quoted field ends inside one (no closing quote, or
    it closes and a later field opens again). Possessive quantifiers: no backtracking on long lines."""
    sep = re.escape(separator)
    body = '[^"]*+(?:""[^"]*+)*+'
    field = f'(?:"{body}"|[^"{sep}][^{sep}]*+|(?={sep}|$))'
    opens = f'^(?:{field}{sep})*+"{body}$'
    stays = f'^{body}$|^{body}"(?:{sep}{field})*+{sep}"{body}$'
    return opens, stays


def opens_quoted_field(separator: str) -> Column:
    """True on a numbered line (``value``) that, read from its start, ends inside a quoted field, so that its
    record goes on on the next line (:func:`quoted_field_patterns`); only lines holding a quote run the
    pattern. Evaluated with a file's totals (:func:`line_totals`), it costs no read of its own."""
    opens, _ = quoted_field_patterns(separator)
    return (F.instr(F.col("value"), '"') > 0) & F.col("value").rlike(opens)


def csv_records(lines: DataFrame, separator: str) -> DataFrame:
    """The CSV records of a file some of whose lines open a quoted field (:func:`opens_quoted_field`), from
    its numbered lines (``_row``, ``value``): a record whose quoted field holds line breaks is one row again,
    its lines joined by "\n" and numbered by the line it starts on. The file is walked in order, in one task
    (as Spark's own multi-line CSV reading does). Same columns out."""
    _, stays = quoted_field_patterns(separator)
    flagged = lines.select("_row", "value", opens_quoted_field(separator).alias("_opens"),
                           F.col("value").rlike(stays).alias("_stays"))
    return (flagged.coalesce(1).sortWithinPartitions("_row")
            .mapInArrow(_joined_records, "_row long, value string"))


def _joined_records(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """The walk of :func:`csv_records` over one file's flagged lines in order (``_row``, ``value``,
    ``_opens``, ``_stays``): outside a quoted field a line is a record unless it opens one; inside, lines are
    gathered until one ends outside. A field left open after ``MAX_RECORD_LINES`` lines, or at the end of
    the file, was a stray quote: its first line stands alone and the walk resumes on the next line."""
    pending: list[tuple[int, str, bool, bool]] = []
    todo: deque[tuple[int, str, bool, bool]] = deque()
    rows: list[int] = []
    values: list[str] = []

    def walk(final: bool) -> None:
        nonlocal pending
        while todo or (final and pending):
            if not todo:  # end of file inside a quoted field
                first, *rest = pending
                rows.append(first[0])
                values.append(first[1])
                pending = []
                todo.extend(rest)
                continue
            line = todo.popleft()
            if pending:
                pending.append(line)
                if not line[3]:
                    rows.append(pending[0][0])
                    values.append("\n".join(p[1] for p in pending))
                    pending = []
                elif len(pending) >= MAX_RECORD_LINES:
                    first, *rest = pending
                    rows.append(first[0])
                    values.append(first[1])
                    pending = []
                    todo.extendleft(reversed(rest))
            elif line[2]:
                pending = [line]
            else:
                rows.append(line[0])
                values.append(line[1])

    def emitted() -> pa.RecordBatch:
        batch = pa.RecordBatch.from_arrays([pa.array(rows, pa.int64()), pa.array(values, pa.string())],
                                           names=["_row", "value"])
        rows.clear()
        values.clear()
        return batch

    for batch in batches:
        todo.extend(zip(*(batch.column(i).to_pylist() for i in range(4)), strict=True))
        walk(final=False)
        yield emitted()
    walk(final=True)
    yield emitted()


def checked_csv(lines: DataFrame, columns: list[str], separator: str, source: SourceSettings,
                path: str) -> tuple[DataFrame, list[str]]:
    """CSV records (header line excluded) typed against the contract, and the rescued (unknown) columns."""
    parsed = parse_csv(lines, columns, separator)
    rescued = [c for c in columns if c not in source.columns]
    if rescued:
        parsed = parsed.withColumn("_rescued", F.to_json(F.struct(*[F.col(f"`{c}`") for c in rescued])))
    return _contract(parsed, columns, source, path), rescued


def checked_json(lines: DataFrame, source: SourceSettings, path: str) -> DataFrame:
    """JSON records typed against the contract; absent keys are nulls, unknown ones go to ``_rescued``."""
    parsed = parse_json(lines, list(source.columns), source.accepted_names())
    return _contract(parsed, list(source.columns), source, path)


def _contract(parsed: DataFrame, columns: list[str], source: SourceSettings, path: str) -> DataFrame:
    missing_required = [c for c in source.required if c not in columns]
    if missing_required:
        raise FileRejected(path, "missing_required_column",
                           f"required columns {missing_required} are missing from the header {columns}")
    return apply_contract(parsed, source, [c for c in source.columns if c in columns])


@dataclass(frozen=True)
class LineTotals:
    """A file's checked lines counted: read, valid so far (``_reasons`` empty), distinct source keys among
    the valid ones, the keys found in ``_rescued`` (a JSON object per row) over all rows, sorted, and whether
    a line opens a quoted field (when asked: then the lines were checked one by one, and the records must be
    joined first, :func:`csv_records`)."""

    read: int
    valid: int
    distinct_keys: int
    rescued_keys: list[str]
    spans_lines: bool = False


def line_totals(checked: DataFrame, source_key: Sequence[str], rescued_keys: bool = False,
                spans_lines: Column | None = None) -> LineTotals:
    """:class:`LineTotals` in one aggregation; the rescued keys only when asked (JSON objects name their own
    keys; a CSV header's are known beforehand); ``spans_lines``, true on a line that opens a quoted field
    (:func:`opens_quoted_field`), when the rows are a CSV file's lines read one by one."""
    valid = F.col("_reasons") == ""
    key_sets = F.collect_set(F.map_keys(F.from_json("_rescued", "MAP<STRING,STRING>")))
    totals = checked.agg(
        F.count(F.lit(1)), F.count(F.when(valid, 1)),
        F.count_distinct(F.when(valid, F.struct(*[F.col(sql_name(k)) for k in source_key]))),
        F.array_sort(F.array_distinct(F.flatten(key_sets))) if rescued_keys else F.lit(None),
        F.max(spans_lines) if spans_lines is not None else F.lit(False)).first()
    if not totals:
        return LineTotals(0, 0, 0, [])
    return LineTotals(int(totals[0]), int(totals[1]), int(totals[2]), list(totals[3] or []), bool(totals[4]))


def with_duplicates_flagged(checked: DataFrame, source_key: Sequence[str], rescued_keys: bool = False,
                            spans_lines: Column | None = None) -> tuple[DataFrame, LineTotals]:
    """``checked`` (persisted by the caller) with ``duplicate_source_key`` flagged, and its totals
    (:func:`line_totals`, ``valid`` = lines accepted). Most files repeat no key: then the one aggregation of
    the totals shows it and ``checked`` itself comes back; otherwise a persisted join, counted again. Lines
    that turn out to open a quoted field (``spans_lines``) come back as they are: they are no records."""
    totals = line_totals(checked, source_key, rescued_keys, spans_lines)
    if totals.spans_lines or totals.distinct_keys == totals.valid:
        return checked, totals
    flagged = flag_duplicate_keys(checked, duplicate_keys(checked, source_key), source_key).persist()
    again = line_totals(flagged, source_key)
    return flagged, replace(again, rescued_keys=totals.rescued_keys)


def bronze_rows(rows: DataFrame, source: SourceSettings | JdbcSourceSettings, name: str, origin: str,
                row: Column, rescued: Column, at: datetime) -> DataFrame:
    """The bronze shape: the contract's columns, then ``_source`` (source name), ``_file`` (file, object or
    JDBC table), ``_row`` (physical line, null for JDBC), ``_ingested_at``, ``_row_hash``, ``_rescued``."""
    return rows.select(*[sql_name(c) for c in source.columns], F.lit(name).alias("_source"),
                       F.lit(origin).alias("_file"), row.cast("long").alias("_row"),
                       F.lit(at).cast("timestamp").alias("_ingested_at"),
                       row_hash(list(source.columns)).alias("_row_hash"), rescued.cast("string").alias("_rescued"))


def quarantine_rows(rows: DataFrame, name: str, origin: str, row: Column, reason: Column, detail: Column,
                    raw: Column, at: datetime) -> DataFrame:
    """The quarantine shape: ``_source``, ``_file``, ``_row``, ``reason``, ``detail``, ``raw`` (the record's
    text), ``_ingested_at``."""
    return rows.select(F.lit(name).alias("_source"), F.lit(origin).alias("_file"), row.cast("long").alias("_row"),
                       reason.alias("reason"), detail.cast("string").alias("detail"), raw.alias("raw"),
                       F.lit(at).cast("timestamp").alias("_ingested_at"))
