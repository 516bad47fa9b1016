"""One writing run per lake (docs/design.md §9, "One run at a time").

``hold_lake(lake_root, run_id, command, settings)`` creates ``<lake_root>/_cdp_run.lock`` exclusively (a
local ``O_EXCL`` create; on S3 a conditional put, ``If-None-Match: *``) with the holder's run id, command,
host, process id, start and heartbeat times, refreshes the heartbeat while the run lasts and removes the
file at the end. A second run finds the file and fails at once with :class:`LakeBusy` naming the holder, or
waits for it (``wait_s``). A lock is stale, and taken over, when its heartbeat is older than
``stale_after_s`` or its process is gone from this host (a killed run).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cdp_spark.config import ObjectStoreSettings
from cdp_spark.io.object_store import is_object_url, open_object_store, split_url

LOCK_NAME = "_cdp_run.lock"


class LakeBusy(RuntimeError):
    """Another run holds the lake."""


def _now() -> float:
    return time.time()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _LocalLock:
    def __init__(self, lake_root: str) -> None:
        self.path = Path(lake_root) / LOCK_NAME

    def create(self, body: dict[str, Any]) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(body, handle)
        return True

    def read(self) -> dict[str, Any] | None:
        try:
            return dict(json.loads(self.path.read_text(encoding="utf-8") or "{}"))
        except FileNotFoundError:
            return None
        except ValueError:  # a holder between create and write: treat as fresh
            return {"heartbeat_at": _now()}

    def refresh(self, body: dict[str, Any]) -> None:
        partial = self.path.with_name(self.path.name + f".{os.getpid()}")
        partial.write_text(json.dumps(body), encoding="utf-8")
        os.replace(partial, self.path)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


class _ObjectLock:
    def __init__(self, lake_root: str, settings: ObjectStoreSettings) -> None:
        self.url = f"{lake_root.rstrip('/')}/{LOCK_NAME}"
        self.bucket, self.key = split_url(self.url)
        self.client = open_object_store(settings).client

    def create(self, body: dict[str, Any]) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.put_object(Bucket=self.bucket, Key=self.key, Body=json.dumps(body).encode(),
                                   IfNoneMatch="*")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict"):
                return False
            raise
        return True

    def read(self) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            return dict(json.loads(self.client.get_object(Bucket=self.bucket, Key=self.key)["Body"].read()))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise

    def refresh(self, body: dict[str, Any]) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self.key, Body=json.dumps(body).encode())

    def remove(self) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.key)


def _stale(holder: dict[str, Any], stale_after_s: float) -> bool:
    if _now() - float(holder.get("heartbeat_at", 0)) > stale_after_s:
        return True
    return holder.get("host") == socket.gethostname() and not _alive(int(holder.get("pid", 0)))


def describe(holder: dict[str, Any]) -> str:
    started = datetime.fromtimestamp(float(holder.get("started_at", 0)), UTC).isoformat(timespec="seconds")
    beat = _now() - float(holder.get("heartbeat_at", 0))
    return (f"run {holder.get('run_id', '?')} ({holder.get('command', '?')}, host {holder.get('host', '?')}, "
            f"pid {holder.get('pid', '?')}, started {started}, last heartbeat {beat:.0f} s ago)")


@contextmanager
def hold_lake(lake_root: str, run_id: str, command: str, object_store: ObjectStoreSettings,
              stale_after_s: float = 300.0, wait_s: float = 0.0, heartbeat_s: float = 30.0,
              poll_s: float = 2.0) -> Iterator[None]:
    """Holds the lake for the block; raises :class:`LakeBusy` when another live run holds it after ``wait_s``
    seconds of waiting."""
    lock = _ObjectLock(lake_root, object_store) if is_object_url(lake_root) else _LocalLock(lake_root)
    body = {"run_id": run_id, "command": command, "host": socket.gethostname(), "pid": os.getpid(),
            "started_at": _now(), "heartbeat_at": _now()}
    deadline = _now() + wait_s
    while not lock.create(body):
        holder = lock.read()
        if holder is None:
            continue  # released between our attempt and the read
        if _stale(holder, stale_after_s):
            lock.remove()  # taken over: the holder was killed or stopped beating
            continue
        if _now() >= deadline:
            where = lock.url if isinstance(lock, _ObjectLock) else str(lock.path)
            raise LakeBusy(f"the lake {lake_root} is in use by {describe(holder)}; this run ({command}) did not "
                           f"start. Wait for it (--wait waits up to storage.lock_wait_s), or, if that run is "
                           f"gone, remove {where} (a lock without heartbeat for {stale_after_s:.0f} s is taken "
                           f"over)")
        time.sleep(poll_s)
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(heartbeat_s):
            body["heartbeat_at"] = _now()
            with suppress(Exception):  # a missed heartbeat only makes the lock look older
                lock.refresh(body)

    threading.Thread(target=beat, name="cdp-lake-lock", daemon=True).start()
    try:
        yield
    finally:
        stop.set()
        lock.remove()
