"""The stage plan of a run: which stage runs as of which date, with and without --since; the frames the
stages of a run share; which stages run on Spark's interpreter."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest
from pyspark.sql import types as T

from cdp_spark.catalog import bronze_of
from cdp_spark.pipelines.common import SharedFrames, StageError, make_context, stage
from cdp_spark.pipelines.pipeline import STAGES, as_of_dates, run, stage_plan
from cdp_spark.session import CODEGEN_FACTORY_MODE

D = date.fromisoformat


def test_without_since_every_stage_runs_once_as_of_the_run_date():
    assert stage_plan(list(STAGES), D("2026-06-30")) == [(stage, D("2026-06-30")) for stage in STAGES]


def test_since_repeats_the_dated_stages_per_date_oldest_first_and_publishes_once():
    plan = stage_plan(list(STAGES), D("2026-06-30"), since=D("2026-06-14"), every_days=7)
    dated = [(stage, D(day)) for day in ("2026-06-14", "2026-06-21", "2026-06-28", "2026-06-30")
             for stage in ("score", "predict", "report")]
    assert plan == [("ingest", D("2026-06-30")), ("normalise", D("2026-06-30")), ("resolve", D("2026-06-30")),
                    *dated,
                    ("validate", D("2026-06-30")), ("sync", D("2026-06-30")), ("export", D("2026-06-30"))]


def test_one_stage_and_daily_dates():
    assert stage_plan(["score"], D("2026-01-03"), since=D("2026-01-01")) == [
        ("score", D("2026-01-01")), ("score", D("2026-01-02")), ("score", D("2026-01-03"))]
    assert stage_plan(["validate"], D("2026-01-03"), since=D("2026-01-01")) == [("validate", D("2026-01-03"))]
    assert as_of_dates(None, D("2026-01-03")) == [D("2026-01-03")]
    assert as_of_dates(D("2026-01-03"), D("2026-01-03"), 7) == [D("2026-01-03")]


@pytest.mark.parametrize(("args", "message"), [
    ((["score"], D("2026-01-01"), D("2026-02-01"), 1), "--since 2026-02-01 is after the as-of date 2026-01-01"),
    ((["score"], D("2026-02-01"), D("2026-01-01"), 0), "--every must be at least 1 day"),
    ((["scoring"], D("2026-02-01"), None, 1), "unknown stage(s) ['scoring']"),
])
def test_bad_plans_are_refused_with_a_clear_message(args, message):
    with pytest.raises(StageError) as raised:
        stage_plan(*args)
    assert str(raised.value).startswith(message)


def test_shared_frames_persist_once_per_key_and_replace_a_stale_key(spark):
    shared = SharedFrames()
    built: list[int] = []

    def build(value: int):
        built.append(value)
        return spark.createDataFrame([(value,)], "n int")

    first = shared.get("facts", ("v1", D("2026-06-30")), lambda: build(1))
    again = shared.get("facts", ("v1", D("2026-06-30")), lambda: build(2))
    assert again is first and first.is_cached and built == [1]
    newer = shared.get("facts", ("v1", D("2026-07-01")), lambda: build(3))  # another as-of date
    assert not first.is_cached and newer.is_cached and built == [1, 3]
    assert [r.n for r in newer.collect()] == [3]
    shared.release()
    assert not newer.is_cached


def test_a_stage_run_without_a_context_releases_its_shared_frames(spark, cfg_factory):
    held = []

    @stage
    def uses_shared(spark_, cfg_, ctx):
        frame = ctx.shared.get("facts", 1, lambda: spark_.createDataFrame([(1,)], "n int"))
        held.append((frame, frame.is_cached))
        return "done"

    assert uses_shared(spark, cfg_factory()) == "done"
    frame, cached_during_the_stage = held[0]
    assert cached_during_the_stage and not frame.is_cached
    within_a_run = make_context(spark, cfg_factory())
    uses_shared(spark, cfg_factory(), within_a_run)
    assert held[1][0].is_cached  # the run releases it at its end
    within_a_run.shared.release()


def test_a_stage_is_reused_only_while_what_it_read_and_wrote_is_as_it_left_it(spark, cfg_factory):
    from pyspark.sql import types as T

    from cdp_spark.pipelines.common import record_manifest, unchanged_since

    schema = T.StructType([T.StructField("n", T.IntegerType())])
    cfg = cfg_factory()
    as_of = D("2026-06-30")

    def fake_stage(cfg=cfg, as_of=as_of):
        """reads silver.a, looks for silver.b, rewrites gold.c from silver.a: one successful run"""
        ctx = make_context(spark, cfg, as_of)
        ctx.read("silver.a")
        ctx.exists("silver.b")
        ctx.read("gold.c") if ctx.exists("gold.c") else None
        ctx.wrote("gold.c", ctx.store.append_rows("gold.c", [(1,)], schema).version)
        record_manifest(spark, ctx, "fake", "succeeded")
        return ctx.run_id

    def reused(full_refresh=False, cfg=cfg, as_of=as_of):
        return unchanged_since(make_context(spark, cfg, as_of, full_refresh=full_refresh), "fake")

    store = make_context(spark, cfg, as_of).store
    store.append_rows("silver.a", [(1,)], schema)
    assert reused() is None  # never ran
    first = fake_stage()
    assert reused() == first  # its own output gold.c is at the version it wrote, though it read an older one
    assert reused(full_refresh=True) is None
    assert reused(as_of=D("2026-07-01")) is None  # another date
    assert reused(cfg=cfg_factory("scores.rfm.groups=3")) is None  # other settings
    store.append_rows("silver.a", [(2,)], schema)  # an input moved on
    assert reused() is None
    second = fake_stage()
    assert reused() == second
    store.append_rows("silver.b", [(1,)], schema)  # a table it found absent appeared
    assert reused() is None
    third = fake_stage()
    assert reused() == third
    store.append_rows("gold.c", [(9,)], schema)  # someone else wrote its output
    assert reused() is None
    fourth = fake_stage()
    # a stage that also writes outside the lake (the HTML report) is reused only while that is there
    from cdp_spark.pipelines.pipeline import Stage

    ctx = make_context(spark, cfg, as_of)
    assert Stage(fake_stage, reusable=True, results_present=lambda _: True).reusable_run("fake", ctx) == fourth
    assert Stage(fake_stage, reusable=True, results_present=lambda _: False).reusable_run("fake", ctx) is None
    assert Stage(fake_stage).reusable_run("fake", ctx) is None



def test_a_small_lake_runs_normalise_score_predict_report_and_validate_on_the_interpreter(spark, cfg_factory,
                                                                                         monkeypatch, tmp_path):
    """Which code generation each stage runs with, by the lake's largest bronze table measured once, after ingest
    (whose stand-in here adds three rows to a bronze table of three: six)."""
    schema = T.StructType([T.StructField("n", T.LongType())])
    seen: dict[str, list[str | None]] = {}

    def recording(name: str):
        def stand_in(spark_, cfg_, ctx_):
            if name == "ingest":
                ctx_.store.append_rows(bronze_of("customers"), [(4,), (5,), (6,)], schema)
            seen.setdefault(name, []).append(spark_.conf.get(CODEGEN_FACTORY_MODE))
        return stand_in

    for name, spec in STAGES.items():
        monkeypatch.setitem(STAGES, name, replace(spec, run=recording(name), reusable=False))
    for limit, small in ((7, True), (6, False), (0, False)):
        cfg = cfg_factory(f"spark.generated_code_min_rows={limit}", "quality.enabled=false",
                          data_dir=tmp_path / f"limit-{limit}")
        ctx = make_context(spark, cfg, D("2026-06-30"))
        ctx.store.append_rows(bronze_of("customers"), [(1,), (2,), (3,)], schema)
        spark.conf.set(CODEGEN_FACTORY_MODE, "FALLBACK")  # the product's default (the suite interprets)
        seen.clear()
        run(spark, cfg, ctx)
        interpreted = {"normalise", "score", "predict", "report", "validate"} if small else set()
        assert seen == {name: ["NO_CODEGEN" if name in interpreted else "FALLBACK"] for name in STAGES}, limit
        assert spark.conf.get(CODEGEN_FACTORY_MODE) == "FALLBACK"
