"""Shaping gold tables for a SQL warehouse.

``warehouse_frame(df)``: arrays become comma-joined text and maps JSON text, so every JDBC warehouse
can hold them; other columns pass unchanged.
``swap_statements(schema, table, staging, keys)``: the SQL that replaces the live table by the staging
table and adds its primary key, to run in one transaction.
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
