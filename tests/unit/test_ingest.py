from __future__ import annotations

import os
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from cdp_spark.catalog import INGESTION_LOG
from cdp_spark.config import SourceSettings
from cdp_spark.ingest.files import LineTotals, with_duplicates_flagged
from cdp_spark.ingest.rules import row_hash, sql_name, sql_string
from cdp_spark.io.files import FileRejected, detect_separator, file_info, numbered_lines, one_split, read_csv_header
from cdp_spark.pipelines.common import make_context
from cdp_spark.pipelines.ingest import checked_rows, ingest_file

CONTACTS = SourceSettings(
    entity="contacts", system="crm", format="csv", path="*.csv", source_key=["contact_id"],
    required=["contact_id"],
    columns={"contact_id": "string", "email": "string", "birth_date": "date", "points": "long",
             "amount": "decimal(8,2)", "opt_in": "boolean"},
)


@pytest.fixture()
def ctx(spark, cfg_factory):
    return make_context(spark, cfg_factory(), date(2026, 6, 30))


def write_bytes(path: Path, data: bytes) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return str(path)


def bronze_rows(ctx, entity="contacts"):
    return ctx.store.read(f"bronze.{entity}").select("contact_id", "email", "birth_date", "points", "amount",
                                                     "opt_in", "_row", "_rescued").orderBy("_row")


def test_detect_separator_picks_the_most_frequent_candidate():
    headers = ("a;b;c", "a,b", "a\tb\tc", "a|b|c", "single")
    assert [detect_separator(h) for h in headers] == [";", ",", "\t", "|", ","]


@pytest.mark.parametrize("split_bytes", [None, 4096], ids=["one split", "several splits"])
@pytest.mark.parametrize("size_known", [True, False], ids=["size known", "size unknown"])
def test_numbered_lines_follow_file_order(spark, tmp_path, split_bytes, size_known):
    path = write_bytes(tmp_path / "lines.txt", "".join(f"line {i}\n" for i in range(1, 2001)).encode())
    split_settings = ("spark.sql.files.maxPartitionBytes", "spark.sql.files.openCostInBytes")
    for key in split_settings if split_bytes else ():  # the file (18,893 bytes) is read in 5 splits
        spark.conf.set(key, str(split_bytes))
    try:
        size = os.path.getsize(path) if size_known else None
        assert one_split(spark, size) is (size_known and not split_bytes)
        lines = numbered_lines(spark, path, size)
        assert lines.rdd.getNumPartitions() == (5 if split_bytes else 1)
        rows = lines.orderBy("_row").collect()
    finally:
        for key in split_settings:
            spark.conf.unset(key)
    assert [(r._row, r.value) for r in rows[:2] + rows[-1:]] == [(1, "line 1"), (2, "line 2"), (2000, "line 2000")]
    assert all(r.value == f"line {r._row}" for r in rows)


def test_a_file_read_as_one_split_is_checked_without_exchanges(spark, tmp_path):
    path = write_bytes(tmp_path / "keys.csv", "".join(f"k{i % 7}\n" for i in range(100)).encode())
    lines = numbered_lines(spark, path, os.path.getsize(path))
    totals = lines.agg(F.count(F.lit(1)), F.count_distinct("value"))
    assert "Exchange" not in totals._jdf.queryExecution().executedPlan().toString()
    assert totals.first()[:] == (100, 7)


def test_numbered_lines_drop_the_carriage_return_of_crlf_lines_and_mark_invalid_bytes(spark, tmp_path):
    path = write_bytes(tmp_path / "crlf.txt", b"a;b\r\nin\rside\r\n\r\nh\xe9;\xff\r\nlast")
    lines = numbered_lines(spark, path).orderBy("_row").collect()
    assert [(r._row, r.value) for r in lines] == [
        (1, "a;b"), (2, "in\rside"), (3, ""), (4, "h\ufffd;\ufffd"), (5, "last")]


