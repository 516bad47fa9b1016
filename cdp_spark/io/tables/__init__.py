"""The table layer: the only code that reads or writes lake tables (docs/design.md §2).

Modules: ``protocol`` (the interface, tokens, errors, alignment shared by the engines), ``rs`` and ``spark``
(the engines), ``deltalog`` (the Delta protocol's log file names and actions), ``stats`` (Arrow schemas and
parquet-footer statistics).

One interface, :class:`TableStore`, two engines:

* :class:`SparkDeltaStore` (delta-spark) where ``io.delta.tables.DeltaTable`` loads in the JVM.
* :class:`RsDeltaStore` (delta-rs): Spark writes parquet files into the table directory and the driver
  commits them atomically with delta-rs, with ``AddAction`` statistics from the parquet footers.
  Reads give Spark the snapshot's file list and the schema from the Delta log.

Tables are named ``layer.table`` (``bronze.contacts``) and live at ``<lake_root>/<layer>/<table>``.
Every write can carry an idempotency token ``Txn(app_id, version)``: a write whose token the table has
already seen is skipped, so a retried job never writes twice.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import SparkSession

from cdp_spark.io.tables.deltalog import commit_transactions, log_version, newest_checkpoint_and_later_commits
from cdp_spark.io.tables.protocol import TableError, TableNotFound, TableStore, Txn, WriteMode, WriteResult, split_name
from cdp_spark.io.tables.rs import RsDeltaStore
from cdp_spark.io.tables.spark import SparkDeltaStore
from cdp_spark.io.tables.stats import stats_columns

__all__ = ["RsDeltaStore", "SparkDeltaStore", "TableError", "TableNotFound", "TableStore", "Txn", "WriteMode",
           "WriteResult", "choose_engine", "commit_transactions", "log_version", "newest_checkpoint_and_later_commits",
           "open_store", "split_name", "stats_columns"]


def open_store(spark: SparkSession, lake_root: str, engine: str = "auto",
               private_columns: Sequence[str] = ()) -> TableStore:
    """The table store of ``engine`` (``auto``, ``spark`` or ``rs``; see :func:`choose_engine`) for the lake.
    ``private_columns`` never get min/max statistics in the transaction log (text columns never do)."""
    from cdp_spark.session import delta_spark_available

    if choose_engine(engine, delta_spark_available(spark), lake_root) == "spark":
        return SparkDeltaStore(spark, lake_root, private_columns)
    return RsDeltaStore(spark, lake_root.removeprefix("file://"), private_columns)


def choose_engine(requested: str, delta_spark_loadable: bool, lake_root: str) -> str:
    """``spark`` when asked for, or for ``auto`` when delta-spark's classes load, else ``rs`` (docs/design.md §2);
    a clear error when the choice cannot work: ``spark`` without the classes, ``rs`` on a remote lake."""
    engine = ("spark" if delta_spark_loadable else "rs") if requested == "auto" else requested
    if engine == "spark" and not delta_spark_loadable:
        raise TableError("storage.engine=spark but io.delta.tables.DeltaTable is not loadable in this "
                         "session; add the Delta jars (spark.jars) or use storage.engine=rs")
    if engine == "rs" and "://" in lake_root and not lake_root.startswith("file://"):
        raise TableError(f"the rs engine writes through the local filesystem; lake_root {lake_root} needs "
                         "the delta-spark engine (storage.engine=spark)")
    if engine not in ("spark", "rs"):
        raise TableError(f"storage.engine={requested}: expected auto, spark or rs")
    return engine
