"""``cdp``: run the whole pipeline or one stage, locally or under spark-submit."""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import date
from enum import IntEnum
from pathlib import Path
from typing import Any

import click

from cdp_spark.config import CdpConfig, ConfigError, load_config
from cdp_spark.identity.explain import UnknownPerson
from cdp_spark.io.files import FileRejected
from cdp_spark.io.jdbc import JdbcError
from cdp_spark.io.lock import LakeBusy
from cdp_spark.io.notify import NotificationError
from cdp_spark.io.object_store import ObjectStoreError
from cdp_spark.io.tables import TableError
from cdp_spark.log import configure
from cdp_spark.pipelines.common import InputRejected, QualityGateBlocked, StageError
from cdp_spark.quality.gate import SuiteError
from cdp_spark.scores.enrichment import EnrichmentError
from cdp_spark.sync.warehouse import UnknownColumns
from cdp_spark.version import code_version


class ExitCode(IntEnum):
    """What a ``cdp`` command's exit status says (docs/operations.md, "Exit codes")."""

    OK = 0
    FAILED = 1  # a stage failed for a reason the message names (missing table, bad suite, ...)
    USAGE = 2  # the command line is wrong (click's own code)
    CONFIG = 3  # the configuration is invalid: file, key and reason in the message
    INPUT_REJECTED = 4  # landing files were rejected; the others were ingested
    QUALITY_GATE = 5  # a quality suite blocked publishing a table version
    EXTERNAL = 6  # a database, the object store or the webhook could not be reached or refused
    LAKE_BUSY = 7  # another run holds the lake
    INTERNAL = 70  # a bug: the traceback is printed


FAILURE_CLASSES: list[tuple[tuple[type[BaseException], ...], ExitCode]] = [
    ((ConfigError,), ExitCode.CONFIG),
    ((InputRejected, FileRejected), ExitCode.INPUT_REJECTED),
    ((QualityGateBlocked,), ExitCode.QUALITY_GATE),
    ((JdbcError, ObjectStoreError, NotificationError), ExitCode.EXTERNAL),
    ((LakeBusy,), ExitCode.LAKE_BUSY),
    ((StageError, TableError, SuiteError, EnrichmentError, UnknownPerson, UnknownColumns), ExitCode.FAILED),
]


def exit_code(exc: BaseException) -> ExitCode:
    """The exit code of a failure: its class's, :attr:`ExitCode.INTERNAL` for anything unforeseen."""
    return next((code for classes, code in FAILURE_CLASSES if isinstance(exc, classes)), ExitCode.INTERNAL)


@contextmanager
def exits_on_failure() -> Iterator[None]:
    """Turns a failure into ``ERROR: <message>`` on stderr and its exit code; an unforeseen one also prints
    its traceback."""
    try:
        yield
    except (click.exceptions.Exit, click.ClickException, SystemExit, KeyboardInterrupt):
        raise
    except Exception as exc:
        code = exit_code(exc)
        if code is ExitCode.INTERNAL:
            traceback.print_exc()
            click.echo(f"ERROR: internal error, {type(exc).__name__}: {exc} (a bug: the traceback above shows "
                       "where)", err=True)
        else:
            click.echo(f"ERROR: {exc}", err=True)
        sys.exit(int(code))


def _parse_date(_ctx: click.Context, _param: click.Parameter, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"'{value}' is not a date (YYYY-MM-DD)") from None


@click.group()
@click.version_option(code_version(), "--version", prog_name="cdp", message="%(prog)s %(version)s")
@click.option("--conf", "conf_dir", default="conf", show_default=True, help="config directory (base/ + overlays)")
@click.option("--env", default="local", show_default=True, help="overlay under the config directory")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="override a config key (repeatable)")
@click.option("--data-dir", default=None, help="data directory (landing files and lake); overrides paths.data_dir")
@click.option("--as-of", default=None, callback=_parse_date, help="business date to compute as of (default: today)")
@click.option("--wait", is_flag=True, help="when another run holds the lake, wait for it (up to "
                                            "storage.lock_wait_s) instead of failing at once")
@click.option("-v", "--verbose", is_flag=True)
@click.pass_context
def main(ctx: click.Context, conf_dir: str, env: str, overrides: tuple[str, ...], data_dir: str | None,
         as_of: date | None, wait: bool, verbose: bool) -> None:
    """cdp-spark: ingest, unify, score, validate and publish customer data."""
    configure(verbose)
    ctx.obj = {"conf_dir": conf_dir, "env": env, "overrides": overrides, "data_dir": data_dir, "as_of": as_of,
               "wait": wait}