def test_csv_rows_accepted_and_quarantined_with_reasons(spark, ctx, tmp_path):
    content = (
        "\ufeffemail;contact_id;amount;birth_date;points;opt_in;nickname\n"  # BOM, other order, extra column
        "ana@x.es;C1;10.50;1990-01-02;7;yes;Anita\n"                  # 2 ok
        "bo@x.es;C2;3;1991-13-40;8;no;\n"                             # 3 invalid date
        "cy@x.es;;1;;;;\n"                                            # 4 missing key
        "dee@x.es;C4;1\n"                                             # 5 too few columns
        "eve@x.es;C1;2.00;;;;\n"                                      # 6 duplicate of line 2
        "\"fay;quoted\";C6;;;12;true;\n"                              # 7 ok, quoted separator
        "gus@x.es;C7;abc;;x;;\n"                                      # 8 amount and points invalid
    ).encode("utf-8") + "hé@x.es;C8;;;;;\n".encode("latin-1")         # 9 Latin-1 bytes, not UTF-8
    path = write_bytes(tmp_path / "landing" / "contacts.csv", content)
    outcome = ingest_file(spark, ctx, "crm_contacts", CONTACTS, file_info(path))

    counts = (outcome.status, outcome.rows_read, outcome.rows_accepted, outcome.rows_quarantined)
    assert counts == ("ingested", 8, 2, 6)
    expected_bronze = spark.createDataFrame(
        [("C1", "ana@x.es", date(1990, 1, 2), 7, Decimal("10.50"), True, 2, '{"nickname":"Anita"}'),
         ("C6", "fay;quoted", None, 12, None, True, 7, "{}")],
        "contact_id string, email string, birth_date date, points long, amount decimal(8,2), opt_in boolean, "
        "_row long, _rescued string")
    assert_df_equality(bronze_rows(ctx), expected_bronze, ignore_nullable=True)
    quarantine = ctx.store.read("quarantine.contacts").select("_row", "reason", "detail", "raw").orderBy("_row")
    expected_quarantine = spark.createDataFrame([
        (3, "invalid_value", "columns: birth_date", "bo@x.es;C2;3;1991-13-40;8;no;"),
        (4, "missing_source_key", None, "cy@x.es;;1;;;;"),
        (5, "wrong_column_count", None, "dee@x.es;C4;1"),
        (6, "duplicate_source_key", "first seen at line 2", "eve@x.es;C1;2.00;;;;"),
        (8, "invalid_value", "columns: points, amount", "gus@x.es;C7;abc;;x;;"),
        (9, "invalid_encoding", None, "h\ufffd@x.es;C8;;;;;"),
    ], "_row long, reason string, detail string, raw string")
    assert_df_equality(quarantine, expected_quarantine, ignore_nullable=True)
    log_row = ctx.store.read(INGESTION_LOG).collect()[0]
    logged = (log_row.rows_read, log_row.rows_accepted, log_row.rows_quarantined, log_row.rescued_columns)
    assert logged == (8, 2, 6, "nickname")


SPANISH_CONTACTS = SourceSettings.model_validate({
    "entity": "contacts", "system": "crm", "format": "csv", "path": "*.csv", "source_key": ["contact_id"],
    "columns": {"contact_id": "string", "email": "string", "birth_date": "date",
                "points": {"type": "long", "thousands_separator": " "}, "amount": "decimal(8,2)",
                "opt_in": "boolean", "updated_at": "timestamp"},
    "values": {"decimal_separator": ",", "thousands_separator": ".", "true_values": ["sí", "si"],
               "false_values": ["no"], "null_values": ["NULL", "N/A"], "date_formats": ["dd/MM/yyyy", "yyyy-MM-dd"],
               "timestamp_formats": ["dd/MM/yyyy HH:mm", "yyyy-MM-dd'T'HH:mm:ssXXX"], "timezone": "Europe/Madrid"}})


def test_locale_formats_read_a_spanish_export(spark, ctx, tmp_path):
    content = (
        "contact_id;email;birth_date;points;amount;opt_in;updated_at\r\n"
        "C1;ana@x.es;03/02/1980;1 234;1.234,50;sí;01/07/2026 10:30\r\n"      # 2 summer: UTC+2
        "C2;NULL;1990-05-06;N/A;12,5;No;2026-01-15T10:00:00Z\r\n"           # 3 null tokens, ISO, own offset
        "C3;cy@x.es;31/02/1980;;12.50;quizá;\r\n"                             # 4 no such day, bad grouping, word
        "n/a;x@x.es;;;;;\r\n"                                                 # 5 key is a null token
        "C5;ee@x.es;;2 000;-3;SI;15/01/2026 10:00\r\n"                        # 6 winter: UTC+1
    ).encode()
    path = write_bytes(tmp_path / "landing" / "es.csv", content)
    outcome = ingest_file(spark, ctx, "crm_contacts", SPANISH_CONTACTS, file_info(path))

    assert (outcome.rows_read, outcome.rows_accepted, outcome.rows_quarantined) == (5, 3, 2)
    bronze = ctx.store.read("bronze.contacts").select("contact_id", "email", "birth_date", "points", "amount",
                                                      "opt_in", "updated_at", "_row").orderBy("_row")
    expected = spark.createDataFrame([
        ("C1", "ana@x.es", date(1980, 2, 3), 1234, Decimal("1234.50"), True, datetime(2026, 7, 1, 8, 30), 2),
        ("C2", None, date(1990, 5, 6), None, Decimal("12.50"), False, datetime(2026, 1, 15, 10, 0), 3),
        ("C5", "ee@x.es", None, 2000, Decimal("-3.00"), True, datetime(2026, 1, 15, 9, 0), 6)],
        "contact_id string, email string, birth_date date, points long, amount decimal(8,2), opt_in boolean, "
        "updated_at timestamp, _row long")
    assert_df_equality(bronze, expected, ignore_nullable=True)
    quarantine = ctx.store.read("quarantine.contacts").select("_row", "reason", "detail").orderBy("_row")
    expected_quarantine = spark.createDataFrame([
        (4, "invalid_value", "columns: birth_date, amount, opt_in"), (5, "missing_source_key", None)],
        "_row long, reason string, detail string")
    assert_df_equality(quarantine, expected_quarantine, ignore_nullable=True)


