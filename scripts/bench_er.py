"""Entity-resolution benchmark on the generator's labelled data.

    python scripts/bench_er.py --records 10000,100000,1000000

For each size: generates persons so that there are about that many source records, ingests and
normalises them, then times the resolve stage (candidates, comparisons, Fellegi-Sunter, clustering,
stable ids, survivorship) and measures against the ground truth: pairwise and cluster precision, recall
and F1, pair completeness of the candidate generation, records/s, and the JVM's peak memory. Figures go
to ``benchmarks/results/er.json``.

The first resolve of a size runs in a JVM that has not yet compiled that work (JIT, code generation);
sizes in ``--warm`` are resolved a second time from scratch (the identity tables removed, so a full run
again, not an incremental one) and that time is reported as ``resolve_seconds_warm``: the steady state
of a long-lived driver; ``persons_warm`` is that run's person count, which must equal the first's. A
fixed Python loop is timed before and after (``cpu_loop_seconds``) because this shared 2-core machine's
speed varies by tens of percent from one run to the next.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pyspark.sql import functions as F

from cdp_spark.config import SparkSettings, load_config
from cdp_spark.demo.generator import generate
from cdp_spark.identity.candidates import candidate_pairs
from cdp_spark.identity.evaluate import evaluate
from cdp_spark.pipelines import ingest, normalise, resolve
from cdp_spark.pipelines.common import make_context
from cdp_spark.session import build_session
from scripts.bench_common import cpu_loop_seconds, jvm_peak_rss_mb

ROOT = Path(__file__).resolve().parents[1]
RECORDS_PER_PERSON = 1.82  # what the generator produces on average


def run_size(spark, records: int, work: Path, warm: bool) -> dict[str, object]:  # type: ignore[no-untyped-def]
    data = work / f"er-{records}"
    persons = max(10, int(records / RECORDS_PER_PERSON))
    generate(data / "landing", customers=persons, seed=records, with_events=False)
    cfg = load_config(ROOT / "conf", "local", data_dir=str(data))
    cfg = cfg.model_copy(update={"sources": {k: v for k, v in cfg.sources.items()
                                             if v.entity in cfg.identity.person_sources}})
    ctx = make_context(spark, cfg, date(2026, 6, 30))
    t0 = time.monotonic()
    ingest.run(spark, cfg, ctx.for_stage())
    normalise.run(spark, cfg, ctx.for_stage())
    prepared = time.monotonic() - t0
    t1 = time.monotonic()
    counts = resolve.run(spark, cfg, ctx.for_stage())
    seconds = time.monotonic() - t1
    store = ctx.store
    warm_figures: dict[str, object] = {}
    if warm:
        for table in (resolve.REGISTRY, resolve.EDGES, resolve.MODEL, resolve.PROFILE, resolve.EVENTS):
            shutil.rmtree(store.path(table), ignore_errors=True)
        t2 = time.monotonic()
        warm_counts = resolve.run(spark, cfg, make_context(spark, cfg, date(2026, 6, 30)).for_stage())
        warm_seconds = time.monotonic() - t2
        # a full rerun on the same records must give the same persons (determinism check)
        warm_figures = {"persons_warm": warm_counts["persons"], "resolve_seconds_warm": round(warm_seconds, 1),
                        "records_per_s_warm": round(int(counts["records"]) / warm_seconds)}  # type: ignore[call-overload]
    registry = store.read("gold.person_registry").select("record_id", "person_id")
    truth = (spark.read.option("header", True).csv(str(data / "ground_truth" / "person_records.csv"))
             .select(F.concat_ws(":", "source", "source_key").alias("record_id"), "true_person"))
    matching = cfg.identity.matching
    assert matching is not None
    candidates = candidate_pairs(resolve.person_records(ctx.for_stage(), cfg), matching.blocking_keys,
                                 matching.snm_passes, matching.max_key_group)
    quality = evaluate(registry, truth, candidates)
    n_records = int(counts["records"])  # type: ignore[call-overload]
    result = {"records": n_records, "true_persons": persons, "persons": counts["persons"],
              "resolve_seconds": round(seconds, 1), "records_per_s": round(n_records / seconds), **warm_figures,
              "ingest_normalise_seconds": round(prepared, 1), **quality,
              **{k: counts[k] for k in ("candidate_pairs", "accepted_pairs", "junk_identifiers", "giant_clusters")
                 if k in counts}}
    print(json.dumps(result))
    shutil.rmtree(data, ignore_errors=True)
    return result


@click.command()
@click.option("--records", default="10000,100000,1000000", show_default=True, help="comma-separated sizes")
@click.option("--warm", default="10000,100000,1000000", show_default=True,
              help="comma-separated sizes also timed in a second, warm run")
@click.option("--out", default=str(ROOT / "benchmarks" / "results" / "er.json"), show_default=True)
def main(records: str, warm: str, out: str) -> None:
    os.environ.setdefault("CDP_HASH_KEY", "bench-hash-key")  # the profile's keyed hashes (privacy) need a key
    work = Path(tempfile.mkdtemp(prefix="cdp-bench-er-"))
    spark = build_session(SparkSettings(master="local[2]", shuffle_partitions=8, driver_memory="10g"))
    spark.sparkContext.setCheckpointDir(str(work / "checkpoints"))
    warm_sizes = {int(size) for size in warm.split(",") if size}
    cpu_before = cpu_loop_seconds()
    results = [run_size(spark, int(size), work, int(size) in warm_sizes) for size in records.split(",")]
    report = {"benchmark": "entity_resolution", "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
              "machine": {"cores": 2, "spark_master": "local[2]",
                          "cpu_loop_seconds": {"before": cpu_before, "after": cpu_loop_seconds()}},
              "results": results,
              "jvm_peak_rss_mb": jvm_peak_rss_mb(spark),
              "targets_at_100k": {"pairwise_f1": ">= 0.99", "pairwise_precision": ">= 0.995",
                                  "records_per_s": ">= 3000"}}
    if len(results) > 1:
        first, last = results[0], results[-1]
        n_ratio = last["records"] / first["records"]  # type: ignore[operator]
        report["growth"] = {"records_ratio": round(n_ratio, 1),
                            "time_ratio": round(last["resolve_seconds"] / first["resolve_seconds"], 1),  # type: ignore[operator]
                            "candidate_ratio": round(last["candidate_pairs"] / max(first["candidate_pairs"], 1), 1)}  # type: ignore[operator]
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"written {out}")
    spark.stop()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
