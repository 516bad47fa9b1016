"""A new process's fixed cost with and without the class-data-sharing archive (docs/design.md §9, "JVM start").

    python scripts/bench_jvm_start.py --records 200 --rounds 3

The user's path, ``cdp run --stages ingest,normalise,resolve`` in a new process on the generator's person
files (as ``bench_er``'s ``cli``), timed from outside: once with an empty archive folder (that run writes the
archive when its JVM exits), then ``--rounds`` times without the archive and with it, alternating, so both
see the same machine. The archive saves a fixed cost (loading classes): small data shows it; at 10,000
records it is within this host's run-to-run noise. ``cpu_loop_seconds`` before and after gives the host's
speed. Figures go to ``benchmarks/results/jvm-start.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cdp_spark.class_archive import is_complete
from scripts.bench_common import cpu_loop_seconds
from scripts.bench_er import ROOT, person_files, time_cli


def wait_for_archive(folder: Path, timeout: float = 600) -> Path:
    """The archive the writing run's JVM (which outlives its Python process) finished, or an error."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in [*folder.glob("*.partial"), *folder.glob("*.jsa")]:
            if is_complete(path):
                return path
        time.sleep(1)
    raise RuntimeError(f"the first run wrote no class archive into {folder}")


@click.command()
@click.option("--records", default=200, show_default=True, help="generator person records")
@click.option("--rounds", default=3, show_default=True, help="runs without and with the archive, alternating")
@click.option("--out", default=str(ROOT / "benchmarks" / "results" / "jvm-start.json"), show_default=True)
def main(records: int, rounds: int, out: str) -> None:
    os.environ.setdefault("CDP_HASH_KEY", "bench-hash-key")
    work = Path(tempfile.mkdtemp(prefix="cdp-bench-jvm-"))
    archives = work / "jvm"
    data = person_files(records, work / "data")
    with_archive = (f"spark.class_archive_dir={archives}",)
    without = (*with_archive, "spark.class_data_sharing=false")
    cpu_before = cpu_loop_seconds()
    writing = time_cli(data, with_archive)
    print("writing the archive", json.dumps(writing), flush=True)
    wait_for_archive(archives)
    runs: dict[str, list[dict[str, object]]] = {"without_archive": [], "with_archive": []}
    for _ in range(rounds):
        for name, overrides in (("without_archive", without), ("with_archive", with_archive)):
            runs[name].append(time_cli(data, overrides))
            print(name, json.dumps(runs[name][-1]), flush=True)
    mean = {name: round(statistics.mean(float(r["wall_seconds"]) for r in rs), 1)  # type: ignore[arg-type]
            for name, rs in runs.items()}
    report = {
        "benchmark": "jvm_start", "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cores": 2, "cpu_loop_seconds": {"before": cpu_before, "after": cpu_loop_seconds()}},
        "command": "cdp run --stages ingest,normalise,resolve", "records": records,
        "archive_mb": round(sum(p.stat().st_size for p in archives.glob("*.jsa")) / 2**20, 1),
        "writing_run": writing, **runs,
        "mean_wall_seconds": mean, "ratio": round(mean["with_archive"] / mean["without_archive"], 3)}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("mean_wall_seconds", "ratio", "archive_mb")}))
    print(f"written {out}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
