"""The managed-Spark deployment files are valid: the Databricks bundle's tasks call the wheel's entry point
with real stage commands in pipeline order and take secrets only from a secret scope; the EMR step points
at files that exist."""

from __future__ import annotations

import json
import re
from importlib.metadata import entry_points
from pathlib import Path

import yaml
from click.testing import CliRunner

from cdp_spark.cli import main
from cdp_spark.config import PrivacySettings, WarehouseSettings
from cdp_spark.pipelines.pipeline import STAGES

ROOT = Path(__file__).resolve().parents[2]


def test_databricks_bundle_runs_every_stage_through_the_wheel_entry_point():
    bundle = yaml.safe_load((ROOT / "databricks.yml").read_text())
    scripts = {e.name: e.value for e in entry_points(group="console_scripts") if e.value.startswith("cdp_spark")}
    job = bundle["resources"]["jobs"]["cdp_pipeline"]
    tasks = {t["task_key"]: t for t in job["tasks"]}
    assert list(tasks) == list(STAGES)
    commands = set(main.commands)
    for key, task in tasks.items():
        wheel = task["python_wheel_task"]
        assert wheel["package_name"] == "cdp_spark" and wheel["entry_point"] in scripts
        assert wheel["parameters"][-1] == key and key in commands
        assert wheel["parameters"][:-1] == ["--conf", "${var.conf_dir}", "--env", "cluster", "--data-dir",
                                            "${var.data_dir}", "--as-of", "{{job.start_time.iso_date}}"]
        assert all(d["task_key"] in tasks for d in task.get("depends_on", []))
    order = list(STAGES)
    for key, task in tasks.items():  # every dependency comes earlier in the pipeline
        assert all(order.index(d["task_key"]) < order.index(key) for d in task.get("depends_on", []))
    env = job["job_clusters"][0]["new_cluster"]["spark_env_vars"]
    assert set(env) == {PrivacySettings().hash_key_env, WarehouseSettings().user_env, WarehouseSettings().password_env}
    assert all(re.fullmatch(r"\{\{secrets/\$\{var\.secret_scope\}/[a-z_]+\}\}", v) for v in env.values())
    lakes = {name: target["variables"]["data_dir"] for name, target in bundle["targets"].items()}
    assert set(lakes) == {"dev", "prod"} and lakes["dev"] != lakes["prod"]
    assert not lakes["dev"].startswith(lakes["prod"] + "/")


def test_the_wheel_leaves_spark_to_the_runtime():
    """pyspark and delta-spark come with the ``local`` extra only: installing the wheel on Databricks or EMR
    never replaces the runtime's Spark."""
    from importlib.metadata import requires

    requirements = requires("cdp-spark") or []
    core = [r for r in requirements if "extra ==" not in r]
    local = [r.split(";")[0].strip() for r in requirements if 'extra == "local"' in r]
    assert not [r for r in core if r.startswith(("pyspark", "delta-spark"))]
    assert sorted(local) == ["delta-spark<4.5,>=4.4", "pyspark<4.3,>=4.2"]


def test_cli_lists_every_stage_the_schedulers_call():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    assert all(stage in result.output for stage in STAGES)


def test_emr_step_points_at_existing_jobs_and_overlay():
    steps = json.loads((ROOT / "deploy" / "emr" / "steps.json").read_text())
    args = steps[0]["HadoopJarStep"]["Args"]
    assert args[0] == "spark-submit"
    job = next(a for a in args if a.endswith(".py"))
    assert (ROOT / "jobs" / Path(job).name).is_file()
    assert args[args.index("--as-of") + 1] == "{{AS_OF}}"  # filled in by add_steps.sh
    assert args.count("--archives") == 1  # spark-submit keeps only the last --archives flag
    shipped = [(Path(uri).name, name) for uri, name in
               (item.split("#") for item in args[args.index("--archives") + 1].split(","))]
    assert shipped == [("cdp-spark-env.tar.gz", "environment"), ("conf.zip", "conf")]
    build = (ROOT / "scripts" / "build_dist.sh").read_text()
    assert all(f"$DIST/{artefact}" in build for artefact, _ in shipped)  # the names `make dist` writes
    env = args[args.index("--env") + 1]
    assert (ROOT / "conf" / env).is_dir()


def test_emr_add_steps_fills_in_the_as_of_date(tmp_path):
    import os
    import subprocess

    fake = tmp_path / "aws"  # records the arguments instead of calling AWS
    fake.write_text('#!/bin/sh\nprintf "%s\\0" "$@" > "$(dirname "$0")/called"\n')
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    script = str(ROOT / "deploy" / "emr" / "add_steps.sh")
    subprocess.run([script, "j-123", "2026-06-30"], env=env, check=True)
    called = (tmp_path / "called").read_text().split("\0")
    assert called[:4] == ["emr", "add-steps", "--cluster-id", "j-123"]
    args = json.loads(called[5])[0]["HadoopJarStep"]["Args"]
    assert args[args.index("--as-of") + 1] == "2026-06-30"
    bad = subprocess.run([script, "j-123", "30/06/2026"], env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "as-of must be YYYY-MM-DD, got '30/06/2026'" in bad.stderr
