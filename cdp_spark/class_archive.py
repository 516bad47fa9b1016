"""The local driver JVM's class-data-sharing archive (docs/design.md §9, "JVM start").

A new JVM spends most of a small job's first seconds loading and verifying Spark's classes. HotSpot can map
the classes an earlier run loaded from an archive instead (dynamic class-data sharing, JDK 13+): a run with
``-XX:ArchiveClassesAtExit=<file>`` writes the archive when its JVM exits, later runs start with
``-XX:SharedArchiveFile=<file>``. An archive only fits the JVM and the class path it was written with, so its
name is a digest of both (``archive_key``); a JVM that cannot use one ignores it.

The archive is written after the Python process ends (the JVM exits when its gateway closes), under a
``.partial`` name. HotSpot writes the header, which begins with the archive's magic number, after every
region, so a partial file that starts with the magic is complete: the next session start renames it to its
final name (``class_archive_options``), and one whose writer stopped early is removed after an hour. While a
partial of the same key is still being written (a run that started seconds after the last one ended), a session
neither maps nor writes one: two JVMs of one key would write the same archive twice.

Every archive is ~200 MB and a new JDK, jar or checkout gives a new key, so the folder keeps the archives of the
``KEEP_ARCHIVES`` keys used last (a mapped archive's modification time is its last use) and removes the others.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shlex
import shutil
import time
from collections.abc import Iterable
from pathlib import Path

DYNAMIC_ARCHIVE_MAGIC = bytes.fromhex("a8ab0bf0")  # 0xf00baba8, little-endian, at offset 0
ABANDONED_AFTER_S = 3600
KEEP_ARCHIVES = 3
QUIET = "-Xlog:cds=off -Xlog:cds+dynamic=off"  # a JVM that cannot use the archive says so on stderr otherwise


def default_archive_dir() -> Path:
    """``$XDG_CACHE_HOME/cdp-spark/jvm``, else ``~/.cache/cdp-spark/jvm``."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "cdp-spark" / "jvm"


def java_executable() -> Path | None:
    """The java that spark-submit runs: ``$JAVA_HOME/bin/java``, else ``java`` on the PATH (resolved)."""
    home = os.environ.get("JAVA_HOME")
    found = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    return Path(found).resolve() if found and Path(found).exists() else None


def _stamp(path: Path) -> str:
    stat = path.stat()
    return f"{path}:{stat.st_size}:{stat.st_mtime_ns}"


def archive_key(java: Path, class_path: Iterable[Path], jvm_options: str = "") -> str:
    """A digest of what an archive depends on: the JDK (its ``release`` file and the java binary), every
    class-path entry's path, size and modification time, and the options that change the heap's layout
    (``-Xmx``: compressed object pointers end at 32 GB)."""
    digest = hashlib.sha256()
    release = java.parent.parent / "release"
    digest.update((release.read_text() if release.is_file() else "").encode())
    digest.update(_stamp(java).encode())
    for entry in class_path:
        digest.update(b"\0" + (_stamp(entry) if entry.exists() else str(entry)).encode())
    digest.update(b"\0" + jvm_options.encode())
    return digest.hexdigest()[:24]


def is_complete(path: Path) -> bool:
    """Whether HotSpot has finished writing the archive: its header, which it writes last, starts with the magic."""
    with path.open("rb") as archive:
        return archive.read(len(DYNAMIC_ARCHIVE_MAGIC)) == DYNAMIC_ARCHIVE_MAGIC


def _key_of(path: Path) -> str:
    return path.name.split(".", 1)[0]


def _abandoned(partial: Path) -> bool:
    """An incomplete partial untouched for an hour: its JVM stopped before it finished writing."""
    return time.time() - partial.stat().st_mtime > ABANDONED_AFTER_S


def settle_partials(directory: Path, key: str) -> bool:
    """Renames a complete ``<key>.*.partial`` to ``<key>.jsa`` and removes the other complete ones (two JVMs of
    one key each wrote one); removes incomplete ones older than an hour. True while one is still being written."""
    writing = False
    for partial in sorted(directory.glob(f"{key}.*.partial")):
        try:
            if is_complete(partial):
                final = directory / f"{key}.jsa"
                if final.exists():
                    partial.unlink()
                else:
                    partial.replace(final)
            elif _abandoned(partial):
                partial.unlink()
            else:
                writing = True
        except FileNotFoundError:  # another session start settled it first
            continue
    return writing


def remove_unused(directory: Path, key: str, keep: int = KEEP_ARCHIVES) -> None:
    """Removes the archives of all keys but ``key`` and the ``keep - 1`` other keys used last, and other keys'
    partials that stopped being written over an hour ago; partials still being written are left alone."""
    last_use: dict[str, float] = {}
    for path in directory.iterdir():
        try:
            if path.suffix == ".jsa" or (path.suffix == ".partial" and is_complete(path)):
                last_use[_key_of(path)] = max(last_use.get(_key_of(path), 0.0), path.stat().st_mtime)
            elif path.suffix == ".partial" and _key_of(path) != key and _abandoned(path):
                path.unlink()
        except FileNotFoundError:
            continue
    kept = {key, *sorted((k for k in last_use if k != key), key=last_use.__getitem__, reverse=True)[:keep - 1]}
    for stale in set(last_use) - kept:
        for path in directory.glob(f"{stale}.*"):
            try:
                if path.suffix == ".jsa" or is_complete(path):
                    path.unlink()
            except FileNotFoundError:
                continue


def class_archive_options(directory: Path, key: str) -> str:
    """The driver JVM options: map ``<key>.jsa`` when it exists, else write one when this JVM exits (nothing
    while another JVM is writing this key's archive)."""
    writing = False
    if directory.is_dir():
        writing = settle_partials(directory, key)
        remove_unused(directory, key)
    else:
        directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"{key}.jsa"
    if final.is_file():
        with contextlib.suppress(PermissionError):  # a folder shared with another user: mapped all the same
            os.utime(final)  # its last use, for remove_unused
        return f"{shlex.quote(f'-XX:SharedArchiveFile={final}')} {QUIET}"
    if writing:
        return ""
    partial = directory / f"{key}.{os.getpid()}-{secrets.token_hex(4)}.partial"
    return f"{shlex.quote(f'-XX:ArchiveClassesAtExit={partial}')} {QUIET}"


def archive_in(options: str) -> Path | None:
    """The archive a JVM started with ``options`` maps, if any."""
    for option in shlex.split(options):
        if option.startswith("-XX:SharedArchiveFile="):
            return Path(option.split("=", 1)[1])
    return None
