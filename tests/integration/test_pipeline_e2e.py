"""The demo pipeline end to end on generated data, checked against an independent plain-Python
computation of the same rules (not only counts), with the warehouse queried through psql."""

from __future__ import annotations

import csv
import hashlib
import hmac
import json
import logging
import os
import re
import shutil
from collections import defaultdict
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pytest
from deltalake import DeltaTable

from cdp_spark import dictionary as data_dictionary
from cdp_spark.catalog import TABLES
from cdp_spark.demo.generator import generate
from cdp_spark.log import NOISY, quiet
from cdp_spark.pipelines import pipeline
from cdp_spark.pipelines.common import make_context
from cdp_spark.reports import html as report_html
from cdp_spark.session import delta_spark_available
from tests.browser import open_page
from tests.conftest import REPO_ROOT
from tests.webhook import Hook

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
AS_OF = date(2026, 6, 30)
TZ = ZoneInfo("Europe/Madrid")


def norm_email(value: str | None) -> str | None:
    value = (value or "").strip().lower()
    return value if re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value) else None


def norm_phone(value: str | None) -> str | None:
    raw = (value or "").strip()
    digits = re.sub(r"\D", "", raw)
    if not digits:
        return None
    if raw.startswith("+"):
        out = "+" + digits
    elif raw.startswith("00"):
        out = "+" + digits[2:]
    elif digits.startswith("34") and len(digits) == 11:
        out = "+" + digits
    else:
        out = "+34" + digits.lstrip("0")
    return out if re.fullmatch(r"\+[1-9]\d{7,14}", out) else None


def expected_persons(landing: Path) -> dict[str, frozenset[str]]:
    """record_id -> the set of record ids of its person, by union-find over shared e-mail/phone."""
    records: list[tuple[str, str | None, str | None]] = []
    with (landing / "crm" / "crm_contacts.csv").open(encoding="utf-8-sig") as f:
        records += [(f"crm:{r['contact_id']}", r["email"], r["phone"]) for r in csv.DictReader(f, delimiter=";")]
    with (landing / "ecommerce" / "customers.jsonl").open(encoding="utf-8") as f:
        records += [(f"ecommerce:{r['customer_id']}", r["email"], r["phone"]) for r in map(json.loads, f)]
    with (landing / "loyalty" / "loyalty_members.csv").open(encoding="utf-8") as f:
        records += [(f"loyalty:{r['loyalty_id']}", r["email"], r["phone"]) for r in csv.DictReader(f, delimiter="|")]
    parent = {rid: rid for rid, _, _ in records}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    first_holder: dict[tuple[str, str], str] = {}
    for rid, email, phone in records:
        for key in (("email", norm_email(email)), ("phone", norm_phone(phone))):
            if key[1] is None:
                continue
            if key in first_holder:
                parent[find(rid)] = find(first_holder[key])
            else:
                first_holder[key] = rid
    groups: dict[str, set[str]] = defaultdict(set)
    for rid in parent:
        groups[find(rid)].add(rid)
    return {rid: frozenset(members) for members in groups.values() for rid in members}


def expected_funnel(landing: Path, record_person: dict[str, str], steps: list[str], days: int) -> list[int]:
    """Actors reaching each step: each step's first event at or after the previous one, within ``days`` of
    the first step (plain Python over the landing file)."""
    by_actor: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
    with (landing / "events" / "events.jsonl").open(encoding="utf-8") as f:
        for line in f:
            event = json.loads(line)
            ts = datetime.fromisoformat(event["event_ts"].replace("Z", "+00:00"))
            if ts.astimezone(TZ).date() > AS_OF:
                continue
            actor = (record_person.get(f"{event['customer_source']}:{event['customer_key']}")
                     or f"anonymous:{event['anonymous_id']}")
            by_actor[actor].append((ts, event["event_type"]))
    reached = [0] * len(steps)
    for events in by_actor.values():
        starts = sorted(ts for ts, kind in events if kind == steps[0])
        if not starts:
            continue
        at = first = starts[0]
        reached[0] += 1
        for number, step in enumerate(steps[1:], start=1):
            later = sorted(ts for ts, kind in events if kind == step and at <= ts <= first + timedelta(days=days))
            if not later:
                break
            at = later[0]
            reached[number] += 1
    return reached


