"""Export published gold versions as files for COPY-style loads (docs/design.md §6), to a local folder or S3.

For each table of ``exports.tables`` whose newest published version was not exported yet, under
``<target>/<layer>_<table>/v<version>/``:

    parquet/part-*.parquet, csv/part-*.csv   the allow-listed columns (``exports.columns``); in CSV, arrays
                                             are comma-joined and maps JSON, with a header line
    parquet.manifest, csv.manifest           COPY manifests: {"entries": [{"url", "mandatory", "meta":
                                             {"content_length"}}]} (Redshift's format; Snowflake and
                                             BigQuery loads take the listed files)
    export.json                              table, version, run, rows, columns, files; written LAST, so a
                                             loader that waits for it never sees half an export

then ``<target>/<layer>_<table>/latest.json`` points at the version, and ``meta.export_log`` records it
(a version is exported once per target). The executors write the files straight to the target (a folder,
or S3 through S3A); only a session without S3A stages them on the driver and uploads them with boto3.
"""

from __future__ import annotations

import functools
import json
import logging
from datetime import UTC, datetime
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from cdp_spark.catalog import EXPORT_LOG, declared_schema
from cdp_spark.config import CdpConfig
from cdp_spark.io.object_store import write_text, write_through_spark
from cdp_spark.io.tables import Txn
from cdp_spark.pipelines.common import RunContext, already_delivered, make_context, record_manifest
from cdp_spark.pipelines.validate import published_version
from cdp_spark.sync.warehouse import allowed_columns, warehouse_frame

log = logging.getLogger("cdp.export")



def _write(df: DataFrame, fmt: str, folder: str) -> None:
    """``df`` as ``fmt`` part files in ``folder`` (CSV with a header line)."""
    writer = df.coalesce(max(1, df.rdd.getNumPartitions() // 4)).write.mode("overwrite")
    if fmt == "csv":
        writer.option("header", True).option("escape", '"').option("timestampFormat",
                                                                   "yyyy-MM-dd'T'HH:mm:ss.SSSSSS").csv(folder)
    else:
        writer.parquet(folder)


def export_table(spark: SparkSession, ctx: RunContext, cfg: CdpConfig, table: str, version: int,
                 target_root: str) -> dict[str, Any]:
    source = allowed_columns(ctx.store.read(table, version=version), table, cfg.exports.columns.get(table))
    prefix = f"{target_root}/{table.replace('.', '_')}/v{version:06d}"
    files: dict[str, list[dict[str, Any]]] = {}
    for fmt in cfg.exports.formats:
        frame = warehouse_frame(source) if fmt == "csv" else source
        written = write_through_spark(spark, f"{prefix}/{fmt}", functools.partial(_write, frame, fmt),
                                      cfg.object_store, cfg.staging_dir)
        files[fmt] = [{"url": url, "mandatory": True, "meta": {"content_length": size}} for url, size in written]
        write_text(f"{prefix}/{fmt}.manifest", json.dumps({"entries": files[fmt]}, indent=2), cfg.object_store,
                   "application/json")
    rows = source.count()
    summary = {"table": table, "version": version, "run_id": ctx.run_id, "rows": rows,
               "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
               "columns": [{"name": f.name, "type": f.dataType.simpleString()} for f in source.schema.fields],
               "files": files}
    write_text(f"{prefix}/export.json", json.dumps(summary, indent=2), cfg.object_store, "application/json")
    write_text(f"{target_root}/{table.replace('.', '_')}/latest.json",
               json.dumps({"version": version, "export": f"{prefix}/export.json"}), cfg.object_store,
               "application/json")
    return summary


def run(spark: SparkSession, cfg: CdpConfig, ctx: RunContext | None = None) -> dict[str, int]:
    ctx = ctx or make_context(spark, cfg)
    if not cfg.exports.enabled:
        log.info("exports disabled (exports.enabled: false)")
        return {}
    target_root = cfg.resolve(cfg.exports.target).rstrip("/")
    exported: dict[str, int] = {}
    for table in ctx.chosen_tables(cfg.exports.tables):
        version = published_version(ctx.store, table)
        if version is None:
            log.warning("%s has no published version; not exported", table)
            continue
        if already_delivered(ctx, EXPORT_LOG, table, version, target_root):
            log.info("%s version %d already exported to %s", table, version, target_root)
            continue
        summary = export_table(spark, ctx, cfg, table, version, target_root)
        files = sum(len(entries) for entries in summary["files"].values())
        entry = (ctx.run_id, table, version, target_root, summary["rows"], files,
                 datetime.now(UTC).replace(tzinfo=None))
        ctx.wrote(EXPORT_LOG, ctx.store.append_rows(EXPORT_LOG, [entry], declared_schema(EXPORT_LOG),
                                                    txn=Txn(f"export/{table}/{target_root}", version + 1)).version)
        exported[table] = int(summary["rows"])
        log.info("exported %s version %d: %d rows, %d files, to %s", table, version, summary["rows"], files,
                 target_root)
    ctx.counts["export"] = exported
    record_manifest(spark, ctx, "export", "succeeded")
    return exported
