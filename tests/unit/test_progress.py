"""Progress of long stages: a line rewritten in place on a terminal, plain log lines otherwise, nothing for a
short stage."""

from __future__ import annotations

import io
import logging
import time

from cdp_spark.progress import StageProgress, activity


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def slow_job(spark) -> None:  # two tasks of 1.5 s each
    spark.sparkContext.parallelize(range(2), 2).map(lambda x: time.sleep(1.5) or x).collect()


def test_a_terminal_gets_one_line_rewritten_in_place_and_cleared(spark):
    screen = Terminal()
    with StageProgress(spark, "resolve", stream=screen, interval=0.2), activity(spark, "comparing candidate pairs"):
        slow_job(spark)
    shown = screen.getvalue()
    assert "\rresolve: comparing candidate pairs, 0/2 tasks" in shown
    assert shown.endswith("\r") and shown.rstrip("\r").endswith(" ")  # the line is cleared at the end
    assert spark.sparkContext.getLocalProperty("spark.job.description") is None  # the activity is over


def test_a_log_gets_a_plain_line_now_and_then_and_a_short_stage_none(spark, caplog):
    plain = io.StringIO()
    with caplog.at_level(logging.INFO, logger="cdp.progress"):
        # the activity outlives the poller: a poll after the activity ended but before the stage did would log
        # the stage's plain "running" line (seen on a loaded machine)
        with activity(spark, "validating gold.clv, table 1 of 5"), \
                StageProgress(spark, "validate", stream=plain, interval=0.1, plain_every=0.5):
            slow_job(spark)
        lines = [r.getMessage() for r in caplog.records if r.name == "cdp.progress"]
        caplog.clear()
        with StageProgress(spark, "validate", stream=plain, interval=0.1, plain_every=60):
            slow_job(spark)
        assert [r for r in caplog.records if r.name == "cdp.progress"] == []
    assert plain.getvalue() == ""
    assert lines and all(line.startswith("validate: validating gold.clv, table 1 of 5") for line in lines)
    assert all(line.endswith(" s so far)") for line in lines)
    assert any("/2 tasks (" in line for line in lines)  # a poll between the job's end and the exit has none