def _config(obj: dict[str, Any]) -> CdpConfig:
    return load_config(obj["conf_dir"], obj["env"], obj["overrides"], data_dir=obj["data_dir"])


def _run(obj: dict[str, Any], stages: list[str] | None) -> None:
    from cdp_spark.pipelines import pipeline
    from cdp_spark.pipelines.common import make_context
    from cdp_spark.session import build_session

    with exits_on_failure():
        cfg = _config(obj)
        sources, tables = _selection(cfg, obj.get("sources", ()), obj.get("tables", ()))
        spark = build_session(cfg.spark)
        ctx = make_context(spark, cfg, obj["as_of"], full_refresh=obj.get("full_refresh", False))
        ctx.sources, ctx.tables = sources, tables
        if obj.get("plan"):
            from cdp_spark.pipelines.plan import plan_run

            planned = plan_run(cfg, ctx, stages, since=obj.get("since"), every_days=obj.get("every", 1))
            click.echo(json.dumps([asdict(p) for p in planned], indent=2) if obj.get("json")
                       else render_plan(planned, ctx.as_of))
            return
        summary = pipeline.run(spark, cfg, ctx, stages, since=obj.get("since"), every_days=obj.get("every", 1),
                               wait=obj.get("wait", False))
    click.echo(json.dumps(asdict(summary), indent=2) if obj.get("json") else render_summary(summary))


def _selection(cfg: CdpConfig, sources: tuple[str, ...], tables: tuple[str, ...],
               ) -> tuple[frozenset[str] | None, frozenset[str] | None]:
    """``--source`` and ``--table`` checked against the configuration (a usage error names the known ones)."""
    from cdp_spark.quality.gate import load_suites

    known_sources = [*cfg.sources, *cfg.jdbc_sources]
    unknown = [s for s in sources if s not in known_sources]
    if unknown:
        raise click.BadParameter(f"unknown source(s) {unknown}; sources are {known_sources}", param_hint="--source")
    known_tables = list(dict.fromkeys([*load_suites(cfg.resolve(cfg.quality.suites_dir)), *cfg.warehouse.tables,
                                       *cfg.exports.tables]))
    unknown = [t for t in tables if t not in known_tables]
    if unknown:
        raise click.BadParameter(f"unknown table(s) {unknown}; tables validated, synced or exported are "
                                 f"{known_tables}", param_hint="--table")
    return (frozenset(sources) or None), (frozenset(tables) or None)


def render_plan(planned: Any, as_of: date) -> str:
    """The plan as a terminal shows it: a line per stage, its details indented below."""
    lines = [f"plan of a run as of {as_of} (nothing was run or written):"]
    for item in planned:
        when = f" ({item.as_of})" if item.as_of != as_of.isoformat() else ""
        lines.append(f"  {item.stage + when:<22} {item.action:<5} {item.reason}")
        lines += [f"  {'':<22}       - {detail}" for detail in item.details]
    return "\n".join(lines)


def render_summary(summary: Any) -> str:
    lines = [f"run {summary.run_id} as of {summary.as_of} ({summary.engine} engine)",
             "stage seconds: " + ", ".join(f"{k}={v}" for k, v in summary.seconds.items())]
    for previous in dict.fromkeys(summary.skipped.values()):
        stages = [stage for stage, run in summary.skipped.items() if run == previous]
        lines.append(f"unchanged since run {previous}, skipped: {', '.join(stages)} (--full-refresh recomputes)")
    width = max((len(table) for table in summary.tables), default=0)  # long names keep the columns aligned
    for table, info in summary.tables.items():
        lines.append(f"  {table:<{width}} {info['rows']:>9} rows  v{info['version']:<4} {info['path']}")
    lines.append(f"persons: {summary.persons}   rows quarantined by this run: {summary.quarantined}")
    lines.append(f"tables are under {summary.lake_root} (Delta; read with delta-rs, pyarrow, DuckDB or Spark)")
    if summary.report:
        lines.append(f"report: {summary.report}")
    return "\n".join(lines)


SOURCE_HELP = "ingest only this source (repeatable; default: every configured source)"
TABLE_HELP = "validate, sync and export only this table (repeatable; default: every table they handle)"
FULL_REFRESH_HELP = ("ignore the stored state: JDBC watermarks (ingest), the bronze version silver was built "
                     "from (normalise), and recompute stages whose inputs did not change since their last run")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="print the summary as JSON")
@click.option("--since", default=None, callback=_parse_date,
              help="backfill: score, predict and report every as-of date from this one to --as-of, oldest first")
@click.option("--every", default=1, show_default=True, type=click.IntRange(min=1),
              help="with --since: days between as-of dates (7 = weekly)")
