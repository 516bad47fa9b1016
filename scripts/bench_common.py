"""What the benchmark scripts share."""

from __future__ import annotations

from pathlib import Path

from pyspark.sql import SparkSession


def jvm_peak_rss_mb(spark: SparkSession) -> float:
    """The Spark JVM's peak resident memory (VmHWM) in MiB, from /proc."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    pid = jvm.ProcessHandle.current().pid()
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")
