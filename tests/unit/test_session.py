from __future__ import annotations

import os
import sys

from cdp_spark.config import SparkSettings, load_config
from cdp_spark.session import delta_spark_available, jdbc_driver_loadable, session_conf
from tests.conftest import REPO_ROOT


def test_local_mode_is_tuned_for_two_cores():
    master, conf = session_conf(load_config(REPO_ROOT / "conf", "local").spark)
    assert master == "local[2]"
    assert (conf["spark.sql.shuffle.partitions"], conf["spark.ui.enabled"], conf["spark.default.parallelism"],
            conf["spark.driver.memory"]) == ("4", "false", "2", "4g")
    assert conf["spark.sql.parquet.outputTimestampType"] == "TIMESTAMP_MICROS"
    assert conf["spark.pyspark.python"] == os.environ.get("PYSPARK_PYTHON", sys.executable)
    # wide generated projections (matching's comparison levels) must be JIT-compiled, not interpreted
    assert "-XX:-DontCompileHugeMethods" in conf["spark.driver.extraJavaOptions"].split()


def test_cluster_never_sets_master_or_local_tuning():
    master, conf = session_conf(load_config(REPO_ROOT / "conf", "cluster").spark)
    assert master is None
    assert "spark.ui.enabled" not in conf and "spark.driver.memory" not in conf
    assert conf["spark.sql.shuffle.partitions"] == "200"
    assert conf["spark.executor.extraJavaOptions"] == "-XX:-DontCompileHugeMethods"


def test_missing_jars_are_left_out(tmp_path):
    jar = tmp_path / "x.jar"
    jar.write_bytes(b"")
    _, conf = session_conf(SparkSettings(master="local[1]", jars=[str(jar), "/no/such.jar"]))
    assert conf["spark.jars"] == str(jar)


def test_detects_jvm_classes(spark):
    assert jdbc_driver_loadable(spark, "org.postgresql.Driver")
    assert not jdbc_driver_loadable(spark, "com.example.NoSuchDriver")
    assert delta_spark_available(spark) is False  # no Delta jars can be downloaded here
