"""The Delta protocol's log folder: which files hold a snapshot's state, and the ``txn`` actions of a commit."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

MULTI_PART_CHECKPOINT = re.compile(r"\.checkpoint\.\d{10}\.\d{10}\.parquet$")


def log_version(log_files: Sequence[str]) -> int | None:
    """The newest table version named by a Delta log folder's files (``<version>.json`` commits and
    ``<version>.checkpoint...`` files; the newest commit is never cleaned up), None without any."""
    versions = [int(name.split(".", 1)[0]) for name in (f.rsplit("/", 1)[-1] for f in log_files)
                if name.split(".", 1)[0].isdigit() and (name.endswith(".json") or ".checkpoint." in name)]
    return max(versions, default=None)


def commit_transactions(commit: str) -> dict[str, int]:
    """``appId -> version`` of the ``txn`` actions in one commit file's text (one JSON action per line)."""
    found: dict[str, int] = {}
    for line in commit.splitlines():
        if '"txn"' in line:
            txn = json.loads(line).get("txn")
            if txn:
                found[txn["appId"]] = max(int(txn["version"]), found.get(txn["appId"], int(txn["version"])))
    return found


def newest_checkpoint_and_later_commits(log_files: Sequence[str]) -> tuple[list[str], list[str]]:
    """The Delta log files that hold a snapshot's ``txn`` actions: the newest checkpoint's files (one
    classic or v2 checkpoint, or the parts of a multi-part one; empty before the first checkpoint) and
    the commit files after it, in version order (Delta protocol, "Checkpoints" and "Delta Log Entries")."""
    checkpoints: dict[int, list[str]] = {}
    commits: list[tuple[int, str]] = []
    for file in log_files:
        name = file.rsplit("/", 1)[-1]
        prefix, _, rest = name.partition(".")
        if not prefix.isdigit():
            continue
        if rest == "json":
            commits.append((int(prefix), file))
        elif rest.startswith("checkpoint.") and rest.endswith((".parquet", ".json")):
            checkpoints.setdefault(int(prefix), []).append(file)
    newest = max(checkpoints, default=-1)
    files = sorted(checkpoints.get(newest, []))
    if len(files) > 1 and not all(MULTI_PART_CHECKPOINT.search(f) for f in files):
        files = files[:1]  # a classic and a v2 (uuid-named) checkpoint of one version: each is complete
    return files, [f for version, f in sorted(commits) if version > newest]
