"""Shaping gold tables for a SQL warehouse.

``warehouse_frame(df)``: arrays become comma-joined text and maps JSON text, so every JDBC warehouse
can hold them; other columns pass unchanged.
``swap_statements(schema, table, staging, keys)``: the SQL that replaces the live table by the staging
table and adds its primary key, to run in one transaction.
``upsert_statements(schema, table, changes, deletes, keys, columns)``: the SQL that applies changed rows
(standard ``MERGE``: update by key, insert new keys) and removed keys to the live table, then drops the two
staging tables, to run in one transaction.
``allowed_columns(df, table, allowed)``: only the allow-listed columns (``ValueError`` naming unknown ones).
``columns_query(schema, table)`` / ``erase_statements(schema, table, columns, persons, records)``: the live
table's column names, and the ``DELETE`` statements that remove erased persons and source records from it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, MapType, StructType

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def quoted(identifier: str) -> str:
    if not IDENTIFIER.match(identifier):
        raise ValueError(f"'{identifier}' is not a plain SQL identifier")
    return f'"{identifier}"'


def warehouse_frame(df: DataFrame) -> DataFrame:
    cols = []
    for field in df.schema.fields:
        column = F.col(f"`{field.name}`")
        if isinstance(field.dataType, ArrayType):
            column = F.array_join(column.cast("array<string>"), ",")
        elif isinstance(field.dataType, (MapType, StructType)):
            column = F.to_json(column)
        cols.append(column.alias(field.name))
    return df.select(*cols)


def swap_statements(schema: str, table: str, staging: str, keys: Sequence[str]) -> list[str]:
    live, stage = f"{quoted(schema)}.{quoted(table)}", f"{quoted(schema)}.{quoted(staging)}"
    statements = [f"DROP TABLE IF EXISTS {live}", f"ALTER TABLE {stage} RENAME TO {quoted(table)}"]
    if keys:
        statements.append(f"ALTER TABLE {live} ADD PRIMARY KEY ({', '.join(quoted(k) for k in keys)})")
    return statements


def upsert_statements(schema: str, table: str, changes: str, deletes: str, keys: Sequence[str],
                      columns: Sequence[str]) -> list[str]:
    live = f"{quoted(schema)}.{quoted(table)}"
    changed, removed = f"{quoted(schema)}.{quoted(changes)}", f"{quoted(schema)}.{quoted(deletes)}"
    on = " AND ".join(f"t.{quoted(k)} = s.{quoted(k)}" for k in keys)
    updates = ", ".join(f"{quoted(c)} = s.{quoted(c)}" for c in columns if c not in keys)
    names = ", ".join(quoted(c) for c in columns)
    values = ", ".join(f"s.{quoted(c)}" for c in columns)
    matched = f" WHEN MATCHED THEN UPDATE SET {updates}" if updates else ""
    return [
        f"DELETE FROM {live} t WHERE EXISTS (SELECT 1 FROM {removed} s WHERE {on})",
        f"MERGE INTO {live} t USING {changed} s ON {on}{matched} WHEN NOT MATCHED THEN INSERT ({names}) "
        f"VALUES ({values})",
        f"DROP TABLE {changed}",
        f"DROP TABLE {removed}",
    ]


def columns_query(schema: str, table: str) -> str:
    """One row, ``c``: the table's column names, comma-joined (information_schema, any SQL warehouse)."""
    for name in (schema, table):
        quoted(name)  # raises unless a plain identifier: both go into string literals
    return ("SELECT string_agg(column_name, ',') AS c FROM information_schema.columns "
            f"WHERE table_schema = '{schema}' AND table_name = '{table}'")


def erase_statements(schema: str, table: str, columns: Sequence[str], persons: Sequence[str],
                     records: Sequence[str]) -> list[str]:
    """``DELETE`` of the rows whose ``person_id`` is in ``persons`` or ``record_id`` in ``records``, for the
    id columns the live table has (``columns``); values quoted as SQL literals."""
    live = f"{quoted(schema)}.{quoted(table)}"
    statements = []
    for column, values in (("person_id", persons), ("record_id", records)):
        if column in columns and values:
            listed = ", ".join("'" + v.replace("'", "''") + "'" for v in sorted(values))
            statements.append(f"DELETE FROM {live} WHERE {quoted(column)} IN ({listed})")
    return statements


class UnknownColumns(ValueError):
    """An allow-list names columns the table does not have."""


def allowed_columns(df: DataFrame, table: str, allowed: list[str] | None) -> DataFrame:
    """Only the allow-listed columns (``warehouse.columns``, ``exports.columns``) leave the lake; all when
    none is set."""
    if allowed is None:
        return df
    unknown = [c for c in allowed if c not in df.columns]
    if unknown:
        raise UnknownColumns(f"the column allow-list for {table} names {unknown}, which {table} does not have "
                         f"(columns: {df.columns})")
    return df.select(*[F.col(f"`{c}`") for c in allowed])
