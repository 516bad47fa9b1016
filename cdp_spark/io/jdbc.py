"""JDBC access: credentials from the environment, Spark reads/writes, and SQL statements run in one
transaction through the driver already on the session's classpath (no second client library).

Secrets never appear in URLs, logs or error messages: they are read from environment variables whose
*names* are configured, passed to the driver as properties, and scrubbed from any error text.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import DataFrame, SparkSession


class JdbcError(RuntimeError):
    """A database operation failed; the message names the target and never carries a secret."""


@dataclass(frozen=True)
class JdbcTarget:
    url: str
    driver: str
    user: str
    password: str = field(repr=False)

    def properties(self) -> dict[str, str]:
        return {"driver": self.driver, "user": self.user, "password": self.password}

    def scrub(self, text: str) -> str:
        return text.replace(self.password, "***") if self.password else text


def target_from_env(url: str, driver: str, user_env: str, password_env: str) -> JdbcTarget:
    missing = [name for name in (user_env, password_env) if name not in os.environ]
    if missing:
        raise JdbcError(f"environment variables {missing} are not set; they hold the credentials for {url}")
    return JdbcTarget(url=url, driver=driver, user=os.environ[user_env], password=os.environ[password_env])


def _driver_loaded(spark: SparkSession, target: JdbcTarget) -> None:
    from cdp_spark.session import jdbc_driver_loadable

    if not jdbc_driver_loadable(spark, target.driver):
        raise JdbcError(f"JDBC driver {target.driver} is not on the classpath; add its jar to spark.jars "
                        "(Debian: libpostgresql-jdbc-java, /usr/share/java/postgresql.jar)")


def write(spark: SparkSession, df: DataFrame, target: JdbcTarget, table: str, batch_size: int = 5000) -> None:
    """Creates or replaces ``table`` with ``df``'s rows."""
    _driver_loaded(spark, target)
    try:
        (df.write.format("jdbc").option("url", target.url).option("dbtable", table)
         .option("batchsize", batch_size).option("isolationLevel", "READ_COMMITTED")
         .options(**target.properties()).mode("overwrite").save())
    except Exception as exc:
        raise JdbcError(target.scrub(f"writing {table} at {target.url} failed: {first_line(exc)}")) from None


def read(spark: SparkSession, target: JdbcTarget, query: str) -> DataFrame:
    _driver_loaded(spark, target)
    try:
        return (spark.read.format("jdbc").option("url", target.url).option("query", query)
                .options(**target.properties()).load())
    except Exception as exc:
        raise JdbcError(target.scrub(f"reading from {target.url} failed: {first_line(exc)}")) from None


def execute_in_transaction(spark: SparkSession, target: JdbcTarget, statements: Sequence[str]) -> None:
    """Runs the statements in one transaction on the driver node: all or nothing."""
    _driver_loaded(spark, target)
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    props = jvm.java.util.Properties()
    for key, value in target.properties().items():
        props.setProperty(key, value)
    connection = None
    try:
        driver = jvm.Thread.currentThread().getContextClassLoader().loadClass(target.driver).newInstance()
        connection = driver.connect(target.url, props)
        if connection is None:
            raise JdbcError(f"driver {target.driver} does not accept {target.url}")
        connection.setAutoCommit(False)
        statement = connection.createStatement()
        for sql in statements:
            statement.execute(sql)
        connection.commit()
    except JdbcError:
        raise
    except Exception as exc:
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.rollback()
        raise JdbcError(target.scrub(f"transaction at {target.url} failed and was rolled back: "
                                     f"{first_line(exc)}")) from None
    finally:
        if connection is not None:
            connection.close()


def first_line(exc: BaseException) -> str:
    """A one-line reason: the error's own first line plus, for JVM errors, the root cause's message
    (e.g. "Connection to 127.0.0.1:5432 refused")."""
    text = str(exc).strip()
    head = next((line.strip() for line in text.splitlines() if line.strip()), type(exc).__name__)
    root = _java_root_cause(exc)
    return (f"{head[:300]} (cause: {root[:300]})" if root and root not in head else head[:500])


def _java_root_cause(exc: BaseException) -> str | None:
    java = getattr(exc, "java_exception", None) or getattr(exc, "_origin", None)
    if java is None:
        return None
    try:
        while java.getCause() is not None and java.getCause() != java:
            java = java.getCause()
        return str(java.getMessage() or java.getClass().getName()).splitlines()[0]
    except Exception:
        return None


def quote_ident(name: str) -> str:
    return ".".join(f'"{part}"' for part in name.split("."))


def partitioned_read(spark: SparkSession, target: JdbcTarget, query: str, partition_column: str | None,
                     lower: Any, upper: Any, num_partitions: int, fetch_size: int) -> DataFrame:
    """Reads ``query`` split into ``num_partitions`` ranges of ``partition_column`` between the bounds
    taken at run time (one partition when there is no partition column or no rows)."""
    _driver_loaded(spark, target)
    reader = (spark.read.format("jdbc").option("url", target.url).option("dbtable", f"({query}) AS cdp_src")
              .option("fetchsize", fetch_size).options(**target.properties()))
    if partition_column and lower is not None and upper is not None and lower != upper:
        reader = (reader.option("partitionColumn", partition_column).option("lowerBound", str(lower))
                  .option("upperBound", str(upper)).option("numPartitions", num_partitions))
    return reader.load()


def fetch_one(spark: SparkSession, target: JdbcTarget, query: str) -> dict[str, Any]:
    """The single row ``query`` returns, as a dict (e.g. bounds and the new watermark)."""
    try:
        row = read(spark, target, query).collect()
    except JdbcError:
        raise
    except Exception as exc:
        raise JdbcError(target.scrub(f"reading from {target.url} failed: {first_line(exc)}")) from None
    return row[0].asDict() if row else {}
