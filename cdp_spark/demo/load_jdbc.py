"""Loads the generated loyalty members into a database table over JDBC: the demo's JDBC source.

    python -m cdp_spark.demo.load_jdbc --url jdbc:postgresql://127.0.0.1:5432/shop --table public.loyalty_members

Credentials come from the environment variables named by ``--user-env`` / ``--password-env``.
"""

from __future__ import annotations

from pathlib import Path

import click
from pyspark.sql import DataFrame, SparkSession

from cdp_spark.config import SparkSettings
from cdp_spark.io import jdbc

LOYALTY_SCHEMA = ("loyalty_id string, first_name string, last_name string, email string, phone string, "
                  "birth_date date, loyalty_points long, tier string, updated_at timestamp")


def read_loyalty_file(spark: SparkSession, path: str) -> DataFrame:
    return (spark.read.option("header", "true").option("sep", "|").option("enforceSchema", "false")
            .schema(LOYALTY_SCHEMA).csv(path))


def load(spark: SparkSession, path: str, target: jdbc.JdbcTarget, table: str) -> int:
    frame = read_loyalty_file(spark, path)
    jdbc.write(spark, frame, target, table)
    return frame.count()


@click.command()
@click.option("--landing", default="data/landing", show_default=True, type=click.Path(path_type=Path))
@click.option("--url", required=True, help="JDBC URL without credentials")
@click.option("--table", default="public.loyalty_members", show_default=True)
@click.option("--user-env", default="CDP_SOURCE_USER", show_default=True)
@click.option("--password-env", default="CDP_SOURCE_PASSWORD", show_default=True)
def main(landing: Path, url: str, table: str, user_env: str, password_env: str) -> None:
    from cdp_spark.session import build_session

    spark = build_session(SparkSettings(master="local[2]", shuffle_partitions=2,
                                        jars=["/usr/share/java/postgresql.jar"]), "cdp-demo-load-jdbc")
    target = jdbc.target_from_env(url, "org.postgresql.Driver", user_env, password_env)
    rows = load(spark, str(landing / "loyalty" / "loyalty_members.csv"), target, table)
    click.echo(f"loaded {rows} loyalty members into {table} at {url}")


if __name__ == "__main__":
    main()