@click.option("--full-refresh", is_flag=True, help=FULL_REFRESH_HELP)
@click.option("--stages", default=None,
              help="comma-separated stages to run in one session, in pipeline order (default: all), "
                   "e.g. ingest,normalise,resolve")
@click.option("--plan", is_flag=True, help="print what would run and why (new inputs, incremental or full, "
                                            "stages skipped as unchanged); run and write nothing")
@click.option("--source", "sources", multiple=True, help=SOURCE_HELP)
@click.option("--table", "tables", multiple=True, help=TABLE_HELP)
@click.pass_obj
def run(obj: dict[str, Any], as_json: bool, since: date | None, every: int, full_refresh: bool,
        stages: str | None, plan: bool, sources: tuple[str, ...], tables: tuple[str, ...]) -> None:
    """Run the whole pipeline: ingest, normalise, resolve, score, predict, report, validate, sync, export."""
    if as_json:
        obj["json"] = True
    obj.update(since=since, every=every, full_refresh=full_refresh, plan=plan, sources=sources, tables=tables)
    _run(obj, [s.strip() for s in stages.split(",") if s.strip()] if stages else None)


def _stage_command(name: str, help_text: str, takes_tables: bool = False) -> None:
    @main.command(name=name, help=help_text)
    @click.option("--full-refresh", is_flag=True, help="recompute even when the inputs did not change since the "
                                                       "stage's last run")
    @click.option("--json", "as_json", is_flag=True, help="print the run summary as JSON")
    @click.option("--plan", is_flag=True, help="print whether the stage would run and why; run nothing")
    @click.pass_obj
    def command(obj: dict[str, Any], full_refresh: bool, as_json: bool, plan: bool, **selection: Any) -> None:
        obj.update(full_refresh=full_refresh, json=as_json, plan=plan, **selection)
        _run(obj, [name])

    if takes_tables:
        click.option("--table", "tables", multiple=True, help=TABLE_HELP)(command)


@main.command()
@click.option("--full-refresh", is_flag=True, help="JDBC sources: ignore the stored watermarks, read everything; "
                                                   "Delta sources: read the whole current version")
@click.option("--json", "as_json", is_flag=True, help="print the run summary as JSON")
@click.option("--plan", is_flag=True, help="print which inputs are new; read and write nothing")
@click.option("--source", "sources", multiple=True, help=SOURCE_HELP)
@click.pass_obj
def ingest(obj: dict[str, Any], full_refresh: bool, as_json: bool, plan: bool, sources: tuple[str, ...]) -> None:
    """Ingest landing files, objects, JDBC and Delta tables into bronze and quarantine tables."""
    obj.update(full_refresh=full_refresh, json=as_json, plan=plan, sources=sources)
    _run(obj, ["ingest"])


@main.command()
@click.option("--full-refresh", is_flag=True,
              help="rebuild silver from all of bronze (after changing normalisation rules), not only new keys")
@click.option("--json", "as_json", is_flag=True, help="print the run summary as JSON")
@click.option("--plan", is_flag=True, help="print whether each silver table would be built incrementally or in "
                                            "full, and why; run nothing")
@click.pass_obj
def normalise(obj: dict[str, Any], full_refresh: bool, as_json: bool, plan: bool) -> None:
    """Build silver tables from bronze: only the keys that arrived since the last build."""
    obj.update(full_refresh=full_refresh, json=as_json, plan=plan)
    _run(obj, ["normalise"])


for _name, _help in [("resolve", "Resolve persons: identity edges, registry, profile."),
                     ("score", "Compute person scores, segments, measures and state history as of --as-of."),
                     ("predict", "Predict CLV, personas and product recommendations as of --as-of."),
                     ("report", "Write the gold.report_* tables and the HTML report as of --as-of."),
                     ("validate", "Validate gold tables and publish the versions that pass."),
                     ("sync", "Sync published gold versions to the warehouse."),
                     ("export", "Export published gold versions as parquet/CSV files with manifests.")]:
    _stage_command(_name, _help, takes_tables=_name in ("validate", "sync", "export"))


@main.command()
@click.option("--email", default=None, help="erase the person(s) holding this e-mail")
@click.option("--person-id", default=None, help="erase this person")
@click.pass_obj
def erase(obj: dict[str, Any], email: str | None, person_id: str | None) -> None:
    """Remove a person from every lake table and the warehouse, purge the history, suppress re-ingestion;
    prints the erasure receipt (tables, versions, rows removed)."""
    from cdp_spark.pipelines import erase as erase_stage
    from cdp_spark.pipelines.common import make_context
    from cdp_spark.pipelines.pipeline import lake_held
    from cdp_spark.session import build_session

    with exits_on_failure():
        cfg = _config(obj)
        spark = build_session(cfg.spark, "cdp-erase")
        ctx = make_context(spark, cfg, obj["as_of"])
        with lake_held(cfg, ctx.run_id, "cdp erase", obj.get("wait", False)):
            receipt = erase_stage.run(spark, cfg, email, person_id, ctx)
    click.echo(json.dumps(receipt, indent=2))


