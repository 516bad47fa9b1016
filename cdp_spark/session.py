"""Spark session factory.

Local mode (``spark.master`` configured, e.g. ``local[2]``) gets settings tuned for a small machine;
on a cluster ``master`` is left unset so spark-submit / Databricks / EMR decide. The session is built
once per job and passed in everywhere; nothing here keeps a global.
"""

from __future__ import annotations

import glob
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pyspark import SparkContext
from pyspark.find_spark_home import _find_spark_home
from pyspark.sql import SparkSession

from cdp_spark.class_archive import archive_in, archive_key, class_archive_options, default_archive_dir, java_executable
from cdp_spark.config import SparkSettings

log = logging.getLogger(__name__)

DELTA_TABLE_CLASS = "io.delta.tables.DeltaTable"
DELTA_SESSION_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}

# Settings every session gets, local or cluster: behaviour the pipeline relies on.
REQUIRED_CONF = {
    "spark.sql.session.timeZone": "UTC",
    # Delta readers expect INT64 microsecond timestamps, not Spark's legacy INT96.
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.parquet.datetimeRebaseModeInWrite": "CORRECTED",
    "spark.sql.parquet.int96RebaseModeInWrite": "CORRECTED",
    "spark.sql.legacy.timeParserPolicy": "CORRECTED",
    "spark.sql.ansi.enabled": "false",
    # PySpark records the Python call site of every DataFrame/Column call for error messages: five JVM round
    # trips per call, most of the driver's time in a small file's ingest (docs/design.md §9, "Driver cost")
    "spark.python.sql.dataFrameDebugging.enabled": "false",
}

# Local mode on a 2-core machine: few shuffle partitions, no UI, adaptive execution.
LOCAL_CONF = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.adaptive.enabled": "true",
    "spark.sql.adaptive.coalescePartitions.enabled": "true",
    "spark.default.parallelism": "2",
    "spark.rdd.compress": "true",
    # Cached frames stay uncompressed: building compressed column batches cost more CPU (two cores) than
    # the memory it saved (e.g. ingest's 12.7M checked order lines: 30 s -> 21 s to cache).
    "spark.sql.inMemoryColumnarStorage.compressed": "false",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    # rows per Arrow batch to a Python worker (default 10,000): the string similarities of 1.65M candidate
    # pairs with their comparison levels took 7.1-7.5 s in batches of 10,000, 6.6-7.1 s in batches of 50,000
    "spark.sql.execution.arrow.maxRecordsPerBatch": "50000",
    # HotSpot does not compile methods over 8,000 bytes of bytecode; whole-stage code generation inlines a
    # projection's expressions into one method, so a wide one (matching's comparison levels) ran
    # interpreted: 10.4 s -> 2.9 s for the levels of 1.85M pairs with the limit lifted.
    # The throughput collector, not G1: a batch driver wants throughput, and G1's concurrent threads competed
    # with the work for two cores (docs/design.md §9, "Garbage collector", with the figures).
    "spark.driver.extraJavaOptions": ("-XX:+UseParallelGC -XX:-DontCompileHugeMethods"
                                      " -Dio.netty.tryReflectionSetAccessible=true"
                                      f" -Dlog4j2.configurationFile={Path(__file__).with_name('log4j2.properties')}"),
    "spark.sql.warehouse.dir": "spark-warehouse",
    # compiled generated classes kept for reuse (default 100): one pipeline run needs about 900, so with 100 a
    # long-lived session (a notebook, a scheduler, a second run) compiled them all again and ran them cold;
    # the demo's second run in one session 32.7-35.6 s -> 27.4-28.3 s, the 100k resolve's 53-64 s -> 41-47 s
    "spark.sql.codegen.cache.maxEntries": "5000",
    # delta-spark rebuilds a table's state (e.g. for every write with txnAppId) in 50 partitions by default:
    # on two cores a write to moto's S3 took 19 s with them, 10 s with 2
    "spark.databricks.delta.snapshotPartitions": "2",
    # delta-spark's VACUUM lists the table in this many tasks (default 10,000: 50 s for a small table here)
    "spark.sql.sources.parallelPartitionDiscovery.parallelism": "8",
}


