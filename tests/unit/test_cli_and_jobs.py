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


def test_cli_config_error_exits_non_zero_with_file_and_key():
    result = CliRunner().invoke(main, ["--conf", str(REPO_ROOT / "conf"), "--set", "spark.nope=1", "show-config"])
    assert result.exit_code == 1
    assert "CLI override 'spark.nope=1': key 'spark.nope': Extra inputs are not permitted" in result.output


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