@main.command()
@click.option("--out", type=click.Path(path_type=Path), default=Path("docs/data_dictionary.md"), show_default=True)
@click.pass_obj
def dictionary(obj: dict[str, Any], out: Path) -> None:
    """Write the data dictionary of the gold tables (every column, its type and meaning) as Markdown."""
    from cdp_spark import dictionary as data_dictionary
    from cdp_spark.pipelines.common import make_context
    from cdp_spark.session import build_session

    with exits_on_failure():
        cfg = _config(obj)
        ctx = make_context(build_session(cfg.spark, "cdp-dictionary"), cfg)
        rows = data_dictionary.build(ctx.store, cfg)
    click.echo(f"{len(rows)} columns of {len({r.table for r in rows})} tables written to "
               f"{data_dictionary.write(rows, out)}")


@main.command("config-reference")
@click.option("--out", type=click.Path(path_type=Path), default=Path("docs/configuration.md"), show_default=True)
def config_reference(out: Path) -> None:
    """Write the configuration reference (every section and key, its type, default and meaning) as Markdown."""
    from cdp_spark import config_reference as reference

    click.echo(f"configuration reference written to {reference.write(out)}")


@main.command()
@click.argument("person_id")
@click.option("--json", "as_json", is_flag=True, help="print records, edges and events as JSON")
@click.pass_obj
def explain(obj: dict[str, Any], person_id: str, as_json: bool) -> None:
    """Show why the records of PERSON_ID are one person: records, links with field evidence, events."""
    from cdp_spark.identity.explain import explain as explain_person
    from cdp_spark.identity.explain import render
    from cdp_spark.identity.matching import model_levels
    from cdp_spark.pipelines.common import make_context
    from cdp_spark.session import build_session

    with exits_on_failure():
        cfg = _config(obj)
        ctx = make_context(build_session(cfg.spark, "cdp-explain"), cfg)
        levels = model_levels(cfg.identity.matching) if cfg.identity.matching else {}
        found = explain_person(ctx.store, person_id)
        click.echo(json.dumps(asdict(found), indent=2, default=str) if as_json else render(found, levels))


@main.group()
def identity() -> None:
    """Identity resolution: the matching model."""


@identity.command("diagnostics")
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of tables")
@click.pass_obj
def identity_diagnostics(obj: dict[str, Any], as_json: bool) -> None:
    """Show the fitted matching model: m, u and weight per comparison level, the prior, the threshold,
    candidate pairs per blocking rule and SNM pass, and the histogram of candidate match weights."""
    from cdp_spark.identity.diagnostics import diagnostics, render
    from cdp_spark.pipelines.common import make_context
    from cdp_spark.pipelines.resolve import stored_model
    from cdp_spark.session import build_session

    with exits_on_failure():
        cfg = _config(obj)
        if cfg.identity.matching is None:
            raise StageError("identity.matching is null: records are linked by exact keys, there is no model")
        stored = stored_model(make_context(build_session(cfg.spark, "cdp-identity-diagnostics"), cfg))
        if stored is None:
            raise StageError("no matching model in silver.identity_model yet: run the resolve stage first")
        report = diagnostics(*stored, cfg.identity.matching.match_probability)
    click.echo(json.dumps(report, indent=2) if as_json else render(report))


@main.group()
def scores() -> None:
    """The score library."""


@scores.command("list")
@click.option("--json", "as_json", is_flag=True, help="print the scores as JSON")
def scores_list(as_json: bool) -> None:
    """Print every score with its column, type and definition."""
    from cdp_spark.scores.library import SCORES

    if as_json:
        click.echo(json.dumps([asdict(score) for score in SCORES], indent=2))
        return
    for score in SCORES:
        click.echo(f"{score.column:<28} {score.type:<14} {score.name}\n{'':<43} {score.definition}")


@main.command("show-config")
@click.pass_obj
def show_config(obj: dict[str, Any]) -> None:
    """Print the effective configuration (secrets are never in it, only env var names)."""
    with exits_on_failure():
        click.echo(json.dumps(_config(obj).model_dump(mode="json"), indent=2))



if __name__ == "__main__":
    main()