def existing_jars(paths: list[str]) -> list[str]:
    """The configured jars that exist on this machine (e.g. Debian's PostgreSQL JDBC driver). An entry with
    ``*`` is a glob (``build/jars/spark-4.2/delta/*.jar``, what ``make jars`` fetched): its matches, sorted,
    or nothing when the folder is absent."""
    found: list[str] = []
    for entry in paths:
        if "*" in entry:
            found += sorted(glob.glob(entry))
        elif Path(entry).is_file():
            found.append(entry)
        else:
            log.warning("configured jar %s not found; features needing it will fail clearly", entry)
    return found


def session_conf(settings: SparkSettings) -> tuple[str | None, dict[str, str]]:
    """The master to set (None on clusters) and the Spark settings for ``settings``."""
    conf: dict[str, str] = dict(REQUIRED_CONF)
    is_local = bool(settings.master) and str(settings.master).startswith("local")
    if is_local:
        conf.update(LOCAL_CONF)
        # Python workers run the driver's interpreter (the venv with pandas, phonenumbers, rapidfuzz).
        conf["spark.pyspark.python"] = os.environ.get("PYSPARK_PYTHON", sys.executable)
        if settings.driver_memory:
            conf["spark.driver.memory"] = settings.driver_memory
    conf["spark.sql.shuffle.partitions"] = str(settings.shuffle_partitions)
    jars = existing_jars(settings.jars)
    if jars and is_local:
        # one JVM: the driver's class path serves its executor threads too, and spares the copy spark.jars
        # makes of every jar (the AWS SDK bundle is 686 MB: +7 s per session start here)
        conf["spark.driver.extraClassPath"] = os.pathsep.join(str(Path(jar).absolute()) for jar in jars)
    elif jars:
        conf["spark.jars"] = ",".join(jars)
    if any(Path(jar).name.startswith("delta-spark_") for jar in jars):
        conf.update(DELTA_SESSION_CONF)  # delta-spark's SQL extension and catalog, as its docs require
    conf.update(settings.conf)
    return settings.master, conf


def bind_local_mode_to_loopback(master: str | None) -> None:
    """Local mode talks to itself only: bind it to loopback, without Spark's warnings about a hostname that
    resolves there (a user's own SPARK_LOCAL_IP wins; a cluster's master is left alone)."""
    if (master or "").startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")


def driver_class_path(conf: dict[str, str]) -> list[Path]:
    """The local driver JVM's class path as spark-submit builds it: the extra class path, then Spark's jars."""
    extra = [Path(entry) for entry in conf.get("spark.driver.extraClassPath", "").split(os.pathsep) if entry]
    return [*extra, *sorted((Path(_find_spark_home()) / "jars").glob("*.jar"))]


def with_class_archive(settings: SparkSettings, conf: dict[str, str]) -> dict[str, str]:
    """``conf`` with the driver JVM options that map (or, the first time, write) the class-data-sharing
    archive for this JVM and class path (``cdp_spark.class_archive``); unchanged on clusters, when switched
    off, without a java to inspect, or when the JVM already runs (this process's, or spark-submit's)."""
    java = java_executable()
    jvm_running = SparkContext._gateway is not None or "PYSPARK_GATEWAY_PORT" in os.environ
    local = (settings.master or "").startswith("local")
    if not settings.class_data_sharing or not local or java is None or jvm_running:
        return conf
    options = conf.get("spark.driver.extraJavaOptions", "")
    key = archive_key(java, driver_class_path(conf), conf.get("spark.driver.memory", ""))
    directory = Path(settings.class_archive_dir).expanduser() if settings.class_archive_dir else default_archive_dir()
    try:
        archive = class_archive_options(directory, key)
    except OSError as exc:  # a read-only or full cache folder costs speed, never the run
        log.info("no class-data-sharing archive (%s)", exc)
        return conf
    return {**conf, "spark.driver.extraJavaOptions": f"{options} {archive}".strip()}


