"""Files through the session's Hadoop filesystem: what Spark itself reads and writes (``file:``, ``s3a://``,
``abfss://``), from the driver, so listings and deletions see exactly what the executors wrote."""

from __future__ import annotations

from typing import Any

from pyspark.sql import SparkSession


def _filesystem(spark: SparkSession, url: str) -> tuple[Any, Any]:
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    path = jvm.org.apache.hadoop.fs.Path(url)
    return path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), path


def list_files(spark: SparkSession, folder: str, missing_ok: bool = False) -> list[tuple[str, int]]:
    """``(path, size)`` of the files directly in ``folder``, sorted by path; paths as the filesystem names
    them (``file:/x/y``, ``s3a://bucket/key``). A missing folder is an error unless ``missing_ok``."""
    fs, path = _filesystem(spark, folder)
    if missing_ok and not fs.exists(path):
        return []
    return sorted((str(s.getPath()), int(s.getLen())) for s in fs.listStatus(path) if s.isFile())


def read_text(spark: SparkSession, url: str) -> str:
    """A (small) file's whole content as UTF-8 text, read on the driver."""
    fs, path = _filesystem(spark, url)
    stream = fs.open(path)
    try:
        return bytes(stream.readAllBytes()).decode("utf-8")
    finally:
        stream.close()


def glob_paths(spark: SparkSession, pattern: str) -> list[str]:
    """The paths matching a Hadoop glob (``<root>/*/*/_delta_log``), sorted."""
    fs, path = _filesystem(spark, pattern)
    return sorted(str(s.getPath()) for s in (fs.globStatus(path) or []))


def delete(spark: SparkSession, url: str) -> None:
    fs, path = _filesystem(spark, url)
    fs.delete(path, False)