def test_a_column_format_wins_over_its_source_and_defaults_stay_strict():
    fmt = SPANISH_CONTACTS.column_format("points")
    assert (fmt.thousands_separator, fmt.decimal_separator, fmt.null_values) == (" ", ",", ["NULL", "N/A"])
    assert SPANISH_CONTACTS.column_format("birth_date").patterns == ["dd/MM/yyyy", "yyyy-MM-dd"]
    default = CONTACTS.column_format("amount")
    assert (default.decimal_separator, default.thousands_separator, default.null_values, default.timezone,
            default.patterns) == (".", None, [], None, [])
    assert default.true_values == ["true", "t", "yes", "y", "1"]
    with pytest.raises(ValueError, match="unknown time zone 'Europe/Madird'"):
        SourceSettings.model_validate({**SPANISH_CONTACTS.model_dump(exclude={"column_options"}),
                                       "values": {"timezone": "Europe/Madird"}})


def test_rfc4180_quoted_fields_hold_line_breaks_and_records_keep_their_first_line(spark, ctx, tmp_path):
    content = (
        b'contact_id;email;points\r\n'
        b'C1;"ana\r\n'                     # 2-4: one record, a field over three lines (CRLF inside)
        b'de la ""Torre""\r\n'
        b'x;y";1\r\n'
        b'C2;O"Brien;2\r\n'                # 5: a quote inside an unquoted field opens nothing
        b'C3;"b;\n\n";3\n'                  # 6-8: a blank line inside quotes
        b'C4;"one";"two\n'                 # 9-10: too many columns, quarantined at its first line
        b'lines";4\n'
        b'C5;e@x.es;5\n'                    # 11
        b'C6;"never closed;6\n'            # 12: a stray quote left open to the end stands alone
        b'C7;g@x.es;7\n')                   # 13: read as itself again
    path = write_bytes(tmp_path / "landing" / "multi.csv", content)
    outcome = ingest_file(spark, ctx, "crm_contacts", CONTACTS, file_info(path))

    assert (outcome.rows_read, outcome.rows_accepted, outcome.rows_quarantined) == (7, 5, 2)
    bronze = ctx.store.read("bronze.contacts").select("_row", "contact_id", "email", "points").orderBy("_row")
    expected = spark.createDataFrame([
        (2, "C1", 'ana\nde la "Torre"\nx;y', 1), (5, "C2", 'O"Brien', 2), (6, "C3", "b;\n\n", 3),
        (11, "C5", "e@x.es", 5), (13, "C7", "g@x.es", 7)], "_row long, contact_id string, email string, points long")
    assert_df_equality(bronze, expected, ignore_nullable=True)
    quarantine = ctx.store.read("quarantine.contacts").select("_row", "reason", "raw").orderBy("_row")
    expected_quarantine = spark.createDataFrame([
        (9, "wrong_column_count", 'C4;"one";"two\nlines";4'), (12, "wrong_column_count", 'C6;"never closed;6')],
        "_row long, reason string, raw string")
    assert_df_equality(quarantine, expected_quarantine, ignore_nullable=True)


@pytest.mark.parametrize("sep", [",", "\t", "|"])
def test_quoted_field_patterns_for_every_separator(spark, sep):
    from cdp_spark.ingest.files import quoted_field_patterns

    opens, stays = quoted_field_patterns(sep)
    lines = [f'a{sep}"open', f'"a""b{sep}c', f'a{sep}"done"', f'O"Brien{sep}x', f'{sep}{sep}"', 'plain',
             f'end"{sep}x{sep}"again', f'end"{sep}"closed"']
    rows = spark.createDataFrame([(line,) for line in lines], "value string").select(
        "value", F.col("value").rlike(opens).alias("opens"), F.col("value").rlike(stays).alias("stays")).collect()
    assert [(r.opens, r.stays) for r in rows] == [
        (True, False), (True, False), (False, False), (False, False), (True, False), (False, True),
        (True, True), (False, False)]  # 7: read from its start, "again opens a field too


