from __future__ import annotations

import os
import sys

import pytest

from cdp_spark.config import SparkSettings, load_config
from cdp_spark.session import (
    CODEGEN_FACTORY_MODE,
    SORT_AGGREGATION_WHEN_SORTED,
    build_session,
    delta_spark_available,
    existing_jars,
    interpreted,
    jdbc_driver_loadable,
    s3a_available,
    session_conf,
    streaming_aggregation,
)
from tests.conftest import JVM_JARS, REPO_ROOT, SUITE_SQL_CONF, restore_suite_sql_conf


def test_local_mode_is_tuned_for_two_cores():
    master, conf = session_conf(load_config(REPO_ROOT / "conf", "local").spark)
    assert master == "local[2]"
    assert (conf["spark.sql.shuffle.partitions"], conf["spark.ui.enabled"], conf["spark.default.parallelism"],
            conf["spark.driver.memory"]) == ("4", "false", "2", "4g")
    assert conf["spark.sql.parquet.outputTimestampType"] == "TIMESTAMP_MICROS"
    assert conf["spark.pyspark.python"] == os.environ.get("PYSPARK_PYTHON", sys.executable)
    # wide generated projections (matching's comparison levels) must be JIT-compiled, not interpreted
    assert "-XX:-DontCompileHugeMethods" in conf["spark.driver.extraJavaOptions"].split()


def test_the_local_driver_runs_the_throughput_collector(spark):
    """The suite's session starts its JVM with the local driver options: the collectors it runs are the
    throughput collector's (docs/design.md §9, "Garbage collector")."""
    beans = spark.sparkContext._jvm.java.lang.management.ManagementFactory.getGarbageCollectorMXBeans()
    assert sorted(bean.getName() for bean in beans) == ["PS MarkSweep", "PS Scavenge"]


def test_a_product_session_in_the_suites_process_is_set_back_to_the_suites_sql_settings(spark):
    """An entry point run in a test's process builds its session with the product's settings: getOrCreate
    returns the suite's session with them applied. The suite's autouse fixture sets its own back after every
    test (``restore_suite_sql_conf``), so no later test runs with what an earlier one left."""
    keys = list(SUITE_SQL_CONF)
    try:
        product = build_session(load_config(REPO_ROOT / "conf", "local").spark)
        assert product is spark
        assert [spark.conf.get(key) for key in keys] == ["4", "true", "-1", "NO_CODEGEN"]
    finally:
        restore_suite_sql_conf(spark)
    assert [spark.conf.get(key) for key in keys] == ["1", "false", "-1", "NO_CODEGEN"]


def test_cluster_never_sets_master_or_local_tuning():
    master, conf = session_conf(load_config(REPO_ROOT / "conf", "cluster").spark)
    assert master is None
    assert "spark.ui.enabled" not in conf and "spark.driver.memory" not in conf
    assert conf["spark.sql.shuffle.partitions"] == "200"
    assert conf["spark.executor.extraJavaOptions"] == "-XX:-DontCompileHugeMethods"


def test_missing_jars_are_left_out(tmp_path):
    jar = tmp_path / "x.jar"
    jar.write_bytes(b"")
    _, local = session_conf(SparkSettings(master="local[1]", jars=[str(jar), "/no/such.jar"]))
    assert local["spark.driver.extraClassPath"] == str(jar) and "spark.jars" not in local
    _, cluster = session_conf(SparkSettings(master=None, jars=[str(jar), "/no/such.jar"]))
    assert cluster["spark.jars"] == str(jar) and "spark.driver.extraClassPath" not in cluster


def test_detects_jvm_classes(spark):
    assert jdbc_driver_loadable(spark, "org.postgresql.Driver")
    assert not jdbc_driver_loadable(spark, "com.example.NoSuchDriver")
    # the suite's session carries delta-spark and hadoop-aws exactly when `make jars` fetched them
    assert delta_spark_available(spark) is bool(existing_jars(JVM_JARS[:1]))
    assert s3a_available(spark) is bool(existing_jars(JVM_JARS[1:]))


