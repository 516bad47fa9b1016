"""Row-level file rules as pure DataFrame transforms (Spark built-ins only).

In:  numbered lines ``_row``, ``value`` (raw text of one record).
Out: typed contract columns + ``_reasons`` (comma-separated reason codes, "" when the row is accepted),
     ``_detail`` (which columns failed), ``_rescued`` (JSON of columns not in the contract), ``value``.

Reason codes: ``invalid_encoding``, ``wrong_column_count``, ``malformed_json``, ``missing_source_key``,
``invalid_value``, ``duplicate_source_key``, ``empty_line``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from cdp_spark.config import ColumnFormat, SourceSettings

REPLACEMENT_CHAR = "\ufffd"


def header_mapping(columns: Sequence[str], contract: SourceSettings) -> list[str]:
    """The contract column each header column fills, in header order: a header name matches a contract
    column's own name or one of its ``from`` names, ignoring case and surrounding spaces; other header
    columns keep their names (they are rescued). Raises ``ValueError`` naming both header columns when two
    of them fill the same contract column."""
    accepted = {alias.strip().lower(): name for name, aliases in contract.accepted_names().items() for alias in aliases}
    mapped = [accepted.get(column.strip().lower(), column) for column in columns]
    for name in dict.fromkeys(mapped):
        sources = [column for column, target in zip(columns, mapped, strict=True) if target == name]
        if len(sources) > 1:
            raise ValueError(f"header columns {sources} both map to the contract column '{name}'; keep one or "
                             f"name it in the contract")
    return mapped


def spark_type(type_name: str) -> str:
    return {"int": "int", "long": "bigint", "double": "double", "boolean": "boolean", "date": "date",
            "timestamp": "timestamp", "string": "string"}.get(type_name, type_name)


def _strings_schema(columns: Sequence[str]) -> str:
    return ", ".join(f"`{c}` STRING" for c in [*columns, "_corrupt"])


def parse_csv(lines: DataFrame, header: Sequence[str], separator: str) -> DataFrame:
    """Splits each line by the file's own header (so columns are mapped by name, whatever their order).
    Adds ``_parse_error`` (``wrong_column_count``) and keeps every header column as a string."""
    options = {"sep": separator, "mode": "PERMISSIVE", "columnNameOfCorruptRecord": "_corrupt", "quote": '"',
               "escape": '"'}
    parsed = lines.withColumn("_p", F.from_csv(F.col("value"), _strings_schema(header), options))
    error = "CASE WHEN value = '' THEN 'empty_line' WHEN _p._corrupt IS NOT NULL THEN 'wrong_column_count' END"
    return parsed.selectExpr("_row", "value", *[f"_p.{sql_name(c)} AS {sql_name(c)}" for c in header],
                             f"{error} AS _parse_error")


def parse_json(lines: DataFrame, columns: Sequence[str], aliases: Mapping[str, Sequence[str]] | None = None,
               ) -> DataFrame:
    """Parses JSON objects, keeping contract columns as strings (a column is filled by its own key or the
    first of its ``aliases`` present; an alias with dots is a path into nested objects, ``address.city``);
    top-level keys outside the contract (and not the head of a path) are rescued into ``_rescued`` (a JSON
    object) so schema drift is kept and reported, not dropped."""
    names = {c: list(dict.fromkeys([c, *((aliases or {}).get(c) or [])])) for c in columns}
    keys = list(dict.fromkeys(k for c in columns for k in names[c] if "." not in k))
    used = [*keys, *[k.split(".")[0] for c in columns for k in names[c] if "." in k]]
    options = {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": "_corrupt"}
    parsed = lines.withColumn("_p", F.from_json(F.col("value"), _strings_schema(keys), options))
    as_map = F.from_json(F.col("value"), "MAP<STRING, STRING>")
    extra = F.map_filter(as_map, lambda k, _v: ~k.isin(*used))
    error = (F.when(F.trim(F.col("value")) == "", F.lit("empty_line"))
             .when(F.col("_p").isNull() | F.col("_p._corrupt").isNotNull(), F.lit("malformed_json")))

    def filled(column: str) -> Column:
        values = [F.get_json_object("value", f"$.{k}") if "." in k else F.col("_p").getField(k)
                  for k in names[column]]
        return values[0] if len(values) == 1 else F.coalesce(*values)

    return parsed.select(
        "_row", "value", *[filled(c).alias(c) for c in columns],
        F.when(F.size(extra) > 0, F.to_json(extra)).alias("_rescued"), error.alias("_parse_error"))


OFFSET_SUFFIX = r"(?i)(z|[+-][0-9]{2}(:?[0-9]{2})?)$"
"""a timestamp text ending in its own UTC offset (Z, +02, +0200, +02:00)"""


def sql_name(column: str) -> str:
    """``column`` as a quoted Spark SQL identifier."""
    return "`" + column.replace("`", "``") + "`"


def sql_string(value: str) -> str:
    """``value`` as a Spark SQL string literal (backslashes and quotes escaped, so any text stays itself)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _one_of(text: str, words: Sequence[str]) -> str:
    """SQL: ``text`` is one of ``words`` (false when there are none)."""
    return f"{text} IN ({', '.join(sql_string(w) for w in words)})" if words else "false"