def test_first_valid_line_of_a_source_key_wins_and_later_ones_name_it(spark, ctx, tmp_path):
    content = (b"contact_id,points\n"
               b"K1,1\n"   # 2 wins K1
               b"K1,2\n"   # 3 duplicate of 2
               b"K2,x\n"   # 4 invalid: cannot win K2
               b"K1,3\n"   # 5 duplicate of 2
               b"K2,4\n"   # 6 wins K2
               b"K2,5\n"   # 7 duplicate of 6
               b"K3,6\n")  # 8 ok
    path = write_bytes(tmp_path / "landing" / "dups.csv", content)
    outcome = ingest_file(spark, ctx, "crm_contacts", CONTACTS, file_info(path))

    assert (outcome.rows_read, outcome.rows_accepted, outcome.rows_quarantined) == (7, 3, 4)
    bronze = ctx.store.read("bronze.contacts").select("_row", "contact_id", "points").orderBy("_row")
    expected_bronze = spark.createDataFrame([(2, "K1", 1), (6, "K2", 4), (8, "K3", 6)],
                                            "_row long, contact_id string, points long")
    assert_df_equality(bronze, expected_bronze, ignore_nullable=True)
    quarantine = ctx.store.read("quarantine.contacts").select("_row", "reason", "detail").orderBy("_row")
    expected_quarantine = spark.createDataFrame([
        (3, "duplicate_source_key", "first seen at line 2"),
        (4, "invalid_value", "columns: points"),
        (5, "duplicate_source_key", "first seen at line 2"),
        (7, "duplicate_source_key", "first seen at line 6"),
    ], "_row long, reason string, detail string")
    assert_df_equality(quarantine, expected_quarantine, ignore_nullable=True)


@pytest.mark.parametrize("text", ["plain", "O'Brien", "back\\slash \\n not a newline", "yyyy-MM-dd'T'HH:mm", "\\.",
                                  "tick`name", "\u241f\u2400"])
def test_sql_text_helpers_keep_any_value_and_name_as_it_is(spark, text):
    frame = spark.createDataFrame([("x",)], "v string").withColumnRenamed("v", text)
    row = frame.selectExpr(f"{sql_string(text)} AS literal", f"{sql_name(text)} AS named").first()
    assert (row.literal, row.named) == (text, "x")


def test_row_hash_follows_the_typed_values_and_which_columns_are_null(spark):
    rows = [(1, "a", "x", Decimal("1.50"), date(2020, 1, 2)),
            (2, "a", "x", Decimal("1.50"), date(2020, 1, 2)),   # same values as 1: same hash
            (3, "a", "x", Decimal("1.51"), date(2020, 1, 2)),   # one value differs
            (4, "a", None, Decimal("1.50"), date(2020, 1, 2)),  # "a" in the first of two text columns ...
            (5, None, "a", Decimal("1.50"), date(2020, 1, 2)),  # ... or in the second: not alike
            (6, None, None, None, None)]
    frame = spark.createDataFrame(rows, "id int, first string, second string, amount decimal(8,2), day date")
    hashed = frame.select("id", row_hash(["first", "second", "amount", "day"]).alias("h"))
    firsts = hashed.groupBy("h").agg(F.min("id").alias("first_id"))
    result = (hashed.join(firsts, "h")
              .select("id", "first_id", F.col("h").rlike("^[0-9a-f]{16}$").alias("sixteen_hex_digits"))
              .orderBy("id"))
    expected = spark.createDataFrame([(1, 1, True), (2, 1, True), (3, 3, True), (4, 4, True), (5, 5, True),
                                      (6, 6, True)], "id int, first_id int, sixteen_hex_digits boolean")
    assert_df_equality(result, expected, ignore_nullable=True)


def test_a_file_without_repeated_keys_is_not_joined_again(spark, tmp_path):
    path = write_bytes(tmp_path / "landing" / "c.csv", b"contact_id,points\nK1,1\nK2,x\nK3,2\n")
    checked = checked_rows(spark, CONTACTS, path).rows
    flagged, totals = with_duplicates_flagged(checked, CONTACTS.source_key)
    assert flagged is checked
    assert totals == LineTotals(read=3, valid=2, distinct_keys=2, rescued_keys=[])


@pytest.mark.parametrize(("content", "spans"), [
    (b'contact_id;email\nK1;"a;b"\nK2;"say ""hi"""\nK3;O"Brien\n', False),  # quotes, every record one line
    (b'contact_id;email\nK1;"a\nb"\nK2;x\n', True)])                       # K1's quoted e-mail spans two
def test_the_totals_of_lines_checked_one_by_one_say_whether_a_record_spans_lines(spark, tmp_path, content, spans):
    path = write_bytes(tmp_path / "landing" / "c.csv", content)
    read = checked_rows(spark, CONTACTS, path)
    _, totals = with_duplicates_flagged(read.rows, CONTACTS.source_key, spans_lines=read.spans_lines)
    assert totals.spans_lines is spans
    assert checked_rows(spark, CONTACTS, path, joined=True).spans_lines is None  # joined: nothing left to test


