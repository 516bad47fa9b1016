"""The class-data-sharing archive's bookkeeping: its key, and which JVM options a session start gets."""

from __future__ import annotations

import os
import time

import pytest

from cdp_spark.class_archive import (
    ABANDONED_AFTER_S,
    DYNAMIC_ARCHIVE_MAGIC,
    QUIET,
    archive_in,
    archive_key,
    class_archive_options,
)
from cdp_spark.config import SparkSettings
from cdp_spark.session import build_session, session_conf, with_class_archive


def _jdk(tmp_path):
    java = tmp_path / "jdk" / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_bytes(b"java")
    (tmp_path / "jdk" / "release").write_text('JAVA_VERSION="17.0.15"\n')
    return java


def test_the_key_follows_the_jdk_every_class_path_entry_and_the_heap_options(tmp_path):
    java, jar = _jdk(tmp_path), tmp_path / "a.jar"
    jar.write_bytes(b"jar")
    key = archive_key(java, [jar], "4g")
    assert key == archive_key(java, [jar], "4g") and len(key) == 24
    assert archive_key(java, [jar], "40g") != key
    assert archive_key(java, [jar, tmp_path / "b.jar"], "4g") != key
    os.utime(jar, ns=(0, 1_000_000_000))  # a jar replaced in place
    assert archive_key(java, [jar], "4g") != key
    os.utime(jar, ns=(0, os.stat(jar).st_mtime_ns))
    (tmp_path / "jdk" / "release").write_text('JAVA_VERSION="17.0.16"\n')
    assert archive_key(java, [jar], "4g") != key


def test_a_first_start_writes_the_archive_at_exit_and_later_starts_map_it(tmp_path):
    folder = tmp_path / "cache" / "jvm"
    first = class_archive_options(folder, "k1")
    written = folder / first.split()[0].split("=", 1)[1]
    assert first == f"-XX:ArchiveClassesAtExit={written} {QUIET}" and folder.is_dir()
    assert written.parent == folder and written.name.startswith("k1.") and written.suffix == ".partial"
    assert archive_in(first) is None

    # the JVM has not finished writing it: no archive to map, none written twice, the partial file left alone
    written.write_bytes(b"\0" * 64)
    assert class_archive_options(folder, "k1") == ""
    assert sorted(p.name for p in folder.iterdir()) == [written.name]
    # finished (HotSpot writes the header, magic first, last): renamed to the key's archive and mapped
    written.write_bytes(DYNAMIC_ARCHIVE_MAGIC + b"\1" * 60)
    later = class_archive_options(folder, "k1")
    assert later == f"-XX:SharedArchiveFile={folder / 'k1.jsa'} {QUIET}"
    assert archive_in(later) == folder / "k1.jsa"
    assert sorted(p.name for p in folder.iterdir()) == ["k1.jsa"]
    # another key (another JVM or class path) does not map it
    assert class_archive_options(folder, "k2").startswith("-XX:ArchiveClassesAtExit=")


def test_an_abandoned_partial_archive_is_removed_after_an_hour(tmp_path):
    stale, fresh = tmp_path / "k.1-a.partial", tmp_path / "k.2-b.partial"
    for partial in (stale, fresh):
        partial.write_bytes(b"\0" * 8)
    hours_ago = time.time() - ABANDONED_AFTER_S - 60
    os.utime(stale, (hours_ago, hours_ago))
    assert class_archive_options(tmp_path, "k") == ""  # the fresh one may still be written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.2-b.partial"]


def _archive(path, mtime: float | None = None):
    path.write_bytes(DYNAMIC_ARCHIVE_MAGIC + b"\1" * 12)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def test_two_complete_partials_of_one_key_leave_one_archive(tmp_path):
    first, second = _archive(tmp_path / "k.1-a.partial"), _archive(tmp_path / "k.2-b.partial")
    assert class_archive_options(tmp_path, "k") == f"-XX:SharedArchiveFile={tmp_path / 'k.jsa'} {QUIET}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.jsa"] and not first.exists() and not second.exists()


def test_an_archive_another_user_owns_is_mapped_without_marking_its_use(tmp_path, monkeypatch):
    _archive(tmp_path / "k.jsa")

    def not_owner(path, *args):
        raise PermissionError(1, "Operation not permitted", str(path))

    monkeypatch.setattr("cdp_spark.class_archive.os.utime", not_owner)
    assert class_archive_options(tmp_path, "k") == f"-XX:SharedArchiveFile={tmp_path / 'k.jsa'} {QUIET}"


