"""Warehouse sync against a real PostgreSQL on 127.0.0.1: atomic swap, skip of synced versions, clear
errors that never carry the password."""

from __future__ import annotations

from datetime import date

import pytest

from cdp_spark.catalog import PUBLISHED, declared_schema
from cdp_spark.io.jdbc import JdbcError, execute_in_transaction, target_from_env
from cdp_spark.pipelines import sync
from cdp_spark.pipelines.common import make_context

pytestmark = pytest.mark.integration


@pytest.fixture()
def synced_env(spark, postgres, monkeypatch, cfg_factory):
    monkeypatch.setenv("CDP_WAREHOUSE_USER", postgres.user)
    monkeypatch.setenv("CDP_WAREHOUSE_PASSWORD", postgres.password)
    cfg = cfg_factory("warehouse.enabled=true", f"warehouse.url={postgres.jdbc_url}",
                      "warehouse.schema_name=t_sync",
                      "warehouse.tables=[gold.people]", "warehouse.keys={gold.people: [person_id]}")
    ctx = make_context(spark, cfg, date(2026, 6, 30))
    return cfg, ctx


def publish(spark, ctx, table, version):
    from datetime import datetime

    row = (table, version, "test", datetime(2026, 1, 1))
    ctx.store.write(PUBLISHED, spark.createDataFrame([row], declared_schema(PUBLISHED)))


def test_sync_publishes_only_published_versions_and_skips_repeats(spark, postgres, synced_env):
    cfg, ctx = synced_env
    ctx.store.write("gold.people", spark.createDataFrame([("P1", ["crm", "loyalty"], 3)],
                                                         "person_id string, systems array<string>, n int"))
    assert sync.run(spark, cfg, ctx.for_stage()) == {}  # nothing published yet
    publish(spark, ctx, "gold.people", 0)
    unpublished = spark.createDataFrame([("P9", ["x"], 1)], "person_id string, systems array<string>, n int")
    ctx.store.write("gold.people", unpublished, mode="overwrite")  # a newer version, never published
    assert sync.run(spark, cfg, ctx.for_stage()) == {"gold.people": 1}
    assert postgres.psql("SELECT person_id, systems, n FROM t_sync.people") == "P1|crm,loyalty|3"
    assert sync.run(spark, cfg, ctx.for_stage()) == {}  # same version: skipped


def test_failed_swap_keeps_previous_table_and_hides_password(spark, postgres, synced_env, monkeypatch):
    cfg, ctx = synced_env
    ctx.store.write("gold.people", spark.createDataFrame([("P1", 1)], "person_id string, n int"))
    publish(spark, ctx, "gold.people", 0)
    sync.run(spark, cfg, ctx.for_stage())
    target = target_from_env(postgres.jdbc_url, "org.postgresql.Driver", "CDP_WAREHOUSE_USER", "CDP_WAREHOUSE_PASSWORD")
    with pytest.raises(JdbcError, match="rolled back") as err:
        execute_in_transaction(spark, target, ['DROP TABLE "t_sync"."people"', "SELECT * FROM no_such_table"])
    assert postgres.psql("SELECT person_id, n FROM t_sync.people") == "P1|1"
    assert postgres.password not in str(err.value)

    monkeypatch.setenv("CDP_WAREHOUSE_PASSWORD", "wrong-" + postgres.password)
    wrong = target_from_env(postgres.jdbc_url, "org.postgresql.Driver", "CDP_WAREHOUSE_USER", "CDP_WAREHOUSE_PASSWORD")
    with pytest.raises(JdbcError, match="password authentication failed") as err:
        execute_in_transaction(spark, wrong, ["SELECT 1"])
    assert wrong.password not in str(err.value) and postgres.password not in str(err.value)