def test_same_file_twice_changes_nothing(spark, ctx, tmp_path):
    path = write_bytes(tmp_path / "landing" / "c.csv", b"contact_id,email\nC1,a@x.es\n")
    first = ingest_file(spark, ctx, "crm_contacts", CONTACTS, file_info(path))
    versions = {t: ctx.store.version(t) for t in ("bronze.contacts", "quarantine.contacts", INGESTION_LOG)}
    again = ingest_file(spark, ctx, "crm_contacts", CONTACTS, file_info(path))
    assert (first.status, again.status) == ("ingested", "skipped")
    assert {t: ctx.store.version(t) for t in versions} == versions
    assert [r.contact_id for r in ctx.store.read("bronze.contacts").collect()] == ["C1"]


@pytest.mark.parametrize(("content", "code", "message"), [
    (b"", "empty_file", "file is empty"),
    (b"email;name\na@x.es;Ana\n", "no_source_key", "header has no source key column ['contact_id']"),
    (b"\xe9mail,contact_id\n", "invalid_encoding", "header line is not valid UTF-8"),
    (b"PK\x03\x04\x14\x00\x06\x00", "workbook", "an .xlsx workbook?); export one sheet as CSV"),
    ("contact_id,email\n".encode("utf-16"), "invalid_encoding", "file is UTF-16 encoded"),
    (b"contact_id\x00\x01\x02\n", "binary_file", "file holds NUL bytes"),
])
def test_file_level_rejections_name_the_file(spark, ctx, tmp_path, content, code, message):
    path = write_bytes(tmp_path / "landing" / "bad.csv", content)
    if code == "no_source_key":
        with pytest.raises(FileRejected) as err:
            checked_rows(spark, CONTACTS, path)
    else:
        with pytest.raises(FileRejected) as err:
            read_csv_header(path, None)
    assert err.value.reason_code == code
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value)
    outcome = ingest_file(spark, ctx, "crm_contacts", CONTACTS, file_info(path))
    assert outcome.status == "rejected" and message in outcome.message
    log_row = ctx.store.read(INGESTION_LOG).collect()[0]
    assert (log_row.status, log_row.rows_read) == ("rejected", 0)


def test_missing_required_column_rejects_file(spark, ctx, tmp_path):
    source = CONTACTS.model_copy(update={"required": ["contact_id", "email"]})
    path = write_bytes(tmp_path / "landing" / "c.csv", b"contact_id,points\nC1,3\n")
    outcome = ingest_file(spark, ctx, "crm_contacts", source, file_info(path))
    assert outcome.status == "rejected"
    assert "required columns ['email'] are missing" in outcome.message


CUSTOMERS = SourceSettings(entity="customers", system="shop", format="json", path="*.jsonl",
                           source_key=["customer_id"], columns={"customer_id": "string", "spend": "double",
                                                                "updated_at": "timestamp"})


def test_json_lines_and_json_array(spark, ctx, tmp_path):
    lines = write_bytes(tmp_path / "landing" / "a.jsonl", (
        b'{"customer_id": "E1", "spend": 12.5, "updated_at": "2026-01-02T03:04:05Z", "vip": true}\n'
        b'{"customer_id": "E2", "spend": "lots"}\n'
        b'{"customer_id": "E3"\n'))
    outcome = ingest_file(spark, ctx, "shop", CUSTOMERS, file_info(lines))
    assert (outcome.rows_read, outcome.rows_accepted, outcome.rows_quarantined) == (3, 1, 2)
    assert outcome.message == "rescued columns ['vip'] kept in _rescued"
    assert [r.rescued_columns for r in ctx.store.read(INGESTION_LOG).collect()] == ["vip"]
    array = write_bytes(tmp_path / "landing" / "b.json",
                        b'[{"customer_id": "E9", "spend": 1}, {"customer_id": "E10", "spend": 2.5}]')
    outcome = ingest_file(spark, ctx, "shop", CUSTOMERS, file_info(array))
    assert (outcome.rows_read, outcome.rows_accepted, outcome.rows_quarantined) == (2, 2, 0)
    bronze = ctx.store.read("bronze.customers").select("customer_id", "spend", "updated_at", "_row", "_rescued")
    expected = spark.createDataFrame([
        ("E1", 12.5, datetime(2026, 1, 2, 3, 4, 5), 1, '{"vip":"true"}'),
        ("E10", 2.5, None, 2, None), ("E9", 1.0, None, 1, None)],
        "customer_id string, spend double, updated_at timestamp, _row long, _rescued string")
    assert_df_equality(bronze.orderBy("customer_id"), expected, ignore_nullable=True)
    reasons = sorted((r._row, r.reason) for r in ctx.store.read("quarantine.customers").collect())
    assert reasons == [(2, "invalid_value"), (3, "malformed_json")]



