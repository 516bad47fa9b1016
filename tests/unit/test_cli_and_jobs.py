from __future__ import annotations

import importlib
import runpy
from pathlib import Path

import pytest
from click.testing import CliRunner

from cdp_spark.cli import main
from cdp_spark.jobs_main import JOBS, cli_args
from tests.conftest import REPO_ROOT


def test_every_job_file_is_a_thin_entry_point_to_a_pipeline():
    files = sorted(p.stem for p in (REPO_ROOT / "jobs").glob("*.py"))
    assert files == sorted(JOBS)
    for job in JOBS:
        module = importlib.import_module(f"cdp_spark.pipelines.{job}")
        assert callable(module.run)
        text = (REPO_ROOT / "jobs" / f"{job}.py").read_text()
        assert f'main("{job}")' in text
        runpy.run_path(str(REPO_ROOT / "jobs" / f"{job}.py"), run_name="not_main")  # imports cleanly


def test_job_arguments_are_the_cdp_command_line():
    assert cli_args("score", ["--conf", "c", "--env", "local", "--as-of", "2026-06-30", "--set", "a.b=1"]) == [
        "--set", "spark.app_name=cdp-score", "--conf", "c", "--env", "local", "--as-of", "2026-06-30",
        "--set", "a.b=1", "score"]
    assert cli_args("pipeline", ["--since", "2026-06-01", "--as-of=2026-06-30", "-v", "--every", "7"]) == [
        "--env", "cluster", "--set", "spark.app_name=cdp-pipeline", "--as-of=2026-06-30", "-v",
        "run", "--since", "2026-06-01", "--every", "7"]
    with pytest.raises(SystemExit, match="unknown job scoring"):
        cli_args("scoring", [])


def test_cli_config_error_exits_3_with_file_and_key():
    result = CliRunner().invoke(main, ["--conf", str(REPO_ROOT / "conf"), "--set", "spark.nope=1", "show-config"])
    assert result.exit_code == 3
    assert "CLI override 'spark.nope=1': key 'spark.nope': Extra inputs are not permitted" in result.output


def test_each_failure_class_has_its_exit_code(spark, tmp_path: Path, monkeypatch):
    conf = ["--conf", str(REPO_ROOT / "conf"), "--data-dir", str(tmp_path)]
    # input rejected: a CRM export without its source key column; the other sources have no files
    (tmp_path / "landing" / "crm").mkdir(parents=True)
    (tmp_path / "landing" / "crm" / "crm_contacts.csv").write_text("first_name;last_name\nAna;Ruiz\n")
    rejected = CliRunner().invoke(main, [*conf, "ingest"])
    assert rejected.exit_code == 4, rejected.output
    assert "ERROR: rejected files:" in rejected.output and "no source key column ['contact_id']" in rejected.output
    # an external system down: the warehouse's port has no server
    monkeypatch.setenv("CDP_WAREHOUSE_USER", "u")
    monkeypatch.setenv("CDP_WAREHOUSE_PASSWORD", "p")
    down = CliRunner().invoke(main, [*conf, "--set", "warehouse.enabled=true", "--set",
                                     "warehouse.url=jdbc:postgresql://127.0.0.1:9/cdp", "sync"])
    assert down.exit_code == 6, down.output
    assert "ERROR: " in down.output and "127.0.0.1:9" in down.output and "Traceback" not in down.output
    # a quality gate and anything unforeseen, raised where a stage would raise them
    from cdp_spark.pipelines import pipeline
    from cdp_spark.pipelines.common import QualityGateBlocked

    def blocked(*_args, **_kwargs):
        raise QualityGateBlocked("quality gate blocked publishing of ['gold.clv']; see quality.results")

    monkeypatch.setattr(pipeline, "run", blocked)
    gate = CliRunner().invoke(main, [*conf, "validate"])
    assert (gate.exit_code, gate.output.strip()) == (
        5, "ERROR: quality gate blocked publishing of ['gold.clv']; see quality.results")

    def bug(*_args, **_kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(pipeline, "run", bug)
    internal = CliRunner().invoke(main, [*conf, "score"])
    assert internal.exit_code == 70
    assert "ERROR: internal error, ZeroDivisionError: division by zero (a bug" in internal.output


def test_version_names_the_package_and_the_commit():
    import re
    import subprocess

    result = CliRunner().invoke(main, ["--version"])
    commit = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                            text=True, check=True).stdout.strip()
    assert result.exit_code == 0
    assert re.fullmatch(rf"cdp 0\.1\.0\+g{commit}(\.dirty[0-9a-f]{{8}})?\n", result.output), result.output


