"""One writing run per lake: a second run fails at once naming the first, or waits for it; a killed run's
lock is taken over; the lock works the same on a local lake and on one in an S3 bucket."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import boto3
import pytest
from click.testing import CliRunner

from cdp_spark.cli import main
from cdp_spark.config import ObjectStoreSettings
from cdp_spark.io.lock import LOCK_NAME, LakeBusy, hold_lake
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.integration
LOCAL = ObjectStoreSettings()


def test_a_second_run_fails_at_once_naming_the_first_and_writes_nothing(spark, tmp_path):
    lake = tmp_path / "data" / "lake"
    with hold_lake(str(lake), "first0run001", "cdp run", LOCAL):
        held = json.loads((lake / LOCK_NAME).read_text())
        assert (held["run_id"], held["command"], held["host"]) == ("first0run001", "cdp run", socket.gethostname())
        result = CliRunner().invoke(main, ["--conf", str(REPO_ROOT / "conf"), "--data-dir", str(tmp_path / "data"),
                                           "ingest"])
        assert result.exit_code == 7  # the lake is busy
        assert result.output.startswith(f"ERROR: the lake {lake} is in use by run first0run001 (cdp run, host "
                                        f"{socket.gethostname()}, pid ")
        assert "--wait waits up to storage.lock_wait_s" in result.output and "Traceback" not in result.output
        assert sorted(p.name for p in lake.iterdir()) == [LOCK_NAME]  # no table was started
    assert not (lake / LOCK_NAME).exists()  # released at the end of the block


def test_wait_blocks_until_the_holder_finishes(tmp_path):
    lake = str(tmp_path / "lake")
    released = threading.Event()

    def first_run() -> None:
        with hold_lake(lake, "first", "cdp run", LOCAL):
            time.sleep(1.5)
        released.set()

    holder = threading.Thread(target=first_run)
    holder.start()
    time.sleep(0.3)
    with pytest.raises(LakeBusy, match="in use by run first"), hold_lake(lake, "impatient", "cdp score", LOCAL):
        pass
    with hold_lake(lake, "second", "cdp score", LOCAL, wait_s=30, poll_s=0.1):
        assert released.is_set()  # it got the lake only once the first run let go
        assert json.loads((Path(lake) / LOCK_NAME).read_text())["run_id"] == "second"
    holder.join()


def test_a_killed_or_silent_holder_is_taken_over_and_a_failed_run_lets_go(tmp_path):
    lake = tmp_path / "lake"
    lake.mkdir()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    now = time.time()
    for stale in ({"run_id": "killed", "host": socket.gethostname(), "pid": gone.pid, "heartbeat_at": now},
                  {"run_id": "silent", "host": "elsewhere", "pid": 1, "heartbeat_at": now - 3600}):
        (lake / LOCK_NAME).write_text(json.dumps(stale))
        with hold_lake(str(lake), "taker", "cdp run", LOCAL):
            assert json.loads((lake / LOCK_NAME).read_text())["run_id"] == "taker"
    (lake / LOCK_NAME).write_text(json.dumps({"run_id": "alive", "host": "elsewhere", "pid": 1,
                                              "heartbeat_at": time.time()}))
    with pytest.raises(LakeBusy, match="in use by run alive"), hold_lake(str(lake), "taker", "cdp run", LOCAL):
        pass
    (lake / LOCK_NAME).unlink()
    with pytest.raises(RuntimeError, match="stage failed"), hold_lake(str(lake), "failing", "cdp run", LOCAL):
        raise RuntimeError("stage failed")
    assert not (lake / LOCK_NAME).exists()


def test_the_lock_of_a_lake_in_a_bucket(s3_server):
    client = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    client.create_bucket(Bucket="cdp-lake-lock")
    settings = ObjectStoreSettings(endpoint_url=s3_server)
    lake = "s3://cdp-lake-lock/lake"
    with hold_lake(lake, "first", "cdp run", settings):
        held = json.loads(client.get_object(Bucket="cdp-lake-lock", Key=f"lake/{LOCK_NAME}")["Body"].read())
        assert held["run_id"] == "first"
        with pytest.raises(LakeBusy, match="in use by run first"), hold_lake(lake, "second", "cdp run", settings):
            pass
    assert client.list_objects_v2(Bucket="cdp-lake-lock").get("KeyCount") == 0
    with hold_lake(lake, "second", "cdp run", settings):
        pass