def test_only_the_archives_of_the_keys_used_last_are_kept(tmp_path):
    now = time.time()
    for age, name in enumerate(["k4.jsa", "k3.1-a.partial", "k2.jsa", "k1.jsa"], start=1):
        _archive(tmp_path / name, now - 86400 * age)  # k4 used a day ago, k1 four days ago
    (tmp_path / "k9.3-c.partial").write_bytes(b"\0" * 8)  # its JVM stopped writing two hours ago
    os.utime(tmp_path / "k9.3-c.partial", (now - 7200, now - 7200))
    (tmp_path / "k8.4-d.partial").write_bytes(b"\0" * 8)  # being written now
    (tmp_path / "notes.txt").write_text("not an archive")
    options = class_archive_options(tmp_path, "k0")  # a new key: it and the two others used last are kept
    assert options.startswith(f"-XX:ArchiveClassesAtExit={tmp_path}/k0.")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "k3.1-a.partial", "k4.jsa", "k8.4-d.partial", "notes.txt"]
    # mapping an archive marks its use: k4's archive is the newest after k3's start
    assert class_archive_options(tmp_path, "k3") == f"-XX:SharedArchiveFile={tmp_path / 'k3.jsa'} {QUIET}"
    assert (tmp_path / "k3.jsa").stat().st_mtime >= now
    _archive(tmp_path / "k5.jsa", now - 3600)
    class_archive_options(tmp_path, "k6")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k3.jsa", "k5.jsa", "k8.4-d.partial", "notes.txt"]


def test_only_a_local_session_started_by_this_process_gets_the_options(tmp_path, monkeypatch):
    settings = SparkSettings(master="local[1]", class_archive_dir=str(tmp_path), conf={
        "spark.driver.extraJavaOptions": "-Xss4m"})
    _, conf = session_conf(settings)
    monkeypatch.setattr("cdp_spark.session.SparkContext._gateway", None)
    monkeypatch.delenv("PYSPARK_GATEWAY_PORT", raising=False)
    options = with_class_archive(settings, conf)["spark.driver.extraJavaOptions"]
    assert options.startswith("-Xss4m -XX:ArchiveClassesAtExit=" + str(tmp_path))
    assert {k: v for k, v in with_class_archive(settings, conf).items() if k != "spark.driver.extraJavaOptions"} == {
        k: v for k, v in conf.items() if k != "spark.driver.extraJavaOptions"}
    off = settings.model_copy(update={"class_data_sharing": False})
    cluster = settings.model_copy(update={"master": None})
    assert with_class_archive(off, conf) == conf and with_class_archive(cluster, conf) == conf
    monkeypatch.setenv("PYSPARK_GATEWAY_PORT", "40000")  # under spark-submit the driver JVM already runs
    assert with_class_archive(settings, conf) == conf


def test_a_session_that_does_not_start_with_its_archive_drops_it_and_starts_without(tmp_path, monkeypatch, caplog):
    """HotSpot can crash at start on a damaged archive (a truncated one: SIGBUS while relocating it)."""
    archive = tmp_path / "k.jsa"
    archive.write_bytes(DYNAMIC_ARCHIVE_MAGIC)
    options = f"-XX:SharedArchiveFile={archive} {QUIET}"
    monkeypatch.setattr("cdp_spark.session.with_class_archive", lambda settings, conf: {
        **conf, "spark.driver.extraJavaOptions": f"{conf['spark.driver.extraJavaOptions']} {options}"})
    starts: list[str] = []

    class Started:
        sparkContext = type("Context", (), {"setLogLevel": lambda self, level: None})()

    def start(settings, app_name, conf):
        starts.append(conf["spark.driver.extraJavaOptions"])
        if "SharedArchiveFile" in conf["spark.driver.extraJavaOptions"]:
            raise RuntimeError("[JAVA_GATEWAY_EXITED] Java gateway process exited before sending its port number")
        return Started()

    monkeypatch.setattr("cdp_spark.session._start", start)
    settings = SparkSettings(master="local[1]", conf={"spark.driver.extraJavaOptions": "-Xss4m"})
    assert isinstance(build_session(settings), Started)
    assert starts == [f"-Xss4m {options}", "-Xss4m"] and not archive.exists()
    assert f"the driver JVM did not start with class archive {archive}: removed" in caplog.text

    # without an archive there is nothing to drop: the failure is the caller's
    def no_java(settings, app_name, conf):
        raise RuntimeError("no java")

    monkeypatch.setattr("cdp_spark.session.with_class_archive", lambda settings, conf: conf)
    monkeypatch.setattr("cdp_spark.session._start", no_java)
    with pytest.raises(RuntimeError, match="no java"):
        build_session(settings)