def test_json_rescued_keys_come_with_the_totals_also_when_keys_repeat(spark, tmp_path):
    path = write_bytes(tmp_path / "landing" / "d.jsonl", (
        b'{"customer_id": "E1", "vip": 1}\n{"customer_id": "E1", "tier": "a", "vip": 2}\n'
        b'{"customer_id": "E2", "spend": "x", "zone": 3}\n'))
    checked = checked_rows(spark, CUSTOMERS, path).rows
    flagged, totals = with_duplicates_flagged(checked.persist(), CUSTOMERS.source_key, rescued_keys=True)
    # keys of every row, the quarantined ones included, once each and sorted; E1's second line is a duplicate
    assert totals == LineTotals(read=3, valid=1, distinct_keys=1, rescued_keys=["tier", "vip", "zone"])
    assert sorted((r._row, r._reasons) for r in flagged.collect()) == [
        (1, ""), (2, "duplicate_source_key"), (3, "invalid_value")]

NESTED_CUSTOMERS = SourceSettings.model_validate({
    "entity": "customers", "system": "shop", "format": "json", "path": "*.json*", "source_key": ["customer_id"],
    "columns": {"customer_id": "string", "city": {"type": "string", "from": ["address.city"]}, "spend": "double"}})


def test_gzip_files_nested_json_paths_and_pretty_printed_documents(spark, ctx, tmp_path):
    import gzip

    landing = tmp_path / "landing"
    compressed = write_bytes(landing / "a.jsonl.gz", gzip.compress(
        b'{"customer_id": "G1", "address": {"city": "Vigo", "zip": "36201"}, "spend": 1.5}\n'
        b'{"customer_id": "G2", "address": {"zip": "36202"}, "vip": true}\n'))
    pretty = write_bytes(landing / "b.json", (
        b'{\n  "customer_id": "P1",\n  "address": {\n    "city": "Lyon"\n  },\n  "spend": 3\n}\n'
        b'{\n  "customer_id": "P2",\n  "spend": "x"\n}\n'))
    array = write_bytes(landing / "c.json", b'[\n  {"customer_id": "A1", "address": {"city": "Ulm"}},\n'
                                            b'  {"customer_id": "A2"}\n]\n')
    broken = write_bytes(landing / "d.json", b'[{"customer_id": "M1"},\n')
    outcomes = [ingest_file(spark, ctx, "shop", NESTED_CUSTOMERS, file_info(p))
                for p in (compressed, pretty, array, broken)]

    assert [(o.rows_read, o.rows_accepted, o.rows_quarantined) for o in outcomes] == [
        (2, 2, 0), (2, 1, 1), (2, 2, 0), (1, 0, 1)]
    assert outcomes[0].message == "rescued columns ['vip'] kept in _rescued"  # address feeds city: not rescued
    bronze = ctx.store.read("bronze.customers").select("customer_id", "city", "spend", "_row", "_rescued")
    expected = spark.createDataFrame([
        ("A1", "Ulm", None, 1, None), ("A2", None, None, 2, None), ("G1", "Vigo", 1.5, 1, None),
        ("G2", None, None, 2, '{"vip":"true"}'), ("P1", "Lyon", 3.0, 1, None)],
        "customer_id string, city string, spend double, _row long, _rescued string")
    assert_df_equality(bronze.orderBy("customer_id"), expected, ignore_nullable=True)
    quarantine = ctx.store.read("quarantine.customers").select("_file", "_row", "reason", "raw")
    expected_quarantine = spark.createDataFrame([
        (pretty, 2, "invalid_value", '{"customer_id":"P2","spend":"x"}'),
        (broken, 1, "malformed_json", '[{"customer_id": "M1"},\n')],
        "_file string, _row long, reason string, raw string")
    assert_df_equality(quarantine.orderBy("_file"), expected_quarantine, ignore_nullable=True)


def test_gzip_csv_with_bom_is_read_like_plain_csv(spark, ctx, tmp_path):
    import gzip

    path = write_bytes(tmp_path / "landing" / "c.csv.gz",
                       gzip.compress("\ufeffcontact_id;points\r\nZ1;4\r\nZ2;x\r\n".encode()))
    outcome = ingest_file(spark, ctx, "crm_contacts", CONTACTS, file_info(path))
    assert (outcome.rows_read, outcome.rows_accepted, outcome.rows_quarantined) == (2, 1, 1)
    bronze = ctx.store.read("bronze.contacts").select("contact_id", "points", "_row")
    assert_df_equality(bronze, spark.createDataFrame([("Z1", 4, 2)], "contact_id string, points long, _row long"),
                       ignore_nullable=True)


