"""Ingestion benchmark: rows/s for CSV and JSON landing files on local[2], quarantine enabled.

    python scripts/bench_ingest.py --orders 5000000 --contacts 1000000

Writes an orders CSV (``,``), a contacts CSV (``;`` + BOM) and the same contacts as JSON Lines, each with
0.1 % bad rows (unparsable values, missing keys) so the quarantine path is exercised, ingests each into a
fresh lake and reports rows/s, wall time, the bronze files' size, the host's speed and the JVM's and
Python's peak memory to ``benchmarks/results/ingest.json``.
"""

from __future__ import annotations

import json
import platform
import resource
import shutil
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

import click
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cdp_spark.catalog import bronze_of
from cdp_spark.config import SparkSettings, load_config
from cdp_spark.io.files import file_info
from cdp_spark.pipelines.common import make_context
from cdp_spark.pipelines.ingest import ingest_file
from cdp_spark.session import build_session
from scripts.bench_common import cpu_loop_seconds, java_version, jvm_peak_rss_mb

ROOT = Path(__file__).resolve().parents[1]


def orders_table(n: int, rng: np.random.Generator) -> pa.Table:
    ids = np.char.add("O", np.char.zfill(np.arange(n).astype(str), 10))
    seconds = rng.integers(1_700_000_000, 1_780_000_000, n).astype("datetime64[s]")
    ts = np.datetime_as_string(seconds, unit="s").astype(object) + "Z"
    bad = rng.random(n) < 0.001
    ts[bad] = "not-a-time"
    gross = np.round(rng.uniform(5, 500, n), 2)
    return pa.table({
        "order_id": ids, "customer_source": np.where(rng.random(n) < 0.5, "crm", "ecommerce"),
        "customer_key": np.char.add("C", np.char.zfill(rng.integers(1, n // 5 + 2, n).astype(str), 8)),
        "store_id": rng.choice(["S01", "S02", "S03", "W01", "A01"], n), "channel": rng.choice(["store", "web"], n),
        "order_ts": ts, "gross_amount": np.char.mod("%.2f", gross),
        "discount_amount": np.char.mod("%.2f", np.where(rng.random(n) < 0.3, gross * 0.1, 0.0)),
        "currency": np.full(n, "EUR"), "status": np.full(n, "completed")})


def contacts_table(n: int, rng: np.random.Generator) -> pa.Table:
    ids = np.char.add("C", np.char.zfill(np.arange(n).astype(str), 8)).astype(object)
    ids[rng.random(n) < 0.001] = ""
    given = rng.choice(["María", "José", "Ana", "Javier", "Lucía", "Paco"], n)
    surname = rng.choice(["García", "López", "Martín", "Ruiz", "Gómez"], n)
    birth = np.datetime_as_string(rng.integers(-7000, 12000, n).astype("datetime64[D]")).astype(object)
    birth[rng.random(n) < 0.001] = "31/02/1990"
    return pa.table({
        "contact_id": ids, "first_name": given, "last_name": surname,
        "email": np.char.add(np.char.add(np.char.lower(np.arange(n).astype(str)), "@example.com"), ""),
        "phone": np.char.add("6", np.char.zfill(rng.integers(0, 99_999_999, n).astype(str), 8)),
        "birth_date": birth, "postcode": rng.choice(["28001", "08001", "46001"], n),
        "city": rng.choice(["Madrid", "Barcelona", "Valencia"], n), "country": np.full(n, "ES"),
        "opt_in": rng.choice(["true", "false"], n), "updated_at": np.full(n, "2026-01-01T00:00:00Z")})


def write_csv(table: pa.Table, path: Path, sep: str, bom: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        if bom:
            handle.write(b"\xef\xbb\xbf")
        pacsv.write_csv(table, handle, pacsv.WriteOptions(delimiter=sep, quoting_style="needed"))


def write_jsonl(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = table.to_pandas()
    frame.to_json(path, orient="records", lines=True, force_ascii=False)


@click.command()
@click.option("--orders", default=5_000_000, show_default=True)
@click.option("--contacts", default=1_000_000, show_default=True)
@click.option("--out", default=str(ROOT / "benchmarks" / "results" / "ingest.json"), show_default=True)
@click.option("--work-dir", default=None, help="where the generated files and lake go (default: a temp dir)")
def main(orders: int, contacts: int, out: str, work_dir: str | None) -> None:
    work = Path(work_dir or tempfile.mkdtemp(prefix="cdp-bench-ingest-"))
    rng = np.random.default_rng(42)
    landing = work / "landing"
    started = time.monotonic()
    write_csv(orders_table(orders, rng), landing / "orders" / "orders.csv", ",", bom=False)
    contact_rows = contacts_table(contacts, rng)
    write_csv(contact_rows, landing / "crm" / "contacts.csv", ";", bom=True)
    write_jsonl(contact_rows.rename_columns(["customer_id", *contact_rows.column_names[1:]]),
                landing / "ecommerce" / "customers.jsonl")
    generation_s = round(time.monotonic() - started, 1)
    print(f"generated landing files in {generation_s} s under {landing}")

    host_before = cpu_loop_seconds()
    cfg = load_config(ROOT / "conf", "local", data_dir=str(work))
    spark = build_session(SparkSettings(master="local[2]", shuffle_partitions=4, driver_memory="8g",
                                        conf={"spark.sql.files.maxPartitionBytes": str(64 << 20)}))
    ctx = make_context(spark, cfg, date(2026, 6, 30))
    from cdp_spark.config import SourceSettings

    json_source = SourceSettings(**{**cfg.sources["ecommerce_customers"].model_dump(),
                                    "columns": {"customer_id": "string", **{
                                        k: v for k, v in cfg.sources["crm_contacts"].columns.items()
                                        if k != "contact_id"}}})
    cases = [("orders_csv", "orders", cfg.sources["orders"], landing / "orders" / "orders.csv"),
             ("contacts_csv", "crm_contacts", cfg.sources["crm_contacts"], landing / "crm" / "contacts.csv"),
             ("contacts_json", "ecommerce_customers", json_source, landing / "ecommerce" / "customers.jsonl")]
    results = []
    for case, name, source, path in cases:
        t0 = time.monotonic()
        outcome = ingest_file(spark, ctx, name, source, file_info(str(path)))
        seconds = time.monotonic() - t0
        assert outcome.rows_read == outcome.rows_accepted + outcome.rows_quarantined
        bronze = Path(ctx.store.path(bronze_of(source.entity)))
        results.append({"case": case, "rows": outcome.rows_read, "accepted": outcome.rows_accepted,
                        "quarantined": outcome.rows_quarantined, "file_mb": round(path.stat().st_size / 2**20, 1),
                        "bronze_mb": round(sum(f.stat().st_size for f in bronze.glob("*.parquet")) / 2**20, 1),
                        "seconds": round(seconds, 1), "rows_per_s": round(outcome.rows_read / seconds)})
        print(f"{case:<14} {outcome.rows_read:>9} rows ({outcome.rows_quarantined} quarantined) "
              f"in {seconds:6.1f} s = {outcome.rows_read / seconds:>9,.0f} rows/s")
    report = {
        "benchmark": "ingest", "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cores": 2, "spark_master": "local[2]", "python": platform.python_version(),
                    "java": java_version(spark)},
        "cpu_loop_seconds": {"before": host_before, "after": cpu_loop_seconds()},
        "generation_seconds": generation_s, "results": results,
        "peak_rss_mb": {"jvm": jvm_peak_rss_mb(spark),
                        "python": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)},
    }
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"written {out}")
    spark.stop()
    if work_dir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
