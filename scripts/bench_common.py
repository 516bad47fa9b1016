"""What the benchmark scripts share."""

from __future__ import annotations

import time
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


def java_version(spark: SparkSession) -> str:
    """The driver JVM's version (``java.version``, e.g. ``25.0.1``): figures on different JDKs differ
    (docs/design.md §9, "Java version")."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    return str(jvm.System.getProperty("java.version"))


def cpu_loop_seconds() -> float:
    """Seconds of a fixed pure-Python loop: the machine's speed at the time of the run (these shared 2-core
    hosts differ by tens of percent from one machine and one run to the next; compare figures with it)."""
    start = time.monotonic()
    total = 0
    for i in range(10_000_000):
        total += i * i
    return round(time.monotonic() - start, 2)