def test_incremental_sync_sends_only_changes_atomically(spark, postgres, synced_env):
    cfg, ctx = synced_env
    schema = "person_id string, systems array<string>, n int"
    ctx.store.write("gold.people", spark.createDataFrame(
        [("P1", ["crm"], 1), ("P2", ["crm"], 2), ("P3", ["shop"], 3)], schema))
    publish(spark, ctx, "gold.people", 0)
    assert sync.run(spark, cfg, ctx.for_stage()) == {"gold.people": 3}  # first sync: full
    untouched = postgres.psql("SELECT xmin FROM t_sync.people WHERE person_id = 'P3'")

    # P1 changed, P2 removed, P3 unchanged, P4 new
    ctx.store.write("gold.people", spark.createDataFrame(
        [("P1", ["crm", "shop"], 10), ("P3", ["shop"], 3), ("P4", [], 4)], schema), mode="overwrite")
    publish(spark, ctx, "gold.people", 1)
    assert sync.run(spark, cfg, ctx.for_stage()) == {"gold.people": 3}  # 2 upserted + 1 deleted
    assert postgres.psql("SELECT person_id, systems, n FROM t_sync.people ORDER BY person_id") == \
        "P1|crm,shop|10\nP3|shop|3\nP4||4"
    assert postgres.psql("SELECT xmin FROM t_sync.people WHERE person_id = 'P3'") == untouched  # not rewritten
    log = ctx.store.read("meta.sync_log").orderBy("table_version").collect()
    assert [(r.table_version, r.mode, r.rows, r.upserted, r.deleted) for r in log] == [
        (0, "full", 3, 3, 0), (1, "incremental", 3, 2, 1)]

    # a change the warehouse refuses: the whole transaction rolls back, staging tables are gone
    postgres.psql("ALTER TABLE t_sync.people ADD CONSTRAINT small_n CHECK (n < 100)")
    ctx.store.write("gold.people", spark.createDataFrame(
        [("P1", ["crm"], 11), ("P3", ["shop"], 500), ("P4", [], 4)], schema), mode="overwrite")
    publish(spark, ctx, "gold.people", 2)
    with pytest.raises(JdbcError, match="rolled back"):
        sync.run(spark, cfg, ctx.for_stage())
    assert postgres.psql("SELECT person_id, n FROM t_sync.people ORDER BY person_id") == "P1|10\nP3|3\nP4|4"
    assert postgres.psql("SELECT count(*) FROM information_schema.tables WHERE table_schema = 't_sync' "
                         "AND table_name LIKE 'people__%'") == "0"


def test_missing_credentials_name_the_variables(monkeypatch):
    monkeypatch.delenv("CDP_WAREHOUSE_PASSWORD", raising=False)
    monkeypatch.setenv("CDP_WAREHOUSE_USER", "u")
    with pytest.raises(JdbcError, match=r"environment variables \['CDP_WAREHOUSE_PASSWORD'\] are not set"):
        target_from_env("jdbc:postgresql://127.0.0.1/x", "org.postgresql.Driver", "CDP_WAREHOUSE_USER",
                        "CDP_WAREHOUSE_PASSWORD")


def test_demo_loyalty_table_loads_over_jdbc(spark, postgres, monkeypatch, tmp_path):
    from cdp_spark.demo.generator import generate
    from cdp_spark.demo.load_jdbc import load

    counts = generate(tmp_path / "landing", customers=80, seed=2)
    monkeypatch.setenv("SRC_USER", postgres.user)
    monkeypatch.setenv("SRC_PW", postgres.password)
    target = target_from_env(postgres.jdbc_url, "org.postgresql.Driver", "SRC_USER", "SRC_PW")
    execute_in_transaction(spark, target, ["CREATE SCHEMA IF NOT EXISTS shop"])
    loaded = load(spark, str(tmp_path / "landing" / "loyalty" / "loyalty_members.csv"), target, "shop.loyalty_members")
    assert loaded == counts["loyalty_members"]
    assert postgres.psql("SELECT count(*), count(DISTINCT loyalty_id), min(loyalty_id) FROM shop.loyalty_members") == (
        f"{loaded}|{loaded}|L00000001")
