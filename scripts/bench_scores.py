"""Score-library benchmark: Spark against the DuckDB SQL reference on the same generated data.

    python scripts/bench_scores.py --persons 1000000 --orders 5000000

Generates the inputs (``cdp_spark.demo.score_data``), then
- Spark (local[2]): reads them, computes the whole library (order facts, every score, RFM cut points,
  RFM scores and segments) and writes ``person_scores`` as parquet: wall time and the JVM's peak memory;
- DuckDB (2 threads, in a child process so its peak memory is its own): the reference SQL, same output;
- compares the two outputs row by row (rows differing in any column, and whether the cut points agree).
Figures go to ``benchmarks/results/scores.json``.
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cdp_spark.config import SparkSettings, load_config
from cdp_spark.demo.score_data import generate_score_inputs
from cdp_spark.scores.library import score_library
from cdp_spark.scores.orders import category_orders, order_facts, order_items
from cdp_spark.scores.rfm import cut_points, rfm
from cdp_spark.session import build_session, streaming_aggregation
from scripts.bench_common import cpu_loop_seconds, java_version, jvm_peak_rss_mb

ROOT = Path(__file__).resolve().parents[1]
AS_OF = date(2026, 6, 30)
TABLES = ("orders", "registry", "stores", "order_items", "products")

DUCKDB_CHILD = """
import json, sys, time, resource
from datetime import date
import duckdb
sys.path.insert(0, {root!r})
from cdp_spark.config import load_config
from tests.reference_duckdb import reference_query
settings = load_config(__import__("pathlib").Path({root!r}) / "conf", "local").scores
start = time.monotonic()
con = duckdb.connect()
con.execute("SET threads = 2")
query, cuts = reference_query(con, {sources!r}, date.fromisoformat({as_of!r}), settings.business_timezone,
                              settings.lifecycle, settings.rfm)
