"""Real driver JVMs: the first local session writes the class-data-sharing archive when its JVM exits, and
the next one maps it (``-Xshare:on`` makes HotSpot refuse to start otherwise)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from cdp_spark.class_archive import is_complete
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.integration

SESSION = """
import sys
from cdp_spark.config import SparkSettings
from cdp_spark.session import build_session
spark = build_session(SparkSettings(master="local[1]", class_archive_dir=sys.argv[1],
                                    conf={"spark.driver.extraJavaOptions": sys.argv[2]}))
print("rows", spark.range(5).count() if sys.argv[3] == "query" else None)
spark.stop()
"""


def start_session(folder, cwd, java_options: str = "", query: bool = True) -> subprocess.CompletedProcess[str]:
    """A session in a new process; ``query``: it runs a query too (the classes it loads go into an archive)."""
    return subprocess.run([sys.executable, "-c", SESSION, str(folder), java_options, "query" if query else "start"],
                          cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin", "SPARK_LOCAL_IP": "127.0.0.1"})


def written_archive(folder, timeout: float = 300):
    """The partial archive once its JVM (which outlives the Python process) has finished writing it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for partial in folder.glob("*.partial"):
            if is_complete(partial):
                return partial
        time.sleep(1)
    raise AssertionError(f"no archive written in {folder}: {sorted(p.name for p in folder.iterdir())}")


def test_the_second_session_maps_the_archive_the_first_wrote(tmp_path):
    folder = tmp_path / "jvm"
    # the session start alone: a smaller archive, written sooner, that the second start maps all the same
    first = start_session(folder, tmp_path, query=False)
    assert (first.returncode, first.stdout.strip()) == (0, "rows None"), first.stderr[-3000:]
    key = written_archive(folder).name.split(".")[0]

    second = start_session(folder, tmp_path, "-Xshare:on")  # fails to start unless the archive maps
    assert (second.returncode, second.stdout.strip()) == (0, "rows 5"), second.stderr[-3000:]
    assert "did not start with class archive" not in second.stderr
    assert sorted(p.name for p in folder.iterdir()) == [f"{key}.jsa"]
