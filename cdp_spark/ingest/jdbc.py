"""JDBC sources as queries and pure transforms: the incremental window (watermark minus the overlap), the
queries ingest sends, and the rows checked (missing key, repeated key: the newest row per key wins)."""

from __future__ import annotations

from datetime import datetime

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from cdp_spark.config import JdbcSourceSettings
from cdp_spark.ingest.rules import spark_type
from cdp_spark.io.jdbc import quote_ident


def watermark_filter(source: JdbcSourceSettings, previous: str | None) -> str:
    """`` WHERE <watermark> > <previous> - <overlap>``, or "" for a first or full read."""
    if not source.watermark_column or previous is None:
        return ""
    column = quote_ident(source.watermark_column)
    if source.columns[source.watermark_column] in ("timestamp", "date"):
        return (f" WHERE {column} > CAST('{datetime.fromisoformat(previous).isoformat(sep=' ')}' AS TIMESTAMP)"
                f" - INTERVAL '{source.overlap_seconds} seconds'")
    return f" WHERE {column} > {float(previous) - source.overlap_seconds}"


def window_stats_query(source: JdbcSourceSettings, where: str) -> str:
    """One row: ``lo``/``hi`` of the partition column (for the partitioned read), ``n`` rows, ``wm`` the newest
    watermark value in the window."""
    part = quote_ident(source.partition_column) if source.partition_column else "NULL"
    mark = quote_ident(source.watermark_column) if source.watermark_column else "NULL"
    return f"SELECT min({part}) AS lo, max({part}) AS hi, count(*) AS n, max({mark}) AS wm FROM " \
           f"{quote_ident(source.table)}{where}"


def rows_query(source: JdbcSourceSettings, where: str) -> str:
    columns = ", ".join(quote_ident(c) for c in source.columns)
    return f"SELECT {columns} FROM {quote_ident(source.table)}{where}"


def checked_jdbc_rows(raw: DataFrame, source: JdbcSourceSettings) -> DataFrame:
    """The contract's columns cast to their types, ``value`` (the row as JSON, for the quarantine) and
    ``reason``: ``missing_source_key``, ``duplicate_source_key`` for all but the newest row of a key (by the
    watermark column, then the row's text), else null."""
    typed = raw.select(*[F.col(c).cast(spark_type(t)).alias(c) for c, t in source.columns.items()],
                       F.to_json(F.struct(*[F.col(c) for c in source.columns])).alias("value"))
    key_missing = F.lit(False)
    for key in source.source_key:
        key_missing = key_missing | F.col(key).isNull()
    newest_first = [F.col(source.watermark_column).desc_nulls_last()] if source.watermark_column else []
    rank = F.row_number().over(Window.partitionBy(*source.source_key).orderBy(*newest_first, F.col("value")))
    return (typed.withColumn("_rank", F.when(~key_missing, rank))
            .withColumn("reason", F.when(key_missing, F.lit("missing_source_key"))
                        .when(F.col("_rank") > 1, F.lit("duplicate_source_key"))))
