"""The packaging test's long part, started when the suite is collected: `make dist`, then the whole pipeline
under the pyspark install's spark-submit on the packed artefacts, the way a cluster launches it. It runs on a
thread of its own (both steps are child processes, niced), so it overlaps the rest of the suite;
``tests/integration/test_dist.py`` waits for it and checks what it wrote."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyspark

ROOT = Path(__file__).resolve().parents[2]
SPARK_SUBMIT = Path(pyspark.__file__).parent / "bin" / "spark-submit"
AS_OF = "2026-06-30"
CUSTOMERS, SEED = 150, 7


@dataclass
class PackedRun:
    """Where the artefacts, the node's working directory and the data are, and how each step ended."""

    build_dir: Path
    dist: Path
    node: Path
    data: Path
    build_log: Path
    build_returncode: int | None = None
    run: subprocess.CompletedProcess[str] | None = None
    error: str | None = None

    def save(self, path: Path) -> None:
        """Writes the outcome for a test in another process (an xdist worker); atomic, so a reader that finds
        the file finds all of it."""
        run = None if self.run is None else {"args": self.run.args, "returncode": self.run.returncode,
                                             "stdout": self.run.stdout, "stderr": self.run.stderr}
        saved = {**{name: str(getattr(self, name)) for name in PATH_FIELDS},
                 "build_returncode": self.build_returncode, "run": run, "error": self.error}
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps(saved))
        partial.replace(path)

    @classmethod
    def load(cls, path: Path) -> PackedRun:
        saved = json.loads(path.read_text())
        run = saved["run"]
        return cls(**{name: Path(saved[name]) for name in PATH_FIELDS}, build_returncode=saved["build_returncode"],
                   run=None if run is None else subprocess.CompletedProcess(**run), error=saved["error"])


PATH_FIELDS = ("build_dir", "dist", "node", "data", "build_log")


class PackedPipeline(threading.Thread):
    """``result_file``: where the outcome is saved when it ends, for a test in another process."""

    def __init__(self, result_file: Path | None = None) -> None:
        super().__init__(name="packed-pipeline", daemon=True)
        self.result_file = result_file
        build_dir = Path(tempfile.mkdtemp(prefix="cdp-test-dist-"))
        self.result = PackedRun(build_dir, build_dir / "dist", build_dir / "node", build_dir / "data",
                                build_dir / "make-dist.log")
        self._child: subprocess.Popen[str] | None = None
        self._stopped = threading.Event()

    def stop(self) -> None:
        """Ends the current step (a session that ends before the test ran) and removes the work folder."""
        self._stopped.set()
        if self._child is not None and self._child.poll() is None:
            self._child.kill()
        self.join(timeout=30)
        shutil.rmtree(self.result.build_dir, ignore_errors=True)

    def _step(self, command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """Runs one child process (stoppable), its output captured unless ``stdout`` is given."""
        if self._stopped.is_set():
            raise RuntimeError("stopped")
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        self._child = subprocess.Popen(command, text=True, **kwargs)
        out, err = self._child.communicate(timeout=1500)
        return subprocess.CompletedProcess(command, self._child.returncode, out, err)

    def run(self) -> None:
        try:
            self._build_and_run()
        except Exception as exc:  # reported by the test, with the step's output
            self.result.error = f"{type(exc).__name__}: {exc}"
        if self.result_file is not None:
            self.result.save(self.result_file)

    def _build_and_run(self) -> None:
        r = self.result
        env = {**os.environ, "DIST_BUILD_ENV": str(r.build_dir / "build-env")}
        with r.build_log.open("w") as log:
            r.build_returncode = self._step(
                ["nice", "-n", "10", "make", "--no-print-directory", "dist", f"DIST={r.dist}"], cwd=ROOT, env=env,
                stdout=log, stderr=subprocess.STDOUT).returncode
        if r.build_returncode != 0:
            return
        # the node: the working directory holds the archives unpacked under their #names, as YARN localises
        # them for the driver's and the executors' containers (local mode has no cluster manager to do it)
        (r.node / "environment").mkdir(parents=True)
        self._step(["tar", "-xzf", str(r.dist / "cdp-spark-env.tar.gz"), "-C", str(r.node / "environment")]
                   ).check_returncode()
        with zipfile.ZipFile(r.dist / "conf.zip") as conf_zip:
            conf_zip.extractall(r.node / "conf")
        self._step([sys.executable, "-m", "cdp_spark.demo.generator", "--customers", str(CUSTOMERS),
                    "--seed", str(SEED), "--out", str(r.data / "landing")], cwd=ROOT).check_returncode()
        env = {key: value for key, value in os.environ.items() if not key.startswith(("PYSPARK_", "SPARK_HOME"))}
        env.update(SPARK_LOCAL_IP="127.0.0.1", PYTHONPATH="")
        command = ["nice", "-n", "10", str(SPARK_SUBMIT), "--master", "local[2]", "--driver-memory", "3g",
                   "--archives", f"{r.dist / 'cdp-spark-env.tar.gz'}#environment,{r.dist / 'conf.zip'}#conf",
                   "--conf", "spark.pyspark.python=./environment/bin/python",
                   "--conf", "spark.ui.enabled=false",
                   str(r.dist / "jobs" / "pipeline.py"),
                   "--conf", "conf", "--env", "local", "--data-dir", str(r.data), "--as-of", AS_OF,
                   "--set", "spark.master=null", "--set", "identity.matching=null",
                   "--set", "predictions.clv.min_customers=50"]
        r.run = self._step(command, cwd=r.node, env=env)