def expected_order_totals(landing: Path,
                          persons: dict[str, frozenset[str]]) -> dict[frozenset[str], tuple[int, Decimal]]:
    totals: dict[frozenset[str], list] = defaultdict(lambda: [0, Decimal("0")])
    with (landing / "orders" / "orders.csv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if not row["order_id"].startswith("O"):
                continue
            local_day = datetime.fromisoformat(row["order_ts"].replace("Z", "+00:00")).astimezone(TZ).date()
            net = Decimal(row["gross_amount"]) - Decimal(row["discount_amount"])
            person = persons.get(f"{row['customer_source']}:{row['customer_key']}")
            if person is None or local_day > AS_OF or net <= 0:
                continue
            totals[person][0] += 1
            totals[person][1] += net
    return {k: (v[0], v[1]) for k, v in totals.items()}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    data = tmp_path_factory.mktemp("demo")
    generate(data / "landing", customers=150, seed=7)
    with (data / "landing" / "orders" / "orders.csv").open("a", encoding="utf-8") as f:
        f.write("BAD1,crm,C00000001,S01,store,not-a-time,1.00,0.00,EUR,completed\n")
    return data


@pytest.mark.parametrize("engine", ["rs", "spark"])
def test_demo_pipeline_end_to_end(spark, demo, postgres, monkeypatch, cfg_factory, capsys, caplog, engine, tmp_path,
                                  request):
    if engine == "spark" and not delta_spark_available(spark):
        pytest.skip("delta-spark engine: no Delta jars in this session (make jars)")
    data = tmp_path / engine  # one lake per engine, the same landing files
    shutil.copytree(demo / "landing", data / "landing")
    caplog.set_level(logging.INFO)
    quiet(*NOISY)  # what cdp does without -v
    monkeypatch.setenv("CDP_WAREHOUSE_USER", postgres.user)
    monkeypatch.setenv("CDP_WAREHOUSE_PASSWORD", postgres.password)
    # exact-key resolution, which the plain-Python union-find below reproduces independently
    hook = Hook([])
    request.addfinalizer(hook.stop)
    cfg = cfg_factory("warehouse.enabled=true", f"warehouse.url={postgres.jdbc_url}", "identity.matching=null",
                      "predictions.clv.min_customers=50", f"notifications.webhook_url={hook.url}",
                      f"storage.engine={engine}", data_dir=data)
    ctx = make_context(spark, cfg, AS_OF)
    spark.catalog.clearCache()  # what earlier tests cached
    summary = pipeline.run(spark, cfg, ctx)
    store = ctx.store
    # the log holds the project's own lines at INFO: third-party ones only from WARNING up
    assert [f"{r.name}: {r.getMessage()}" for r in caplog.records
            if r.levelno < logging.WARNING and not r.name.startswith("cdp")] == []
    # every stage releases what it cached: a long-lived driver (a notebook, a scheduler) does not fill up
    assert spark._jsparkSession.sharedState().cacheManager().isEmpty()

    # the run summary went to the webhook: one POST, counts and paths only
    assert [(m["body"]["status"], m["body"]["run_id"]) for m in hook.received] == [("succeeded", ctx.run_id)]
    posted = hook.received[0]["body"]
    assert posted["tables"]["gold.person_profile"]["rows"] == summary.persons

    # ingestion: nothing lost, the bad order line quarantined with its reason and raw text
    log_rows = store.read("meta.ingestion_log").collect()
    assert all(r.rows_read == r.rows_accepted + r.rows_quarantined for r in log_rows)
    bad = store.read("quarantine.orders").collect()
    assert [(r.reason, r.detail, r.raw.split(",")[0]) for r in bad] == [("invalid_value", "columns: order_ts", "BAD1")]

    # identity: exactly the persons an independent union-find over the landing files finds
    truth = expected_persons(demo / "landing")
    registry = store.read("gold.person_registry").select("record_id", "person_id").collect()
    by_person: dict[str, set[str]] = defaultdict(set)
    for row in registry:
        by_person[row.person_id].add(row.record_id)
    assert {frozenset(v) for v in by_person.values()} == set(truth.values())
    assert summary.persons == len(set(truth.values()))

    # scores: order count and amount per person match the plain-Python computation
    totals = expected_order_totals(demo / "landing", truth)
    person_members = {pid: frozenset(members) for pid, members in by_person.items()}
    scores = {r.person_id: (r.orders_total_count, r.orders_total_amount)
              for r in store.read("gold.person_scores").collect()}
    assert scores == {pid: totals.get(members, (0, Decimal("0.00"))) for pid, members in person_members.items()}

    # segments and predictions cover exactly the persons their rules and data select
    profile = {r.person_id: r for r in store.read("gold.person_profile").collect()}
    vip = {r.person_id for r in store.read("gold.segment_membership").where("segment = 'vip'").collect()}
    assert vip == {p for p, r in profile.items() if (r.loyalty_points or 0) > 1000}
    buyers = {p for p, (count, _) in scores.items() if count > 0}
    clv = {r.person_id: r for r in store.read("gold.clv").collect()}
    assert set(clv) == buyers
    assert all(0 <= r.probability_alive <= 1 and r.predicted_clv >= 0 for r in clv.values())
    assert {r.person_id for r in store.read("gold.person_personas").collect()} <= buyers
    assert store.read("gold.persona_model").count() == 5

    # report: tables and one HTML file; the funnel matches a plain-Python walk over the events file
    record_person = {r.record_id: r.person_id for r in registry}
    spec = cfg.reports.funnels[0]
    funnel = [r.actors for r in store.read("gold.report_funnel").orderBy("step_number").collect()]
    assert funnel == expected_funnel(demo / "landing", record_person, spec.steps, spec.within_days)
    assert funnel[0] > funnel[-1] > 0
    metrics = store.read("gold.report_segment_metrics").where("grouping = 'hibernation_state'").collect()
    assert sum(r.customers for r in metrics) == len(buyers)
    assert sum(r.total_spend for r in metrics) == sum((t[1] for t in totals.values()), Decimal("0"))
    assert summary.report is not None
    page = Path(summary.report).read_text(encoding="utf-8")
    assert page.count("<img") >= 7  # one plot per section (movement needs a second date)
    opened = open_page(Path(summary.report))  # as a person sees it, in headless Chromium
    assert opened.errors == [] and opened.broken_images == 0
    assert opened.headings == [heading for heading, _, _ in report_html.SECTIONS]
    assert f"Persons\n{len(scores):,}\nfirst report" in opened.text
    emails = {r.email for r in store.read("silver.contacts").collect() if r.email}
    assert not [e for e in emails if e in page or e in json.dumps(posted)]
    # no personal value in the logs, the run summary output or the quality results
    outputs = caplog.text + json.dumps(store.read("quality.results").toPandas().astype(str).to_dict("records"))
    assert emails and not [e for e in emails if e in outputs]

    # downstream: every gold column is documented, and DuckDB reads the Delta tables through delta-rs
    documented = data_dictionary.build(store, cfg)
    assert {r.table for r in documented} >= {"gold.person_profile", "gold.person_scores", "gold.clv",
                                             "gold.report_funnel"}
    assert [(r.table, r.column) for r in documented if not r.meaning] == []
    scores_arrow = DeltaTable(store.path("gold.person_scores")).to_pyarrow_table()
    with duckdb.connect() as con:
        con.register("person_scores", scores_arrow)
        duck_total = con.execute("SELECT sum(orders_total_amount), count(*) FROM person_scores").fetchone()
    assert duck_total == (sum((t[1] for t in totals.values()), Decimal("0")), len(by_person))
    # the README's Python snippets, as written, from a folder where data/ is this lake's data folder
    readme_dir = tmp_path / "readme"
    readme_dir.mkdir()
    (readme_dir / "data").symlink_to(data)
    monkeypatch.chdir(readme_dir)
    snippets = re.findall(r"```python\n(.*?)```", (REPO_ROOT / "README.md").read_text(encoding="utf-8"), re.S)
    assert snippets
    capsys.readouterr()
    for snippet in snippets:
        exec(compile(snippet, "README.md", "exec"), {})
    segments_shown = capsys.readouterr().out
    shown_segments = {r.rfm_segment for r in store.read("gold.person_scores").collect()} - {None}
    assert "rfm_segment" in segments_shown and shown_segments
    assert all(segment in segments_shown for segment in shown_segments)

    # warehouse: the published versions, queryable with plain SQL
    assert postgres.psql("SELECT count(*) FROM cdp.person_profile") == str(len(by_person))
    amount = postgres.psql("SELECT coalesce(sum(orders_total_amount), 0) FROM cdp.person_scores")
    assert Decimal(amount) == sum((t[1] for t in totals.values()), Decimal("0"))
    assert postgres.psql("SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                         "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = 'cdp.person_registry'::regclass "
                         "AND i.indisprimary") == "record_id"
    assert postgres.password not in caplog.text + capsys.readouterr().err

    # privacy: keyed hashes in the profile; the warehouse gets the allow-listed columns only (no raw e-mail)
    key = os.environ["CDP_HASH_KEY"].encode()
    assert all(r.email_hash == (hmac.new(key, r.email_norm.encode(), hashlib.sha256).hexdigest()
                                if r.email_norm else None) for r in profile.values())
    columns = postgres.psql("SELECT string_agg(column_name, ',' ORDER BY ordinal_position) FROM "
                            "information_schema.columns WHERE table_schema = 'cdp' AND table_name = 'person_profile'")
    assert columns.split(",") == cfg.warehouse.columns["gold.person_profile"]
    some_email = next(r.email_norm for r in profile.values() if r.email_norm)
    assert postgres.psql(f"SELECT count(*) FROM cdp.person_profile WHERE email_hash = "
                         f"'{hmac.new(key, some_email.encode(), hashlib.sha256).hexdigest()}'") == "1"

    # rerun on unchanged input: every table as it was, the computing stages skipped with a manifest row naming
    # the first run; ingest and sync run and find nothing new (exports are off)
    lake_tables = {f"{log.parent.parent.name}.{log.parent.name}" for log in Path(cfg.lake_root).glob("*/*/_delta_log")}
    versions_before = {t: store.version(t) for t in sorted(lake_tables - {"meta.run_manifest"})}
    # every table but the per-entity ones is declared in the catalog
    assert {t for t in lake_tables if not t.startswith(("bronze.", "quarantine.", "silver."))} | {
        "silver.identity_edges", "silver.identity_model"} <= set(TABLES)
    assert {"gold.person_scores", "meta.published", "meta.sync_log"} <= set(versions_before)
    rerun_ctx = make_context(spark, cfg, AS_OF)
    rerun = pipeline.run(spark, cfg, rerun_ctx)
    reused = ["normalise", "resolve", "score", "predict", "report", "validate"]
    assert rerun.skipped == {stage: ctx.run_id for stage in reused}
    assert {t: store.version(t) for t in versions_before} == versions_before
    manifest = store.read("meta.run_manifest").where(f"run_id = '{rerun_ctx.run_id}'").collect()
    assert sorted((r.job, r.status, r.message) for r in manifest) == sorted(
        [(job, "succeeded", "") for job in ("ingest", "sync")]
        + [(job, "skipped", f"unchanged since run {ctx.run_id}") for job in reused])
    assert [(m["body"]["run_id"], m["body"]["skipped"]) for m in hook.received[1:]] == [(rerun_ctx.run_id,
                                                                                       rerun.skipped)]
    rerun_registry = {r.record_id: r.person_id for r in store.read("gold.person_registry").collect()}
    assert rerun_registry == {r.record_id: r.person_id for r in registry}


def test_probabilistic_resolution_against_ground_truth_explain_and_backfill(spark, tmp_path_factory, cfg_factory):
    from click.testing import CliRunner
    from pyspark.sql import functions as F

    from cdp_spark.cli import main
    from cdp_spark.identity.evaluate import evaluate
    from tests.conftest import REPO_ROOT

    data = tmp_path_factory.mktemp("er")
    generate(data / "landing", customers=400, seed=21)
    cfg = cfg_factory(data_dir=data)
    ctx = make_context(spark, cfg, AS_OF)
    pipeline.run(spark, cfg, ctx, ["ingest", "normalise", "resolve"])
    registry = ctx.store.read("gold.person_registry")
    truth = (spark.read.option("header", True).csv(str(data / "ground_truth" / "person_records.csv"))
             .select(F.concat_ws(":", "source", "source_key").alias("record_id"), "true_person"))
    quality = evaluate(registry.select("record_id", "person_id"), truth)
    assert quality["pairwise_precision"] >= 0.99 and quality["pairwise_recall"] >= 0.97, quality
    model = ctx.store.read("silver.identity_model").first()
    assert json.loads(model.counts)["accepted_pairs"] > 0

    # a person whose records are linked by something other than a shared key: explain shows the evidence
    edges = ctx.store.read("silver.identity_edges").where(~F.array_contains("sources", "block:email")
                                                          & ~F.array_contains("sources", "block:phone"))
    edge = edges.orderBy("record_a").first()
    person = registry.where(F.col("record_id") == edge.record_a).first().person_id
    result = CliRunner().invoke(main, ["--conf", str(REPO_ROOT / "conf"), "--data-dir", str(data), "explain", person])
    assert result.exit_code == 0, result.output
    assert f"person {person}:" in result.output and f"{edge.record_a} <-> {edge.record_b}" in result.output
    assert "first_name_key" in result.output and "probability" in result.output
    as_json = CliRunner().invoke(main, ["--conf", str(REPO_ROOT / "conf"), "--data-dir", str(data), "explain",
                                        person, "--json"])
    explained = json.loads(as_json.output)
    assert explained["person_id"] == person and edge.record_a in {r["record_id"] for r in explained["records"]}
    assert (edge.record_a, edge.record_b) in {(e["record_a"], e["record_b"]) for e in explained["edges"]}
    missing = CliRunner().invoke(main, ["--conf", str(REPO_ROOT / "conf"), "--data-dir", str(data), "explain", "P0"])
    assert missing.exit_code == 1 and "no person P0 in gold.person_registry" in missing.output

    # a backfill over these persons: the score stage for two as-of dates, oldest first, one run id
    since = AS_OF - timedelta(days=7)
    backfill = make_context(spark, cfg, AS_OF)
    pipeline.run(spark, cfg, backfill, ["score"], since=since, every_days=7)
    manifest = ctx.store.read("meta.run_manifest").where(F.col("run_id") == backfill.run_id)
    assert sorted((r.job, r.as_of) for r in manifest.collect()) == [("score", since), ("score", AS_OF)]
    assert {r.as_of for r in ctx.store.read("gold.measures").collect()} == {since, AS_OF}
    # the state history opened every state at the first date and closed exactly the states that differ
    # between the two dates' versions of gold.person_scores
    latest = ctx.store.version("gold.person_scores")
    states = ["rfm_segment", "hibernation_state"]
    first, second = ({(r.person_id, s): r[s] for r in ctx.store.read("gold.person_scores", version=v).collect()
                      for s in states} for v in (latest - 1, latest))
    history = ctx.store.read("gold.person_state_history").collect()
    assert {(r.person_id, r.state) for r in history if r.valid_from == since} == set(first)
    changed = {key for key in first if first[key] != second[key]}
    assert {(r.person_id, r.state) for r in history if r.valid_to == AS_OF} == changed
    assert sorted((r.person_id, r.state, r.value) for r in history if r.valid_to is None) == sorted(
        (person_id, state, value) for (person_id, state), value in second.items())
