"""Exports of published versions to a real S3 endpoint (moto's server): files, COPY manifests, summary."""

from __future__ import annotations

import io
import json
from datetime import date
from decimal import Decimal

import boto3
import pyarrow.parquet as pq
import pytest

from cdp_spark.io.tables import open_store
from cdp_spark.pipelines import export, validate
from cdp_spark.pipelines.common import make_context
from cdp_spark.session import s3a_available

pytestmark = pytest.mark.integration

SUITE = ("table: gold.people\nexpectations:\n  - type: expect_column_values_to_be_unique\n"
         "    kwargs: {column: person_id}\n")


@pytest.mark.parametrize("writer", ["executors", "driver"])
def test_published_versions_exported_once_with_manifests(spark, s3_server, cfg_factory, tmp_path, writer,
                                                         monkeypatch):
    """``executors``: Spark writes the files to the bucket through S3A; ``driver``: a session without S3A
    stages them and uploads them with boto3. Same objects, manifests and summary."""
    if writer == "executors" and not s3a_available(spark):
        pytest.skip("no S3A filesystem (hadoop-aws) in this session: run make jars")
    if writer == "driver":
        monkeypatch.setattr("cdp_spark.session.s3a_available", lambda _spark: False)
    bucket = f"cdp-exports-{writer}"
    client = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    client.create_bucket(Bucket=bucket)
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "gold.people.yaml").write_text(SUITE)
    cfg = cfg_factory(f"quality.suites_dir={tmp_path / 'suites'}", f"object_store.endpoint_url={s3_server}",
                      "exports.enabled=true", f"exports.target=s3://{bucket}/cdp", "exports.tables=[gold.people]",
                      "exports.formats=[parquet, csv]", "exports.columns={gold.people: [person_id, tags, spend]}")
    store = open_store(spark, cfg.lake_root, cfg.storage.engine)
    people = spark.createDataFrame([("P1", "ana@x.es", ["a", "b"], Decimal("10.50")),
                                    ("P2", "bo@x.es", [], Decimal("0.00"))],
                                   "person_id string, email string, tags array<string>, spend decimal(12,2)")
    store.write("gold.people", people)
    ctx = make_context(spark, cfg, date(2026, 6, 30))
    validate.run(spark, cfg, ctx.for_stage())
    assert export.run(spark, cfg, ctx.for_stage()) == {"gold.people": 2}

    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"])
    prefix = "cdp/gold_people/v000000"
    assert [k for k in keys if not k.split("/")[-1].startswith("part-")] == [
        "cdp/gold_people/latest.json", f"{prefix}/csv.manifest", f"{prefix}/export.json", f"{prefix}/parquet.manifest"]

    def body(key: str) -> bytes:
        return client.get_object(Bucket=bucket, Key=key)["Body"].read()

    summary = json.loads(body(f"{prefix}/export.json"))
    assert (summary["table"], summary["version"], summary["rows"]) == ("gold.people", 0, 2)
    assert [c["name"] for c in summary["columns"]] == ["person_id", "tags", "spend"]  # no e-mail: allow-list
    manifest = json.loads(body(f"{prefix}/parquet.manifest"))
    rows = []
    for entry in manifest["entries"]:
        key = entry["url"].removeprefix(f"s3://{bucket}/")
        data = body(key)
        assert entry["mandatory"] and entry["meta"]["content_length"] == len(data)
        rows += pq.read_table(io.BytesIO(data)).to_pylist()
    assert sorted(rows, key=lambda r: r["person_id"]) == [
        {"person_id": "P1", "tags": ["a", "b"], "spend": Decimal("10.50")},
        {"person_id": "P2", "tags": [], "spend": Decimal("0.00")}]
    csv_text = b"".join(body(e["url"].removeprefix(f"s3://{bucket}/"))
                        for e in json.loads(body(f"{prefix}/csv.manifest"))["entries"]).decode()
    # an empty array is an empty string ("") in CSV, distinct from NULL
    assert sorted(csv_text.splitlines()) == sorted(["person_id,tags,spend", 'P1,"a,b",10.50', 'P2,"",0.00'])
    assert b"ana@x.es" not in b"".join(body(k) for k in keys)
    assert json.loads(body("cdp/gold_people/latest.json"))["version"] == 0

    # a rerun exports nothing new; the export log holds one row
    assert export.run(spark, cfg, make_context(spark, cfg, date(2026, 6, 30))) == {}
    assert [(r.table_name, r.table_version, r.rows) for r in store.read("meta.export_log").collect()] == [
        ("gold.people", 0, 2)]
