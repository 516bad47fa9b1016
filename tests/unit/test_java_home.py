"""scripts/java_home.sh: the JDK the Makefile's Spark runs use (docs/design.md §9, "Java version")."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "java_home.sh"


def _jdk(root: Path, name: str, version: str, *, mac: bool = False, java: bool = True) -> Path:
    home = root / name / "Contents" / "Home" if mac else root / name
    (home / "bin").mkdir(parents=True)
    (home / "release").write_text(f'IMPLEMENTOR="test"\nJAVA_VERSION="{version}"\n')
    if java:
        (home / "bin" / "java").write_text("#!/bin/sh\n")
        (home / "bin" / "java").chmod(0o755)
    return home.resolve()  # the script prints resolved paths


def _run(jdk_dirs: list[Path], *args: str, java_home: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "JAVA_HOME"}
    env["CDP_JDK_DIRS"] = " ".join(str(d) for d in jdk_dirs)
    if java_home is not None:
        env["JAVA_HOME"] = java_home
    return subprocess.run([str(SCRIPT), *args], env=env, capture_output=True, text=True, check=True)


def test_newest_supported_jdk_wins_and_a_cap_lowers_it(tmp_path):
    debian, mac = tmp_path / "jvm", tmp_path / "mac"
    _jdk(debian, "java-17-openjdk-amd64", "17.0.15")
    _jdk(debian, "java-11-openjdk-amd64", "11.0.2")
    _jdk(debian, "jdk-26", "26")  # newer than Spark supports
    _jdk(debian, "broken-25", "25.0.1", java=False)  # a release file without a java
    jdk21 = _jdk(mac, "temurin-21.jdk", "21.0.4", mac=True)
    jdk25 = _jdk(debian, "temurin-25-jdk-amd64", "25.0.1")
    (debian / "default-java").symlink_to(jdk25)  # a link to a JDK already seen
    assert _run([debian, mac]).stdout == f"{jdk25}\n"
    assert _run([debian, mac], "21").stdout == f"{jdk21}\n"
    assert _run([debian], "21").stdout == f"{(debian / 'java-17-openjdk-amd64').resolve()}\n"
    assert _run([tmp_path / "none"]).stdout == "\n"  # nothing found: spark-submit runs the java on the PATH


def test_a_users_java_home_wins_unless_it_is_newer_than_the_cap(tmp_path):
    debian = tmp_path / "jvm"
    jdk17 = _jdk(debian, "java-17", "17.0.15")
    jdk25 = _jdk(debian, "java-25", "25.0.1")
    assert _run([debian], java_home=str(jdk17)).stdout == f"{jdk17}\n"
    assert _run([debian], java_home="/opt/own-jdk").stdout == "/opt/own-jdk\n"  # no release file: taken as is
    capped = _run([debian], "21", java_home=str(jdk25))
    assert capped.stdout == f"{jdk17}\n"
    assert capped.stderr == ""