TYPED_CONTACTS = SourceSettings.model_validate({
    "entity": "contacts", "system": "lake", "format": "parquet", "path": "*.parquet", "source_key": ["contact_id"],
    "columns": {"contact_id": "string", "email": "string", "birth_date": "date", "points": "long",
                "amount": "decimal(8,2)", "opt_in": "boolean", "city": {"type": "string", "from": ["address.city"]},
                "updated_at": "timestamp"}})


def test_parquet_files_map_typed_and_nested_columns(spark, ctx, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({
        "Contact_ID": ["P1", None, "P3", "P1"],
        "email": ["ana@x.es", "b@x.es", None, "dup@x.es"],
        "birth_date": [date(1990, 1, 2), None, date(1980, 5, 6), None],
        "points": pa.array([7, 8, None, 9], pa.int64()),
        "amount": pa.array([Decimal("10.50"), None, Decimal("-1.25"), None], pa.decimal128(8, 2)),
        "opt_in": [True, None, False, None],
        "updated_at": [datetime(2026, 1, 2, 3, 4, 5), None, None, None],
        "address": [{"city": "Vigo"}, None, {"city": "Ulm"}, None],
        "nickname": ["Anita", None, None, None]})
    path = tmp_path / "landing" / "c.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(table, path)
    outcome = ingest_file(spark, ctx, "lake_contacts", TYPED_CONTACTS, file_info(str(path)))

    assert (outcome.rows_read, outcome.rows_accepted, outcome.rows_quarantined) == (4, 2, 2)
    assert outcome.message == "rescued columns ['nickname'] kept in _rescued"
    bronze = ctx.store.read("bronze.contacts").select(
        "contact_id", "email", "birth_date", "points", "amount", "opt_in", "city", "updated_at", "_row", "_rescued")
    expected = spark.createDataFrame([
        ("P1", "ana@x.es", date(1990, 1, 2), 7, Decimal("10.50"), True, "Vigo", datetime(2026, 1, 2, 3, 4, 5), 1,
         '{"nickname":"Anita"}'),
        ("P3", None, date(1980, 5, 6), None, Decimal("-1.25"), False, "Ulm", None, 3, None)],
        "contact_id string, email string, birth_date date, points long, amount decimal(8,2), opt_in boolean, "
        "city string, updated_at timestamp, _row long, _rescued string")
    assert_df_equality(bronze.orderBy("_row"), expected, ignore_nullable=True)
    quarantine = ctx.store.read("quarantine.contacts").select("_row", "reason", "detail", "raw").orderBy("_row")
    expected_quarantine = spark.createDataFrame([
        (2, "missing_source_key", None, '{"email":"b@x.es","points":8}'),
        (4, "duplicate_source_key", "first seen at line 1", '{"contact_id":"P1","email":"dup@x.es","points":9}')],
        "_row long, reason string, detail string, raw string")
    assert_df_equality(quarantine, expected_quarantine, ignore_nullable=True)


def test_a_delta_table_source_is_read_by_version(spark, ctx, tmp_path):
    import pyarrow as pa
    from deltalake import DeltaTable, write_deltalake

    from cdp_spark.pipelines.ingest import ingest_delta

    location = str(tmp_path / "shop_table")
    source = SourceSettings.model_validate({
        "entity": "customers", "system": "shop", "format": "delta", "path": location, "source_key": ["customer_id"],
        "columns": {"customer_id": "string", "spend": "double", "country": "string"}})
    rows = pa.table({"customer_id": ["D1", "D2"], "spend": [1.0, 2.0], "country": ["ES", "FR"]})
    write_deltalake(location, rows, partition_by=["country"])

    def bronze():
        return sorted((r.customer_id, r.spend, r.country) for r in
                      ctx.store.read("bronze.customers").select("customer_id", "spend", "country").collect())

    first = ingest_delta(spark, ctx, "shop", source, location)
    assert (first.status, first.rows_read, first.rows_accepted, first.file) == ("ingested", 2, 2, f"{location}@v0")
    assert first.message == "version 0: the whole table"
    write_deltalake(location, pa.table({"customer_id": ["D3", None], "spend": [3.0, 4.0], "country": ["ES", "ES"]}),
                    mode="append", partition_by=["country"])
    second = ingest_delta(spark, ctx, "shop", source, location)
    assert (second.rows_read, second.rows_accepted, second.rows_quarantined) == (2, 1, 1)
    assert second.message == "version 1: files added since version 0"
    assert bronze() == [("D1", 1.0, "ES"), ("D2", 2.0, "FR"), ("D3", 3.0, "ES")]
    third = ingest_delta(spark, ctx, "shop", source, location)
    assert (third.status, third.message) == ("skipped", "no new data files since version 1")

    DeltaTable(location).delete("customer_id = 'D1'")  # files rewritten: the whole version is read again
    fourth = ingest_delta(spark, ctx, "shop", source, location)
    assert (fourth.rows_read, fourth.rows_accepted, fourth.message) == (3, 2, "version 2: the whole table")
    assert ctx.store.latest_metadata("bronze.customers", "cdp.delta_version.shop") == "2"
    quarantine = ctx.store.read("quarantine.customers").select("_file", "reason", "raw").orderBy("_file").collect()
    assert [(r._file, r.reason, r.raw) for r in quarantine] == [
        (f"{location}@v1", "missing_source_key", '{"spend":4.0,"country":"ES"}'),
        (f"{location}@v2", "missing_source_key", '{"spend":4.0,"country":"ES"}')]


def test_a_folder_that_is_no_delta_table_is_rejected_naming_it(spark, ctx, tmp_path):
    from cdp_spark.pipelines.ingest import ingest_delta

    source = SourceSettings.model_validate({
        "entity": "customers", "system": "shop", "format": "delta", "path": str(tmp_path), "source_key": ["id"],
        "columns": {"id": "string"}})
    outcome = ingest_delta(spark, ctx, "shop", source, str(tmp_path))
    assert (outcome.status, outcome.message) == (
        "rejected", f"{tmp_path}: no Delta table here (no readable _delta_log)")
    import pyarrow as pa
    from deltalake import write_deltalake

    write_deltalake(str(tmp_path / "t"), pa.table({"other": ["x"]}))  # a table without the source key column
    keyless = ingest_delta(spark, ctx, "shop", source, str(tmp_path / "t"))
    assert keyless.status == "rejected" and "no source key column ['id'] among the columns ['other']" in (
        keyless.message)


MAPPED_CONTACTS = SourceSettings.model_validate({
    "entity": "contacts", "system": "crm", "format": "csv", "path": "*.csv", "source_key": ["contact_id"],
    "columns": {"contact_id": "string", "first_name": {"type": "string", "from": ["Nombre"]},
                "email": {"type": "string", "from": ["E-mail", "correo"]}, "points": "long"}})


def test_headers_match_ignoring_case_and_spaces_and_by_their_from_names(spark, ctx, tmp_path):
    path = write_bytes(tmp_path / "landing" / "crm.csv",
                       "\ufeff Contact_ID ;NOMBRE;Correo;Points\r\nK1;Ana;ana@x.es;3\r\n".encode())
    outcome = ingest_file(spark, ctx, "crm_contacts", MAPPED_CONTACTS, file_info(path))
    assert (outcome.status, outcome.rows_accepted, outcome.message) == ("ingested", 1, "")
    bronze = ctx.store.read("bronze.contacts").select("contact_id", "first_name", "email", "points", "_row")
    assert_df_equality(bronze, spark.createDataFrame([("K1", "Ana", "ana@x.es", 3, 2)],
                                                     "contact_id string, first_name string, email string, "
                                                     "points long, _row long"), ignore_nullable=True)


def test_two_header_columns_filling_one_contract_column_reject_the_file_naming_both(spark, ctx, tmp_path):
    path = write_bytes(tmp_path / "landing" / "crm.csv", b"contact_id;Email;e-mail\nK1;a@x.es;b@x.es\n")
    outcome = ingest_file(spark, ctx, "crm_contacts", MAPPED_CONTACTS, file_info(path))
    assert (outcome.status, outcome.message) == (
        "rejected", f"{path}: header columns ['Email', 'e-mail'] both map to the contract column 'email'; keep "
                    "one or name it in the contract")


def test_a_file_that_is_not_parquet_is_rejected_naming_it(spark, ctx, tmp_path):
    path = write_bytes(tmp_path / "landing" / "c.parquet", b"contact_id,email\nP1,a@x.es\n")
    outcome = ingest_file(spark, ctx, "lake_contacts", TYPED_CONTACTS, file_info(path))
    assert outcome.status == "rejected" and outcome.message.startswith(f"{path}: not a readable Parquet file: ")
    log_row = ctx.store.read(INGESTION_LOG).collect()[0]
    assert (log_row.status, log_row.rows_read, log_row.rows_accepted, log_row.rows_quarantined) == (
        "rejected", 0, 0, 0)


def test_file_info_knows_whether_the_text_holds_a_quote_through_gzip_too(tmp_path):
    import gzip

    plain = write_bytes(tmp_path / "a.csv", b"id;name\n1;Ana\n")
    quoted = write_bytes(tmp_path / "b.csv", b'id;name\n1;"Ana"\n')
    packed_plain = write_bytes(tmp_path / "c.csv.gz", gzip.compress(b"id;name\n1;Ana\n"))
    packed_quoted = write_bytes(tmp_path / "d.csv.gz", gzip.compress(b'id;name\n1;"Ana"\n'))
    assert [file_info(p).has_quotes for p in (plain, quoted, packed_plain, packed_quoted)] == [
        False, True, False, True]
