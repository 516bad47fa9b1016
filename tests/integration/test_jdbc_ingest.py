"""JDBC sources against a real PostgreSQL: partitioned incremental reads by watermark with an overlap
window, merge on key, watermark in the same commit as the data, full refresh, and failures (database
down at start, connection lost mid-read) that write nothing and never show the password."""

from __future__ import annotations

import threading
import time
from datetime import date, datetime

import pytest
from chispa import assert_df_equality

from cdp_spark.config import JdbcSourceSettings
from cdp_spark.io import jdbc
from cdp_spark.pipelines import ingest
from cdp_spark.pipelines.common import make_context
from tests.integration.s3 import free_port

pytestmark = pytest.mark.integration
COLUMNS = {"loyalty_id": "string", "email": "string", "loyalty_points": "long", "updated_at": "timestamp"}


@pytest.fixture()
def members(postgres, monkeypatch, request):
    monkeypatch.setenv("SRC_DB_USER", postgres.user)
    monkeypatch.setenv("SRC_DB_PASSWORD", postgres.password)
    table = f"src.members_{request.node.name[:20].lower().replace('[', '_').replace(']', '')}"
    postgres.psql(f"CREATE SCHEMA IF NOT EXISTS src; DROP TABLE IF EXISTS {table}; "
                  f"CREATE TABLE {table} (loyalty_id text, email text, loyalty_points bigint, updated_at timestamp);"
                  f"INSERT INTO {table} VALUES ('L1','a@x.es',10,'2026-01-01 10:00'),"
                  f"('L2','b@x.es',20,'2026-01-02 10:00'),"
                  f"('L3','c@x.es',30,'2026-01-03 10:00'), ('L4','d@x.es',40,'2026-01-04 10:00'),"
                  f"(NULL,'nokey@x.es',1,'2026-01-04 11:00')")
    return table


def jdbc_cfg(cfg_factory, url: str, table: str, **extra):
    cfg = cfg_factory()
    source = JdbcSourceSettings(entity="loyalty", system="loyalty", url=url, table=table, user_env="SRC_DB_USER",
                                password_env="SRC_DB_PASSWORD", source_key=["loyalty_id"], columns=COLUMNS,
                                watermark_column="updated_at", overlap_seconds=3600, partition_column="updated_at",
                                num_partitions=3, fetch_size=2, **extra)
    return cfg.model_copy(update={"sources": {}, "jdbc_sources": {"loyalty_db": source}})


def bronze(store, spark):
    return store.read("bronze.loyalty").select("loyalty_id", "email", "loyalty_points").orderBy("loyalty_id")


def rows(spark, data):
    return spark.createDataFrame(data, "loyalty_id string, email string, loyalty_points long")


def test_incremental_by_watermark_with_overlap_and_merge(spark, postgres, members, cfg_factory):
    cfg = jdbc_cfg(cfg_factory, postgres.jdbc_url, members)
    ctx = make_context(spark, cfg, date(2026, 6, 30))
    [first] = ingest.run(spark, cfg, ctx)
    assert (first.rows_read, first.rows_accepted, first.rows_quarantined) == (5, 4, 1)
    # the run's counts (run manifest, summary) include the JDBC table's rows
    assert ctx.counts["ingest"] == {"files": 1, "rows_read": 5, "rows_accepted": 4, "rows_quarantined": 1}
    assert ctx.store.latest_metadata("bronze.loyalty", "cdp.watermark.loyalty_db") == "2026-01-04T11:00:00"
    assert [r.reason for r in ctx.store.read("quarantine.loyalty").collect()] == ["missing_source_key"]

    postgres.psql(f"UPDATE {members} SET loyalty_points = 99, updated_at = '2026-02-01 09:00' WHERE loyalty_id = 'L2';"
                  f"INSERT INTO {members} VALUES ('L5','e@x.es',50,'2026-02-02 09:00')")
    [second] = ingest.run(spark, cfg, make_context(spark, cfg, date(2026, 6, 30)))
    # rows after 10:00 on 4 January (watermark 11:00 minus the one-hour overlap): the keyless 11:00 row is
    # read again, L4 (exactly 10:00) is not
    assert (second.rows_read, second.rows_accepted, second.rows_quarantined) == (3, 2, 1)
    assert_df_equality(bronze(ctx.store, spark), rows(spark, [
        ("L1", "a@x.es", 10), ("L2", "b@x.es", 99), ("L3", "c@x.es", 30), ("L4", "d@x.es", 40), ("L5", "e@x.es", 50)]),
        ignore_nullable=True)
    history = ctx.store.history("bronze.loyalty")
    newest = max(history, key=lambda h: h["version"])
    assert newest["cdp.watermark.loyalty_db"] == "2026-02-02T09:00:00" and newest["cdp.operation"] == "MERGE"

    [third] = ingest.run(spark, cfg, make_context(spark, cfg, date(2026, 6, 30)))
    assert third.rows_read == 1  # only the overlap window after 08:00 on 2 February: L5
    [full] = ingest.run(spark, cfg, make_context(spark, cfg, date(2026, 6, 30), full_refresh=True))
    assert (full.rows_read, full.rows_accepted) == (6, 5)
    assert bronze(ctx.store, spark).count() == 5


