"""What every ``jobs/*.py`` does: run the same ``cdp`` command line (``cdp_spark.cli``) for its job, so a
spark-submit job and ``cdp`` parse the same options, build the run the same way and exit the same way.

    spark-submit jobs/score.py --env cluster --as-of 2026-06-30      ==  cdp --env cluster --as-of 2026-06-30 score
    spark-submit jobs/pipeline.py --since 2026-06-01                 ==  cdp --env cluster run --since 2026-06-01

The global options (``--conf``, ``--env``, ``--set``, ``--data-dir``, ``--as-of``, ``--wait``, ``-v``) may come
anywhere; ``--env`` defaults to ``cluster``, and the Spark application is named ``cdp-<job>``."""

from __future__ import annotations

import sys

JOBS = ("ingest", "normalise", "resolve", "score", "predict", "report", "validate", "sync", "export", "pipeline")
GLOBAL_OPTIONS = ("--conf", "--env", "--set", "--data-dir", "--as-of")  # each takes a value
GLOBAL_FLAGS = ("-v", "--verbose", "--wait")


def cli_args(job: str, argv: list[str]) -> list[str]:
    """The ``cdp`` arguments of ``jobs/<job>.py argv``: global options first, then the command and its own."""
    if job not in JOBS:
        raise SystemExit(f"unknown job {job}; one of {JOBS}")
    head: list[str] = ["--set", f"spark.app_name=cdp-{job}"]  # a user's --set comes later and wins
    tail: list[str] = []
    args = iter(argv)
    for arg in args:
        name = arg.split("=", 1)[0]
        if name in GLOBAL_OPTIONS:
            head += [arg] if "=" in arg else [arg, next(args, "")]
        elif arg in GLOBAL_FLAGS:
            head.append(arg)
        else:
            tail.append(arg)
    if not any(arg.split("=", 1)[0] == "--env" for arg in head):
        head = ["--env", "cluster", *head]
    return [*head, "run" if job == "pipeline" else job, *tail]


def main(job: str, argv: list[str] | None = None) -> None:
    from cdp_spark.cli import main as cdp

    cdp.main(args=cli_args(job, sys.argv[1:] if argv is None else argv), prog_name=f"jobs/{job}.py")
