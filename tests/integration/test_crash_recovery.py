"""Kill the ingest job mid-write (SIGKILL to its process group), rerun, and get exactly one copy of each
row: no partial table, no duplicates, rows in = accepted + quarantined."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest

from cdp_spark.io.tables import open_store
from cdp_spark.pipelines import ingest
from cdp_spark.pipelines.common import make_context
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.integration
ROWS = 30_000


def write_orders(landing: Path) -> None:
    path = landing / "orders" / "orders.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        f.write("order_id,customer_source,customer_key,store_id,channel,order_ts,gross_amount,discount_amount,"
                "currency,status\n")
        for i in range(ROWS):
            ts = "broken" if i % 1000 == 0 else "2026-01-02T03:04:05Z"
            f.write(f"O{i:09d},crm,C{i % 97:08d},S01,store,{ts},{i % 50}.25,0.00,EUR,completed\n")


def start_ingest(data: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "cdp_spark.cli", "--conf", str(REPO_ROOT / "conf"), "--data-dir", str(data),
           "--set", "spark.driver_memory=1g", "--set", "spark.shuffle_partitions=1", "ingest"]
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"}
    return subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def kill_when(proc: subprocess.Popen, condition, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail("the ingest job finished before it could be killed mid-write")
        if condition():
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            return
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    pytest.fail("the kill point was never reached")


def staging_in(table_dir: Path) -> bool:
    return table_dir.is_dir() and any(p.name.startswith(".staging-") for p in table_dir.iterdir())


@pytest.mark.parametrize("kill_point", ["during_bronze_write", "after_bronze_commit"])
def test_killed_ingest_reruns_to_exactly_one_copy(spark, tmp_path, cfg_factory, kill_point):
    data = tmp_path / "data"
    write_orders(data / "landing")
    lake = data / "lake"
    proc = start_ingest(data)
    if kill_point == "during_bronze_write":
        kill_when(proc, lambda: staging_in(lake / "bronze" / "orders"))
    else:
        kill_when(proc, lambda: staging_in(lake / "quarantine" / "orders"))
    store = open_store(spark, str(lake), "rs")
    committed = store.exists("bronze.orders")
    assert committed is (kill_point == "after_bronze_commit")
    assert not store.exists("meta.ingestion_log")

    cfg = cfg_factory(data_dir=data)
    outcomes = ingest.run(spark, cfg, make_context(spark, cfg, date(2026, 6, 30)))
    assert [(o.status, o.rows_read, o.rows_accepted, o.rows_quarantined) for o in outcomes] == [
        ("ingested", ROWS, ROWS - 30, 30)]
    bronze = store.read("bronze.orders")
    assert bronze.count() == ROWS - 30 and bronze.select("order_id").distinct().count() == ROWS - 30
    quarantine = store.read("quarantine.orders")
    assert sorted(r._row for r in quarantine.collect()) == [2 + i for i in range(0, ROWS, 1000)]
    assert store.version("bronze.orders") == 0  # one commit only, whichever run made it
    orphans = [p for p in (lake / "bronze" / "orders").glob("*.parquet")]
    store.vacuum("bronze.orders", retention_hours=0)
    live = sorted(Path(u).name for u in _file_names(store, "bronze.orders"))
    assert sorted(p.name for p in (lake / "bronze" / "orders").glob("*.parquet")) == live
    assert len(orphans) >= len(live)


def _file_names(store, table):
    from deltalake import DeltaTable

    return DeltaTable(store.path(table)).file_uris()