def test_database_down_at_start_writes_nothing(spark, postgres, members, cfg_factory, caplog):
    cfg = jdbc_cfg(cfg_factory, f"jdbc:postgresql://127.0.0.1:{free_port()}/warehouse", members)
    ctx = make_context(spark, cfg, date(2026, 6, 30))
    refused = r"Couldn.t connect to the database .*\(cause: Connection refused\)"
    with pytest.raises(jdbc.JdbcError, match=refused) as err:
        ingest.run(spark, cfg, ctx)
    assert postgres.password not in str(err.value) + caplog.text
    assert not ctx.store.exists("bronze.loyalty")


def test_connection_lost_mid_read_commits_nothing(spark, postgres, members, cfg_factory):
    postgres.psql(f"INSERT INTO {members} SELECT 'M' || g, 'm' || g || '@x.es', g, "
                  f"timestamp '2026-03-01' + g * interval '1 minute' FROM generate_series(1, 400) g;"
                  f"CREATE OR REPLACE FUNCTION src.slow_{members.split('.')[1]}() RETURNS SETOF {members} AS $$ "
                  f"DECLARE r record; BEGIN FOR r IN SELECT * FROM {members} LOOP PERFORM pg_sleep(0.02); "
                  f"RETURN NEXT r; END LOOP; END $$ LANGUAGE plpgsql;"
                  f"CREATE OR REPLACE VIEW {members}_slow AS SELECT * FROM src.slow_{members.split('.')[1]}()")
    cfg = jdbc_cfg(cfg_factory, postgres.jdbc_url, f"{members}_slow")
    ctx = make_context(spark, cfg, date(2026, 6, 30))
    errors: list[BaseException] = []

    def run_ingest() -> None:
        try:
            ingest.run(spark, cfg, ctx)
        except BaseException as exc:  # handed to the test thread
            errors.append(exc)

    worker = threading.Thread(target=run_ingest)
    worker.start()
    time.sleep(3)
    postgres.psql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                  f"WHERE query LIKE '%{members.split('.')[1]}_slow%' "
                  f"AND pid <> pg_backend_pid()")
    worker.join(timeout=120)
    assert len(errors) == 1 and isinstance(errors[0], jdbc.JdbcError)
    message = str(errors[0])
    assert "terminat" in message.lower() and postgres.password not in message
    assert not ctx.store.exists("bronze.loyalty")


def test_plans_and_logs_carry_no_secret(spark, postgres, members, cfg_factory, caplog):
    target = jdbc.target_from_env(postgres.jdbc_url, "org.postgresql.Driver", "SRC_DB_USER", "SRC_DB_PASSWORD")
    frame = jdbc.partitioned_read(spark, target, f"SELECT * FROM {members}", "updated_at",
                                  datetime(2026, 1, 1), datetime(2026, 1, 5), 2, 100)
    plan = frame._jdf.queryExecution().toString()
    assert "JDBCRelation" in plan and postgres.password not in plan
    cfg = jdbc_cfg(cfg_factory, postgres.jdbc_url, members)
    ingest.run(spark, cfg, make_context(spark, cfg, date(2026, 6, 30)))
    manifest = make_context(spark, cfg).store.read("meta.run_manifest").collect()
    assert postgres.password not in caplog.text + str(manifest)