def _null_token(raw: str, fmt: ColumnFormat) -> str:
    """SQL: the text ``raw`` is one of the column's null tokens (case and surrounding spaces ignored)."""
    if not fmt.null_values:
        return "false"
    return f"coalesce({_one_of(f'lower(trim({raw}))', [v.strip().lower() for v in fmt.null_values])}, false)"


def _typed(column: str, type_name: str, fmt: ColumnFormat) -> str:
    """SQL: the column's text read as ``type_name`` with its formats (``SourceSettings.column_format``): null
    when blank or a null token, null too when it does not parse (``apply_contract`` tells the two apart).
    Built as SQL text, one expression per column: a Column built call by call costs a JVM round trip per
    call, most of a small file's ingest (docs/design.md §9, "Driver cost")."""
    raw = sql_name(column)
    if type_name == "string":  # text keeps its spaces; only a null token is missing
        return f"CASE WHEN {_null_token(raw, fmt)} THEN NULL ELSE {raw} END" if fmt.null_values else raw
    value = f"(CASE WHEN trim({raw}) = '' OR {_null_token(raw, fmt)} THEN NULL ELSE trim({raw}) END)"
    target = spark_type(type_name)
    if type_name == "boolean":
        lowered = f"lower({value})"
        return (f"CASE WHEN {_one_of(lowered, [w.lower() for w in fmt.true_values])} THEN true "
                f"WHEN {_one_of(lowered, [w.lower() for w in fmt.false_values])} THEN false END")
    if type_name == "date":
        return f"coalesce({', '.join(f'to_date({value}, {sql_string(p)})' for p in fmt.patterns or ['yyyy-MM-dd'])})"
    if type_name == "timestamp":
        parsed = (f"coalesce({', '.join(f'to_timestamp({value}, {sql_string(p)})' for p in fmt.patterns)})"
                  if fmt.patterns else f"CAST({value} AS {target})")
        if fmt.timezone:  # naive wall-clock time of the source's zone -> UTC (the session's zone)
            parsed = (f"CASE WHEN {value} RLIKE {sql_string(OFFSET_SUFFIX)} THEN {parsed} "
                      f"ELSE to_utc_timestamp({parsed}, {sql_string(fmt.timezone)}) END")
        return parsed
    if type_name in ("int", "long", "double") or type_name.startswith("decimal("):
        if fmt.thousands_separator:  # groups of three digits, else the value is invalid (12.50 is not 1250)
            sep, mark = re.escape(fmt.thousands_separator), re.escape(fmt.decimal_separator)
            grouped = rf"^[+-]?[0-9]{{1,3}}({sep}[0-9]{{3}})+({mark}[0-9]*)?$"
            thousands = sql_string(fmt.thousands_separator)
            value = (f"(CASE WHEN contains({value}, {thousands}) AND NOT {value} RLIKE {sql_string(grouped)} "
                     f"THEN NULL ELSE replace({value}, {thousands}, '') END)")
        if fmt.decimal_separator != ".":
            value = (f"(CASE WHEN contains({value}, '.') THEN NULL "
                     f"ELSE replace({value}, {sql_string(fmt.decimal_separator)}, '.') END)")
    return f"CAST({value} AS {target})"