def _start(settings: SparkSettings, app_name: str | None, conf: dict[str, str]) -> SparkSession:
    builder = SparkSession.builder.appName(app_name or settings.app_name)
    if settings.master:
        builder = builder.master(settings.master)
    for key, value in conf.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def build_session(settings: SparkSettings, app_name: str | None = None) -> SparkSession:
    """Returns a SparkSession for the settings (creates or reuses the active one)."""
    master, conf = session_conf(settings)
    if "spark.pyspark.python" in conf:
        # PySpark takes the workers' interpreter from this variable only, when the context starts.
        os.environ.setdefault("PYSPARK_PYTHON", conf["spark.pyspark.python"])
    bind_local_mode_to_loopback(master)
    archived = with_class_archive(settings, conf)
    archive = archive_in(archived.get("spark.driver.extraJavaOptions", ""))
    try:
        spark = _start(settings, app_name, archived)
    except Exception:
        if archive is None:
            raise
        # a damaged archive can stop the JVM from starting: drop it, start without (the next run writes one)
        log.warning("the driver JVM did not start with class archive %s: removed, starting without it", archive)
        archive.unlink(missing_ok=True)
        spark = _start(settings, app_name, conf)
    spark.sparkContext.setLogLevel("WARN")
    return spark


def delta_spark_available(spark: SparkSession) -> bool:
    """True when delta-spark's JVM classes can be loaded in this session (Databricks, EMR with Delta,
    ``spark.jars`` pointing at Delta jars)."""
    try:
        jvm = spark.sparkContext._jvm
        assert jvm is not None
        jvm.java.lang.Class.forName(DELTA_TABLE_CLASS, True, jvm.Thread.currentThread().getContextClassLoader())
        return True
    except Exception:  # py4j raises Py4JJavaError for ClassNotFoundException
        return False


S3A_FILESYSTEM = "org.apache.hadoop.fs.s3a.S3AFileSystem"


def s3a_available(spark: SparkSession) -> bool:
    """True when the session can read ``s3a://`` paths itself (hadoop-aws on the classpath)."""
    return jdbc_driver_loadable(spark, S3A_FILESYSTEM)


def jdbc_driver_loadable(spark: SparkSession, driver_class: str) -> bool:
    """True when the class (a JDBC driver, a filesystem) is on the session's classpath."""
    try:
        jvm = spark.sparkContext._jvm
        assert jvm is not None
        jvm.java.lang.Class.forName(driver_class, True, jvm.Thread.currentThread().getContextClassLoader())
        return True
    except Exception:
        return False


CODEGEN_FACTORY_MODE = "spark.sql.codegen.factoryMode"
SORT_AGGREGATION_WHEN_SORTED = "spark.sql.execution.replaceHashWithSortAgg"


@contextmanager
def sql_setting(spark: SparkSession, key: str, value: str) -> Iterator[None]:
    """The session's SQL setting ``key`` is ``value`` for the queries planned and run inside; the session's own
    value (or its default) is back afterwards, also after an exception."""
    before = spark.conf.get(key, None)
    spark.conf.set(key, value)
    try:
        yield
    finally:
        if before is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, before)


@contextmanager
def interpreted(spark: SparkSession, active: bool = True) -> Iterator[None]:
    """Queries planned and run inside use Spark's expression interpreter instead of generated Java (which also
    turns whole-stage code generation off) when ``active``; the session's own setting is back afterwards. On
    small data compiling a class per query and running it cold in the JVM costs more than interpreting
    (docs/design.md §9, "Compiled code")."""
    if not active:
        yield
        return
    with sql_setting(spark, CODEGEN_FACTORY_MODE, "NO_CODEGEN"):
        yield


@contextmanager
def streaming_aggregation(spark: SparkSession) -> Iterator[None]:
    """Inside, an aggregation whose input already comes sorted by its grouping keys runs as a sort aggregation,
    which streams over the rows, instead of a hash aggregation. For the score library over the sorted order
    facts (docs/design.md §5, "Layout of the order facts"); not session-wide, because Spark generates no code
    for a sort aggregation with keys, and a simple one (sums, counts) runs faster hashed in generated code."""
    with sql_setting(spark, SORT_AGGREGATION_WHEN_SORTED, "true"):
        yield