def test_cli_bad_date_is_rejected():
    result = CliRunner().invoke(main, ["--as-of", "30/06/2026", "run"])
    assert result.exit_code == 2 and "'30/06/2026' is not a date (YYYY-MM-DD)" in result.output


def test_cli_stage_failure_is_clear(spark, tmp_path: Path):
    result = CliRunner().invoke(main, ["--conf", str(REPO_ROOT / "conf"), "--data-dir", str(tmp_path), "resolve"])
    assert result.exit_code == 1
    assert "ERROR: silver.contacts does not exist; run the ingest and normalise stages first" in result.output


@pytest.mark.parametrize("env", ["local", "cluster"])
def test_show_config_prints_no_secret_values(env, monkeypatch):
    monkeypatch.setenv("CDP_WAREHOUSE_PASSWORD", "hunter2-secret")
    result = CliRunner().invoke(main, ["--conf", str(REPO_ROOT / "conf"), "--env", env, "show-config"])
    assert result.exit_code == 0, result.output
    assert '"password_env": "CDP_WAREHOUSE_PASSWORD"' in result.output and "hunter2" not in result.output


def test_full_refresh_flags_reach_the_run_from_cdp_and_from_the_jobs(monkeypatch):
    from cdp_spark import jobs_main

    calls = []
    monkeypatch.setattr("cdp_spark.cli._run", lambda obj, stages: calls.append(
        (stages, obj["full_refresh"], obj["env"], obj["overrides"])))
    for command in (["normalise", "--full-refresh"], ["normalise"], ["run", "--full-refresh"], ["score"]):
        assert CliRunner().invoke(main, command).exit_code == 0
    assert [call[:2] for call in calls] == [(["normalise"], True), (["normalise"], False), (None, True),
                                            (["score"], False)]
    calls.clear()
    jsons = []
    monkeypatch.setattr("cdp_spark.cli._run", lambda obj, stages: jsons.append((stages, obj.get("json"))))
    for command in (["ingest", "--json"], ["normalise", "--json"], ["validate", "--json"], ["run", "--json"],
                    ["sync"]):
        assert CliRunner().invoke(main, command).exit_code == 0
    assert jsons == [(["ingest"], True), (["normalise"], True), (["validate"], True), (None, True),
                     (["sync"], False)]
    monkeypatch.setattr("cdp_spark.cli._run", lambda obj, stages: calls.append(
        (stages, obj["full_refresh"], obj["env"], obj["overrides"])))
    for job, argv in (("normalise", ["--full-refresh"]), ("pipeline", ["--env", "local"]), ("score", [])):
        with pytest.raises(SystemExit) as exited:
            jobs_main.main(job, argv)
        assert exited.value.code == 0
    assert calls == [(["normalise"], True, "cluster", ("spark.app_name=cdp-normalise",)),
                     (None, False, "local", ("spark.app_name=cdp-pipeline",)),
                     (["score"], False, "cluster", ("spark.app_name=cdp-score",))]


def test_run_stages_selects_part_of_the_pipeline(monkeypatch, spark, tmp_path: Path):
    calls = []
    monkeypatch.setattr("cdp_spark.cli._run", lambda obj, stages: calls.append(stages))
    assert CliRunner().invoke(main, ["run", "--stages", "ingest, normalise,resolve"]).exit_code == 0
    assert calls == [["ingest", "normalise", "resolve"]]
    monkeypatch.undo()
    result = CliRunner().invoke(main, ["--conf", str(REPO_ROOT / "conf"), "--data-dir", str(tmp_path),
                                       "run", "--stages", "ingest,resolv"])
    assert result.exit_code == 1
    assert "ERROR: unknown stage(s) ['resolv']; stages are ['ingest', 'normalise'" in result.output


def test_scores_list_as_json_is_the_registry():
    import json

    from cdp_spark.scores.library import SCORES

    result = CliRunner().invoke(main, ["scores", "list", "--json"])
    assert result.exit_code == 0
    assert json.loads(result.output) == [{"column": s.column, "name": s.name, "definition": s.definition,
                                          "type": s.type} for s in SCORES]