con.execute(f"COPY ({{query}}) TO '{out}' (FORMAT parquet)")
seconds = time.monotonic() - start
print(json.dumps({{"seconds": seconds, "cuts": cuts,
                   "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}}))
"""


def spark_scores(work: Path, out: Path, shuffle_partitions: int) -> dict[str, object]:
    settings = load_config(ROOT / "conf", "local").scores
    assert settings.rfm is not None
    spark = build_session(SparkSettings(master="local[2]", app_name="bench-scores", driver_memory="12g",
                                        shuffle_partitions=shuffle_partitions))
    try:
        start = time.monotonic()
        read = {name: spark.read.parquet(str(work / name)) for name in TABLES}
        # persisted as the score stage persists them (pipelines/score.py, purchase_facts: predict and the
        # report read them too)
        with streaming_aggregation(spark):  # as the score stage builds them
            facts = order_facts(read["orders"], read["registry"], read["stores"], settings.business_timezone,
                                AS_OF).persist()
            categories = category_orders(facts, order_items(read["order_items"], read["products"])).persist()
            library = score_library(read["registry"].select("person_id").distinct(), facts, categories, AS_OF,
                                    settings.lifecycle).persist()
        cuts = cut_points(library, settings.rfm.groups)
        rfm(library, cuts, settings.rfm.groups, settings.rfm.segments).write.mode("overwrite").parquet(str(out))
        seconds = time.monotonic() - start
        return {"seconds": round(seconds, 1), "peak_rss_mb": jvm_peak_rss_mb(spark), "cuts": cuts,
                "java": java_version(spark)}
    finally:
        spark.stop()


def duckdb_scores(work: Path, out: Path) -> dict[str, object]:
    sources = {name: f"{work / name}/*.parquet" for name in TABLES}
    code = DUCKDB_CHILD.format(root=str(ROOT), sources=sources, as_of=AS_OF.isoformat(), out=str(out))
    result = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    figures: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    figures["seconds"] = round(float(figures["seconds"]), 1)  # type: ignore[arg-type]
    return figures


def differing_rows(spark_out: Path, duckdb_out: Path) -> tuple[int, int, dict[str, int]]:
    """(rows compared, rows differing in any column, differences per column), compared in DuckDB."""
    import duckdb

    with duckdb.connect() as con:
        columns = [row[0] for row in con.execute(f"DESCRIBE SELECT * FROM read_parquet('{duckdb_out}')").fetchall()]
        compared = [c for c in columns if c != "person_id"]
        per_column = ", ".join(f"count(*) FILTER (WHERE s.{c} IS DISTINCT FROM d.{c}) AS {c}" for c in compared)
        any_column = " OR ".join(f"s.{c} IS DISTINCT FROM d.{c}" for c in compared)
        query = (f"SELECT count(*), count(*) FILTER (WHERE {any_column}), {per_column} "
                 f"FROM read_parquet('{spark_out}/*.parquet') s FULL JOIN read_parquet('{duckdb_out}') d "
                 f"USING (person_id)")
        row = con.execute(query).fetchone()
    assert row is not None
    return row[0], row[1], {c: n for c, n in zip(compared, row[2:], strict=True) if n}


@click.command()
@click.option("--persons", default=1_000_000, show_default=True)
@click.option("--orders", default=5_000_000, show_default=True)
@click.option("--shuffle-partitions", default=16, show_default=True)
@click.option("--work", type=click.Path(path_type=Path), default=None, help="scratch folder (default: a temp dir)")
def main(persons: int, orders: int, shuffle_partitions: int, work: Path | None) -> None:
    scratch = work or Path(tempfile.mkdtemp(prefix="cdp-bench-scores-"))
    try:
        cpu_before = cpu_loop_seconds()
        start = time.monotonic()
        counts = generate_score_inputs(scratch / "inputs", persons, orders, seed=persons, as_of=AS_OF)
        generated = time.monotonic() - start
        print(f"generated {counts} in {generated:.1f} s", flush=True)
        spark_figures = spark_scores(scratch / "inputs", scratch / "spark_out", shuffle_partitions)
        print(f"spark: {spark_figures['seconds']} s, peak {spark_figures['peak_rss_mb']} MiB", flush=True)
        duck_figures = duckdb_scores(scratch / "inputs", scratch / "duckdb_out.parquet")
        print(f"duckdb: {duck_figures['seconds']} s, peak {duck_figures['peak_rss_mb']} MiB", flush=True)
        rows, differing, per_column = differing_rows(scratch / "spark_out", scratch / "duckdb_out.parquet")
        result = {
            "benchmark": "score_library",
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {"cores": 2, "spark_master": "local[2]", "duckdb_threads": 2, "java": spark_figures["java"],
                        "cpu_loop_seconds": {"before": cpu_before, "after": cpu_loop_seconds()}},
            "inputs": counts,
            "persons_scored": rows,
            "spark_seconds": spark_figures["seconds"],
            "spark_peak_rss_mb": spark_figures["peak_rss_mb"],
            "spark_persons_per_s": round(rows / float(spark_figures["seconds"])),  # type: ignore[arg-type]
            "duckdb_seconds": duck_figures["seconds"],
            "duckdb_peak_rss_mb": duck_figures["peak_rss_mb"],
            "spark_to_duckdb_time_ratio": round(float(spark_figures["seconds"])  # type: ignore[arg-type]
                                                / float(duck_figures["seconds"]), 2),  # type: ignore[arg-type]
            "rows_differing": differing,
            "differences_per_column": per_column,
            "rfm_cut_points_equal": spark_figures["cuts"] == duck_figures["cuts"],
            "rfm_cut_points": {"spark": spark_figures["cuts"], "duckdb": duck_figures["cuts"]},
            "shuffle_partitions": shuffle_partitions,
            "generate_seconds": round(generated, 1),
            "bench_process_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }
        print(json.dumps(result, indent=2))
        target = ROOT / "benchmarks" / "results" / "scores.json"
        target.write_text(json.dumps(result, indent=2) + "\n")
        print(f"written to {target}")
    finally:
        if work is None:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
