"""What every ``jobs/*.py`` does: parse args, load config, build the session, call
``cdp_spark.pipelines.<job>.run(spark, cfg)``. Kept here so the entry points stay three lines."""

from __future__ import annotations

import argparse
import importlib
import sys
from datetime import date

from cdp_spark.cli import FULL_REFRESH_HELP, USER_ERRORS, render_summary
from cdp_spark.config import load_config
from cdp_spark.log import configure

JOBS = ("ingest", "normalise", "resolve", "score", "predict", "report", "validate", "sync", "export", "pipeline")


def parse_args(job: str, argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"jobs/{job}.py", description=f"cdp-spark {job} job")
    parser.add_argument("--conf", default="conf", help="config directory")
    parser.add_argument("--env", default="cluster", help="overlay under the config directory")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--as-of", type=date.fromisoformat, default=None)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    if job in ("ingest", "normalise", "pipeline"):
        parser.add_argument("--full-refresh", action="store_true", help=FULL_REFRESH_HELP)
    if job == "pipeline":
        parser.add_argument("--since", type=date.fromisoformat, default=None,
                            help="backfill: score, predict and report every as-of date from this one to --as-of")
        parser.add_argument("--every", type=int, default=1, help="with --since: days between as-of dates")
    return parser.parse_args(argv)


def main(job: str, argv: list[str] | None = None) -> int:
    if job not in JOBS:
        raise SystemExit(f"unknown job {job}; one of {JOBS}")
    args = parse_args(job, argv)
    configure()
    from cdp_spark.pipelines.common import make_context
    from cdp_spark.session import build_session

    try:
        cfg = load_config(args.conf, args.env, args.overrides, data_dir=args.data_dir)
        spark = build_session(cfg.spark, f"cdp-{job}")
        ctx = make_context(spark, cfg, args.as_of, full_refresh=getattr(args, "full_refresh", False))
        module = importlib.import_module(f"cdp_spark.pipelines.{job}")
        extra = {"since": args.since, "every_days": args.every} if job == "pipeline" else {}
        try:
            result = module.run(spark, cfg, ctx, **extra)
        finally:
            ctx.shared.release()
    except USER_ERRORS as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        sys.exit(1)
    print(render_summary(result) if job == "pipeline" else result)
    return 0
