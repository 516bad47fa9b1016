"""Progress of long stages (docs/operations.md, "Logs and progress").

A stage names what it is doing with ``activity(spark, "comparing candidate pairs")`` (also Spark's job
description, so the Spark UI and event log say it too); ``StageProgress`` polls Spark's status tracker while
the stage runs and shows the stage, the activity and the tasks of its running Spark stages:

* on a terminal: one line on stderr, rewritten in place every ``interval`` seconds and cleared at the end;
* otherwise (a scheduler's log): a plain INFO line every ``plain_every`` seconds while it runs, nothing for a
  stage that ends sooner, so short runs log no progress at all.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

from pyspark.sql import SparkSession

log = logging.getLogger("cdp.progress")

_current = {"activity": ""}


@contextmanager
def activity(spark: SparkSession, text: str) -> Iterator[None]:
    """What the stage is doing while the block runs: shown by ``StageProgress`` and set as the Spark job
    description of the jobs the block starts."""
    context = spark.sparkContext
    previous = _current["activity"]
    _current["activity"] = text
    context.setJobDescription(text)
    try:
        yield
    finally:
        _current["activity"] = previous
        context.setJobDescription(previous or None)  # type: ignore[arg-type]


def tasks_running(spark: SparkSession) -> tuple[int, int]:
    """(tasks done, tasks in all) of the Spark stages running now."""
    tracker = spark.sparkContext.statusTracker()
    done = total = 0
    for stage_id in tracker.getActiveStageIds():
        info = tracker.getStageInfo(stage_id)
        if info is not None:
            done += info.numCompletedTasks
            total += info.numTasks
    return done, total


class StageProgress:
    """Shows a stage's progress while the ``with`` block runs (see the module docstring)."""

    def __init__(self, spark: SparkSession, stage: str, stream: IO[str] | None = None, interval: float = 1.0,
                 plain_every: float = 60.0) -> None:
        self.spark, self.stage = spark, stage
        self.stream = stream if stream is not None else sys.stderr
        self.terminal = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval, self.plain_every = interval, plain_every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"progress-{stage}", daemon=True)
        self._width = 0

    def line(self) -> str:
        done, total = tasks_running(self.spark)
        parts = [self.stage, _current["activity"] or "running", f"{done}/{total} tasks" if total else ""]
        return ": ".join(p for p in parts[:2]) + (f", {parts[2]}" if parts[2] else "")

    def _run(self) -> None:
        started = last_plain = time.monotonic()
        while not self._stop.wait(self.interval):
            if self.terminal:
                text = self.line()
                self.stream.write("\r" + text.ljust(self._width))
                self.stream.flush()
                self._width = len(text)
            elif time.monotonic() - last_plain >= self.plain_every:
                last_plain = time.monotonic()
                log.info("%s (%.0f s so far)", self.line(), last_plain - started)

    def __enter__(self) -> StageProgress:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        if self.terminal and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
