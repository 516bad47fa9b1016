"""Whole-pipeline benchmark on local[2]: every stage's wall time, rows/s and peak memory at several sizes.

    python scripts/bench_pipeline.py --persons 10000,100000,1000000 --orders-per-person 5

For each size, in a child process of its own (so each run has a fresh JVM and its own peak memory):
generate the demo landing files (persons with their CRM / e-commerce / loyalty records, orders, items,
products, stores, web events), then run the pipeline exactly as ``cdp run`` does with the ``local``
overlay (probabilistic matching, scores, predictions, reports, quality gate; warehouse sync and exports are
off in that overlay). A sampler reads the Spark JVM's resident memory every half second and keeps the
peak per stage. Figures go to ``benchmarks/results/pipeline.json`` with, per stage, how its time grows
with the data between sizes (the exponent k in time ~ size^k: 1 is linear).
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import click

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "pipeline.json"
AS_OF = date(2026, 6, 30)
ORDERS_MEAN_PER_ORDER_PER_PERSON = 9.0 / 5.0  # generator's orders_mean giving ~5 orders per person (measured)


class StageMemory(logging.Handler):
    """Follows the pipeline's "stage X: started" log lines and samples the JVM's RSS for the current stage."""

    def __init__(self, jvm_pid: int) -> None:
        super().__init__()
        self.status = Path(f"/proc/{jvm_pid}/status")
        self.stage = "start"
        self.peak_mb: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("stage ") and ": started" in message:
            self.stage = message.split()[1].rstrip(":")

    def _rss_mb(self) -> float:
        for line in self.status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def _sample(self) -> None:
        while not self._stop.wait(0.5):
            rss = self._rss_mb()
            self.peak_mb[self.stage] = round(max(self.peak_mb.get(self.stage, 0.0), rss), 1)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def stage_rows(lake: Path, persons: int) -> dict[str, int]:
    """The rows each stage works through: source rows for ingest and normalise, person records for
    resolve, persons for the stages after it."""
    from deltalake import DeltaTable

    log = DeltaTable(str(lake / "meta" / "ingestion_log")).to_pyarrow_table(columns=["rows_read"])
    source_rows = int(sum(log.column("rows_read").to_pylist()))
    records = DeltaTable(str(lake / "gold" / "person_registry")).to_pyarrow_table(columns=["record_id"]).num_rows
    return {"ingest": source_rows, "normalise": source_rows, "resolve": records, "score": persons,
            "predict": persons, "report": persons, "validate": persons, "sync": persons, "export": persons}


def run_one(persons: int, orders_per_person: float, driver_memory: str, shuffle_partitions: int) -> dict[str, Any]:
    """Generates the data and runs the pipeline once; returns the figures of this size."""
    from cdp_spark.config import load_config
    from cdp_spark.demo.generator import generate
    from cdp_spark.log import configure
    from cdp_spark.pipelines import pipeline
    from cdp_spark.pipelines.common import make_context
    from cdp_spark.session import build_session

    configure()
    os.environ.setdefault("CDP_HASH_KEY", "bench-hash-key")
    workdir = Path(tempfile.mkdtemp(prefix=f"cdp-bench-pipeline-{persons}-"))
    try:
        started = time.monotonic()
        counts = generate(workdir / "landing", customers=persons, seed=42,
                          orders_mean=orders_per_person * ORDERS_MEAN_PER_ORDER_PER_PERSON)
        generate_s = round(time.monotonic() - started, 1)
        cfg = load_config(ROOT / "conf", "local",
                          [f"spark.driver_memory={driver_memory}", f"spark.shuffle_partitions={shuffle_partitions}"],
                          data_dir=str(workdir))
        spark = build_session(cfg.spark, "cdp-bench-pipeline")
        jvm = spark.sparkContext._jvm
        assert jvm is not None
        memory = StageMemory(int(jvm.ProcessHandle.current().pid()))
        logging.getLogger("cdp.pipeline").addHandler(memory)
        memory.start()
        started = time.monotonic()
        summary = pipeline.run(spark, cfg, make_context(spark, cfg, AS_OF))
        total_s = round(time.monotonic() - started, 1)
        memory.stop()
        rows = stage_rows(workdir / "lake", summary.persons)
        stages = {stage: {"seconds": seconds, "rows": rows[stage],
                          "rows_per_s": round(rows[stage] / seconds) if seconds else None,
                          "peak_jvm_rss_mb": memory.peak_mb.get(stage)}
                  for stage, seconds in summary.seconds.items()}
        spark.stop()
        return {"persons": persons, "generated": counts, "generate_seconds": generate_s,
                "pipeline_seconds": total_s, "persons_resolved": summary.persons,
                "quarantined_rows": summary.quarantined, "stages": stages,
                "peak_jvm_rss_mb": max(memory.peak_mb.values(), default=None)}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def growth(runs: list[dict[str, Any]]) -> dict[str, list[float | None]]:
    """Per stage, the exponent k of time ~ rows^k between consecutive sizes (1 = linear)."""
    exponents: dict[str, list[float | None]] = {}
    for small, large in itertools.pairwise(runs):
        for stage, figures in large["stages"].items():
            before = small["stages"].get(stage)
            ok = before and before["seconds"] > 0 and figures["seconds"] > 0 and figures["rows"] > before["rows"]
            value = (round(math.log(figures["seconds"] / before["seconds"]) /
                           math.log(figures["rows"] / before["rows"]), 2) if ok else None)
            exponents.setdefault(stage, []).append(value)
    return exponents


@click.command()
@click.option("--persons", default="10000,100000,1000000", show_default=True, help="sizes, comma-separated")
@click.option("--orders-per-person", default=5.0, show_default=True)
@click.option("--driver-memory", default="14g", show_default=True)
@click.option("--shuffle-partitions", default=8, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=RESULTS, show_default=True,
              help="results file (another name keeps pipeline.json, e.g. for a partial rerun)")
@click.option("--one", type=int, default=None, hidden=True, help="child process: run this size, print JSON")
def main(persons: str, orders_per_person: float, driver_memory: str, shuffle_partitions: int, out: Path,
         one: int | None) -> None:
    if one is not None:
        print("RESULT " + json.dumps(run_one(one, orders_per_person, driver_memory, shuffle_partitions)))
        return
    runs: list[dict[str, Any]] = []
    for size in [int(p) for p in persons.split(",")]:
        # the child's log goes to a file next to the results, to follow a long run (tail -f)
        log_path = RESULTS.parent / f"pipeline-{size}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("w") as log_file:
            child = subprocess.run([sys.executable, __file__, "--one", str(size), "--orders-per-person",
                                    str(orders_per_person), "--driver-memory", driver_memory,
                                    "--shuffle-partitions", str(shuffle_partitions)],
                                   stdout=subprocess.PIPE, stderr=log_file, text=True)
        lines = [line for line in child.stdout.splitlines() if line.startswith("RESULT ")]
        if child.returncode != 0 or not lines:
            sys.exit(f"size {size} failed, log in {log_path}:\n{log_path.read_text()[-3000:]}")
        log_path.unlink()
        run = json.loads(lines[-1][len("RESULT "):])
        runs.append(run)
        print(f"{size:>9,} persons, {run['generated']['orders']:>9,} orders: "
              f"pipeline {run['pipeline_seconds']:>7.1f} s, peak JVM RSS {run['peak_jvm_rss_mb']} MiB "
              f"(data generated in {run['generate_seconds']} s)")
        for stage, figures in run["stages"].items():
            print(f"    {stage:<10} {figures['seconds']:>7.1f} s  {figures['rows']:>10,} rows  "
                  f"{figures['rows_per_s'] or 0:>8,} rows/s  peak {figures['peak_jvm_rss_mb']} MiB")
        write_results(out, runs, orders_per_person, driver_memory, shuffle_partitions)  # kept if a larger size fails
    exponents = growth(runs)
    if exponents:
        print("time ~ rows^k between consecutive sizes:")
        for stage, values in exponents.items():
            print(f"    {stage:<10} k = {', '.join('-' if v is None else f'{v:.2f}' for v in values)}")
    print(f"written to {out}")


def write_results(out: Path, runs: list[dict[str, Any]], orders_per_person: float, driver_memory: str,
                  shuffle_partitions: int) -> None:
    out.write_text(json.dumps({
        "benchmark": "pipeline", "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "master": "local[2]", "driver_memory": driver_memory,
                    "shuffle_partitions": shuffle_partitions},
        "as_of": AS_OF.isoformat(), "orders_per_person": orders_per_person, "runs": runs,
        "growth_exponents": growth(runs), "target": "1M persons / 5M orders under 15 minutes",
    }, indent=2) + "\n")


if __name__ == "__main__":
    main()