def apply_contract(parsed: DataFrame, contract: SourceSettings, present: Sequence[str]) -> DataFrame:
    """Casts every contract column to its type (missing optional columns become null) and collects the
    row's reasons as a comma-separated string (empty when the row is accepted). ``present`` are the
    contract columns the file actually has. Plain built-ins only, so the projection stays code-generated;
    written as SQL text (see :func:`_typed`)."""
    typed_cols, bad_columns, given = [], [], {}
    for column, type_name in contract.columns.items():
        if column in present:
            raw, fmt = sql_name(column), contract.column_format(column)
            typed = _typed(column, type_name, fmt)
            given[column] = f"({raw} IS NOT NULL AND trim({raw}) != '' AND NOT {_null_token(raw, fmt)})"
            bad_columns.append(f"CASE WHEN {given[column]} AND ({typed}) IS NULL THEN {sql_string(column)} END")
        else:
            typed = f"CAST(NULL AS {spark_type(type_name)})"
        typed_cols.append(f"{typed} AS {sql_name(column)}")
    invalid = f"concat_ws(', ', {', '.join(bad_columns)})" if bad_columns else "''"
    # blank or a null token; a key that does not parse is an invalid value
    key_missing = " OR ".join(f"NOT {given[key]}" if key in given else "true" for key in contract.source_key)
    rescued = "_rescued" if "_rescued" in parsed.columns else "CAST(NULL AS string)"
    with_checks = parsed.selectExpr(
        "_row", "value", *typed_cols, f"{rescued} AS _rescued", "_parse_error", f"{invalid} AS _invalid_columns",
        f"{key_missing or 'false'} AS _key_missing")
    parse_ok = "_parse_error IS NULL"
    reasons = ("concat_ws(',', "
               f"CASE WHEN contains(value, {sql_string(REPLACEMENT_CHAR)}) THEN 'invalid_encoding' END, "
               "_parse_error, "
               f"CASE WHEN {parse_ok} AND _key_missing THEN 'missing_source_key' END, "
               f"CASE WHEN {parse_ok} AND _invalid_columns != '' THEN 'invalid_value' END)")
    detail = "CASE WHEN _invalid_columns != '' THEN concat('columns: ', _invalid_columns) END"
    return with_checks.selectExpr("_row", "value", *[sql_name(c) for c in contract.columns], "_rescued",
                                  f"{reasons} AS _reasons", f"{detail} AS _detail")


def duplicate_keys(checked: DataFrame, source_key: Sequence[str]) -> DataFrame:
    """Source keys carried by more than one otherwise valid line: the key columns and ``_first_row``
    (the winning, first valid line). A hash aggregation of the keys alone, no sort of whole rows."""
    keys = [F.col(f"`{k}`") for k in source_key]
    return (checked.where(F.col("_reasons") == "").groupBy(*keys)
            .agg(F.min("_row").alias("_first_row"), F.count(F.lit(1)).alias("_lines"))
            .where(F.col("_lines") > 1).drop("_lines"))


def flag_duplicate_keys(checked: DataFrame, duplicates: DataFrame, source_key: Sequence[str]) -> DataFrame:
    """``checked`` (``_row``, key columns, ``_reasons``, ``_detail``) with later valid lines of each key in
    ``duplicates`` (from :func:`duplicate_keys`) flagged ``duplicate_source_key``, the winning line named in
    ``_detail``. Same columns out; valid lines never have null keys, so an equality join finds them all."""
    flagged = checked.join(duplicates, on=list(source_key), how="left")
    duplicate = (F.col("_reasons") == "") & F.col("_first_row").isNotNull() & (F.col("_row") != F.col("_first_row"))
    return flagged.select(
        *[F.col(f"`{c}`") for c in checked.columns if c not in ("_reasons", "_detail")],
        F.when(duplicate, F.lit("duplicate_source_key")).otherwise(F.col("_reasons")).alias("_reasons"),
        F.when(duplicate, F.concat(F.lit("first seen at line "), F.col("_first_row").cast("string")))
        .otherwise(F.col("_detail")).alias("_detail"))


def row_hash(columns: Sequence[str]) -> Column:
    """A 64-bit xxHash of the typed values as 16 lower-case hex digits, stable across files and runs for the
    same contract types. Which columns are null is hashed too (xxhash64 skips nulls, so a value moved from
    one column into a null neighbour would hash alike). Hashing the typed values, not their text, and 16
    digits, not SHA-256's 64, keep the column cheap to compute and to store: random digits do not compress,
    and SHA-256 text was two thirds of a narrow table's files (docs/design.md §1, "Row hash"). A contract has
    at least one column (its source key)."""
    names = [sql_name(c) for c in columns]
    nulls = ", ".join(f"CASE WHEN {n} IS NULL THEN '1' ELSE '0' END" for n in names)
    return F.expr(f"lower(lpad(hex(xxhash64({', '.join(names)}, concat({nulls}))), 16, '0'))")