def test_jar_globs_expand_and_delta_jars_bring_its_extension_and_catalog(tmp_path):
    for name in ("delta-storage-4.4.0.jar", "delta-spark_4.2_2.13-4.4.0.jar", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    _, conf = session_conf(SparkSettings(master="local[1]", jars=[str(tmp_path / "*.jar"),
                                                                   str(tmp_path / "absent" / "*.jar")]))
    assert conf["spark.driver.extraClassPath"] == ":".join(
        str(tmp_path / n) for n in ("delta-spark_4.2_2.13-4.4.0.jar", "delta-storage-4.4.0.jar"))
    assert (conf["spark.sql.extensions"], conf["spark.sql.catalog.spark_catalog"]) == (
        "io.delta.sql.DeltaSparkSessionExtension", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
    _, without = session_conf(SparkSettings(master="local[1]", jars=[str(tmp_path / "delta-storage-*.jar")]))
    assert "spark.sql.extensions" not in without and "spark.sql.catalog.spark_catalog" not in without


def test_local_mode_binds_to_loopback_unless_told_otherwise(monkeypatch):
    import os

    from cdp_spark.session import bind_local_mode_to_loopback

    monkeypatch.delenv("SPARK_LOCAL_IP", raising=False)
    bind_local_mode_to_loopback(None)  # a cluster's session: its own network
    assert "SPARK_LOCAL_IP" not in os.environ
    bind_local_mode_to_loopback("local[2]")
    assert os.environ["SPARK_LOCAL_IP"] == "127.0.0.1"
    monkeypatch.setenv("SPARK_LOCAL_IP", "10.1.2.3")
    bind_local_mode_to_loopback("local[2]")
    assert os.environ["SPARK_LOCAL_IP"] == "10.1.2.3"


def test_a_long_lived_session_reuses_its_compiled_code(spark):
    """A pipeline run generates about 900 classes: the session keeps them (not Spark's default 100), so a
    plan seen before is not compiled again after many others (planned and compiled, no job run)."""
    compilations = spark._jvm.org.apache.spark.metrics.source.CodegenMetrics.METRIC_COMPILATION_TIME()

    def compile_plan(factor: int) -> None:  # the literal is part of the generated code: one new class each
        spark.range(3).selectExpr(f"id * {factor} + 1 AS x")._jdf.queryExecution().executedPlan().execute()

    spark.conf.set(CODEGEN_FACTORY_MODE, "FALLBACK")  # the product's code generation (the suite's is set back)
    compile_plan(70001)
    before = compilations.getCount()
    for factor in range(70002, 70152):
        compile_plan(factor)
    between = compilations.getCount()
    compile_plan(70001)
    after = compilations.getCount()
    assert between - before >= 150  # the 150 new classes (more only if another thread compiled meanwhile)
    assert after == between  # the first plan's class was still kept: nothing compiled


def test_interpreted_queries_generate_no_code_and_the_sessions_setting_comes_back(spark):
    mode = CODEGEN_FACTORY_MODE

    def whole_stage_code_generated() -> bool:  # Spark marks a whole-stage generated operator "*(n)"
        return "*(" in spark.range(3).selectExpr("id + 1 AS x")._jdf.queryExecution().executedPlan().toString()

    spark.conf.set(mode, "FALLBACK")  # the product's default (the suite interprets)
    assert whole_stage_code_generated()
    with interpreted(spark):
        assert spark.conf.get(mode) == "NO_CODEGEN" and not whole_stage_code_generated()
        assert [r.x for r in spark.range(3).selectExpr("id + 1 AS x").collect()] == [1, 2, 3]
    assert spark.conf.get(mode) == "FALLBACK" and whole_stage_code_generated()
    with pytest.raises(ValueError), interpreted(spark):
        raise ValueError("a failing stage")
    assert spark.conf.get(mode) == "FALLBACK"
    with interpreted(spark, active=False):
        assert spark.conf.get(mode) == "FALLBACK"


def test_streaming_aggregation_holds_only_inside_and_the_sessions_setting_comes_back(spark):
    key = SORT_AGGREGATION_WHEN_SORTED
    assert spark.conf.get(key) == "false"  # Spark's default, which every session keeps (docs/design.md §5)

    def aggregation_of_sorted_rows() -> str:
        # persisted, as the order facts are: the optimizer drops a sort that only feeds an aggregation
        rows = spark.range(6).selectExpr("id % 2 AS k", "id").repartition(2, "k").sortWithinPartitions("k").persist()
        plan = rows.groupBy("k").count()._jdf.queryExecution().executedPlan().toString()
        rows.unpersist()
        return "SortAggregate" if "SortAggregate" in plan else "HashAggregate"

    assert aggregation_of_sorted_rows() == "HashAggregate"
    with streaming_aggregation(spark):
        assert spark.conf.get(key) == "true" and aggregation_of_sorted_rows() == "SortAggregate"
    assert spark.conf.get(key) == "false" and aggregation_of_sorted_rows() == "HashAggregate"
    with pytest.raises(ValueError), streaming_aggregation(spark):
        raise ValueError("a failing stage")
    assert spark.conf.get(key) == "false"
