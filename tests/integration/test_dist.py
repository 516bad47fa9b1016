"""`make dist`, then the whole pipeline under the pyspark install's spark-submit on the packed artefacts, the
way a cluster launches it: the environment archive and conf.zip shipped with --archives, the Python workers
and the driver running ``./environment/bin/python`` from the archive, the entry point from dist/jobs/. The
tables it writes are read with delta-rs and checked against the end-to-end test's plain-Python computation."""

from __future__ import annotations

import subprocess
import zipfile
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest
from deltalake import DeltaTable

from tests.integration.packed_run import AS_OF, ROOT, PackedRun
from tests.integration.test_pipeline_e2e import expected_order_totals, expected_persons

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def test_spark_submit_runs_the_whole_pipeline_from_the_packed_artefacts(packed_run):
    dist = packed_run.dist  # built and run on a thread since the suite was collected (conftest, packed_run.py)
    wheel = [p.name for p in dist.glob("*.whl")]
    assert wheel == ["cdp_spark-0.1.0-py3-none-any.whl"]
    assert sorted(p.name for p in (dist / "jobs").iterdir()) == sorted(p.name for p in (ROOT / "jobs").glob("*.py"))
    with zipfile.ZipFile(dist / "conf.zip") as conf_zip:
        assert {"base/00_core.yaml", "cluster/00_cluster.yaml", "expectations/gold.person_scores.yaml"} <= set(
            conf_zip.namelist())

    run = packed_run.run
    assert run.returncode == 0, run.stderr[-4000:]
    assert f"as of {AS_OF}" in run.stdout

    data = packed_run.data
    lake = data / "lake"
    manifest = DeltaTable(str(lake / "meta" / "run_manifest")).to_pyarrow_table().to_pylist()
    runs = sorted((row["job"], str(row["as_of"]), row["status"]) for row in manifest)
    assert runs == sorted((job, AS_OF, "succeeded") for job in
                          ("ingest", "normalise", "resolve", "score", "predict", "report", "validate"))
    assert len({row["run_id"] for row in manifest}) == 1
    log = DeltaTable(str(lake / "meta" / "ingestion_log")).to_pyarrow_table().to_pylist()
    assert all(r["rows_read"] == r["rows_accepted"] + r["rows_quarantined"] for r in log)

    # the same persons and order totals as the independent computation over the landing files
    truth = expected_persons(data / "landing")
    by_person: dict[str, set[str]] = defaultdict(set)
    for row in DeltaTable(str(lake / "gold" / "person_registry")).to_pyarrow_table(
            columns=["record_id", "person_id"]).to_pylist():
        by_person[row["person_id"]].add(row["record_id"])
    assert {frozenset(v) for v in by_person.values()} == set(truth.values())
    totals = expected_order_totals(data / "landing", truth)
    scores = {r["person_id"]: (r["orders_total_count"], r["orders_total_amount"]) for r in
              DeltaTable(str(lake / "gold" / "person_scores")).to_pyarrow_table(
                  columns=["person_id", "orders_total_count", "orders_total_amount"]).to_pylist()}
    assert scores == {pid: totals.get(frozenset(members), (0, Decimal("0.00"))) for pid, members in by_person.items()}


@pytest.mark.parametrize("finished", [True, False])
def test_the_packed_runs_outcome_reaches_another_process_as_it_was(tmp_path, finished):
    """An xdist worker reads the controller's outcome from the file: every field as the controller had it."""
    base = tmp_path / "build"
    run = subprocess.CompletedProcess(["spark-submit", "pipeline.py"], 3, "as of 2026-06-30\n", "ERROR: \"x\"\n")
    outcome = PackedRun(base, base / "dist", base / "node", base / "data", base / "make-dist.log",
                        build_returncode=0 if finished else 2, run=run if finished else None,
                        error=None if finished else "RuntimeError: stopped")
    outcome.save(tmp_path / "result.json")
    loaded = PackedRun.load(tmp_path / "result.json")
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]  # no partial file left
    assert (loaded.build_dir, loaded.dist, loaded.node, loaded.data, loaded.build_log) == (
        Path(base), base / "dist", base / "node", base / "data", base / "make-dist.log")
    assert (loaded.build_returncode, loaded.error) == ((0, None) if finished else (2, "RuntimeError: stopped"))
    assert (None if loaded.run is None else (loaded.run.args, loaded.run.returncode, loaded.run.stdout,
                                             loaded.run.stderr)) == (
        (["spark-submit", "pipeline.py"], 3, "as of 2026-06-30\n", 'ERROR: "x"\n') if finished else None)
