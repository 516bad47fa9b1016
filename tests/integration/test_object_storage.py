"""Ingestion from a real S3 endpoint on 127.0.0.1 (moto server): exactly once across runs, re-uploads,
throttling (HTTP 503) with bounded retries, and the endpoint being down."""

from __future__ import annotations

import os
import zlib
from datetime import date

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from chispa import assert_df_equality
from deltalake import DeltaTable

from cdp_spark.config import ObjectStoreSettings
from cdp_spark.ingest.objects import spark_reads_objects
from cdp_spark.io.object_store import ObjectStore, ObjectStoreError
from cdp_spark.io.tables import Txn
from cdp_spark.pipelines import erase, ingest, normalise
from cdp_spark.pipelines.common import make_context
from cdp_spark.session import delta_spark_available, s3a_available
from tests.integration.s3 import free_port

pytestmark = pytest.mark.integration
HEADER = "contact_id;first_name;last_name;email;phone;birth_date;postcode;city;country;opt_in;updated_at\n"


def s3_config(cfg_factory, endpoint: str, bucket: str, max_attempts: int = 5, read_mode: str = "stage"):
    cfg = cfg_factory()
    crm = cfg.sources["crm_contacts"].model_copy(update={"path": f"s3://{bucket}/landing/crm/*.csv"})
    return cfg.model_copy(update={
        "sources": {"crm_contacts": crm},
        "object_store": ObjectStoreSettings(endpoint_url=endpoint, max_attempts=max_attempts, connect_timeout_s=1,
                                            read_timeout_s=5, read_mode=read_mode)})


@pytest.fixture()
def bucket(s3_server, request):
    slug = request.node.name.replace("_", "-").replace("[", "-").replace("]", "")[:40].lower().strip("-")
    name = f"cdp-{slug}-{zlib.crc32(request.node.name.encode()):08x}"  # one bucket per test and parameter
    client = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    client.create_bucket(Bucket=name)
    return client, name


def put(client, bucket: str, key: str, body: str) -> None:
    client.put_object(Bucket=bucket, Key=key, Body=("\ufeff" + body).encode("utf-8"))


@pytest.mark.parametrize("read_mode", ["stage", "direct"])
def test_objects_ingested_exactly_once_and_reuploads_follow_the_rule(spark, s3_server, bucket, cfg_factory,
                                                                     read_mode, monkeypatch):
    """``stage``: boto3 downloads each object first; ``direct``: Spark reads ``s3a://`` from the endpoint
    itself (path-style, endpoint from the config), the boto3 manifest still deciding what is new."""
    if read_mode == "direct":
        if not s3a_available(spark):
            pytest.skip("no S3A filesystem (hadoop-aws) in this session: run make jars")
        monkeypatch.setattr(ObjectStore, "stage", lambda *_: pytest.fail("direct reads must not stage objects"))
    client, name = bucket
    put(client, name, "landing/crm/a.csv", HEADER + "C1;Ana;Ruiz;ana@x.es;;;;;ES;true;2026-01-01T00:00:00Z\n"
                                                    "C2;Bo;Gil;bo@x.es;;;;;ES;false;2026-01-01T00:00:00Z\n")
    put(client, name, "landing/other/ignored.csv", HEADER)
    cfg = s3_config(cfg_factory, s3_server, name, read_mode=read_mode)
    first = ingest.run(spark, cfg, make_context(spark, cfg, date(2026, 6, 30)))
    assert [(o.file, o.status, o.rows_accepted) for o in first] == [(f"s3://{name}/landing/crm/a.csv", "ingested", 2)]
    second = ingest.run(spark, cfg, make_context(spark, cfg, date(2026, 6, 30)))
    assert [(o.status, o.message) for o in second] == [("skipped", "already in the object manifest")]

    # new content under the same key: a new ETag, ingested as a new file; silver keeps the latest per key
    put(client, name, "landing/crm/a.csv", HEADER + "C1;Ana;Ruiz;ana.new@x.es;;;;;ES;true;2026-02-01T00:00:00Z\n")
    # content already ingested, under another key: recorded, no rows added
    put(client, name, "landing/crm/copy.csv", HEADER + "C1;Ana;Ruiz;ana@x.es;;;;;ES;true;2026-01-01T00:00:00Z\n"
                                                       "C2;Bo;Gil;bo@x.es;;;;;ES;false;2026-01-01T00:00:00Z\n")
    ctx = make_context(spark, cfg, date(2026, 6, 30))
    third = ingest.run(spark, cfg, ctx)
    assert [(o.file.rsplit("/", 1)[1], o.status) for o in third] == [("a.csv", "ingested"), ("copy.csv", "skipped")]
    store = ctx.store
    bronze = store.read("bronze.contacts").select("contact_id", "email", "_file").orderBy("email")
    uri = f"s3://{name}/landing/crm/a.csv"
    expected = spark.createDataFrame([("C1", "ana.new@x.es", uri), ("C1", "ana@x.es", uri), ("C2", "bo@x.es", uri)],
                                     "contact_id string, email string, _file string")
    assert_df_equality(bronze, expected, ignore_nullable=True)
    manifest = sorted((r.key, r.status) for r in store.read("meta.object_manifest").collect())
    assert manifest == [("landing/crm/a.csv", "ingested"), ("landing/crm/a.csv", "ingested"),
                        ("landing/crm/copy.csv", "duplicate_content")]
    normalise.run(spark, cfg, make_context(spark, cfg, date(2026, 6, 30)))
    silver = sorted((r.contact_id, r.email_norm) for r in store.read("silver.contacts").collect())
    assert silver == [("C1", "ana.new@x.es"), ("C2", "bo@x.es")]
    assert [f for _, _, files in os.walk(cfg.staging_dir) for f in files] == []  # staged copies removed


def test_throttling_is_retried_within_bounds(spark, fault_proxy, bucket, cfg_factory):
    client, name = bucket
    put(client, name, "landing/crm/a.csv", HEADER + "C1;Ana;Ruiz;ana@x.es;;;;;ES;true;2026-01-01T00:00:00Z\n")
    cfg = s3_config(cfg_factory, fault_proxy.url, name, max_attempts=4)
    fault_proxy.fail_next = 3  # three 503s, the fourth attempt succeeds
    outcomes = ingest.run(spark, cfg, make_context(spark, cfg, date(2026, 6, 30)))
    assert [(o.status, o.rows_accepted) for o in outcomes] == [("ingested", 1)]
    assert fault_proxy.failed == 3


def test_throttling_beyond_the_bound_fails_clearly_and_writes_nothing(spark, fault_proxy, bucket, cfg_factory):
    client, name = bucket
    put(client, name, "landing/crm/a.csv", HEADER + "C1;Ana;Ruiz;ana@x.es;;;;;ES;true;2026-01-01T00:00:00Z\n")
    cfg = s3_config(cfg_factory, fault_proxy.url, name, max_attempts=3)
    fault_proxy.fail_next = 1000
    ctx = make_context(spark, cfg, date(2026, 6, 30))
    with pytest.raises(ObjectStoreError) as err:
        ingest.run(spark, cfg, ctx)
    assert f"S3 listing s3://{name}/landing/crm/ at {fault_proxy.url} failed after 3 attempt(s): HTTP 503 SlowDown" in (
        str(err.value))
    assert fault_proxy.requests == 3
    assert not ctx.store.exists("bronze.contacts") and not ctx.store.exists("meta.ingestion_log")


def test_relative_source_paths_resolve_under_an_s3_landing_dir(spark, s3_server, bucket, cfg_factory):
    client, name = bucket
    put(client, name, "cdp/landing/crm/a.csv", HEADER + "C1;Ana;Ruiz;ana@x.es;;;;;ES;true;2026-01-01T00:00:00Z\n")
    cfg = cfg_factory(f"paths.landing_dir=s3://{name}/cdp/landing", f"object_store.endpoint_url={s3_server}")
    cfg = cfg.model_copy(update={"sources": {"crm_contacts": cfg.sources["crm_contacts"]}})  # path: crm/*.csv
    [outcome] = ingest.run(spark, cfg, make_context(spark, cfg, date(2026, 6, 30)))
    assert (outcome.file, outcome.rows_accepted) == (f"s3://{name}/cdp/landing/crm/a.csv", 1)


def test_endpoint_down_is_a_clear_error(spark, cfg_factory):
    endpoint = f"http://127.0.0.1:{free_port()}"
    cfg = s3_config(cfg_factory, endpoint, "any-bucket", max_attempts=2)
    with pytest.raises(ObjectStoreError, match=rf"cannot reach the S3 endpoint {endpoint} .* after 2 attempts"):
        ingest.run(spark, cfg, make_context(spark, cfg, date(2026, 6, 30)))


def test_read_mode_choice_for_both_states_of_the_s3a_filesystem():
    assert [spark_reads_objects(mode, True) for mode in ("auto", "direct", "stage")] == [True, True, False]
    assert [spark_reads_objects(mode, False) for mode in ("auto", "stage")] == [False, False]
    with pytest.raises(ObjectStoreError, match="read_mode is 'direct' but this Spark session has no S3A"):
        spark_reads_objects("direct", False)


def test_ranged_header_read_feeds_the_header_check(s3_server, bucket):
    from cdp_spark.io.files import read_csv_header
    from cdp_spark.io.object_store import ObjectStore

    client, name = bucket
    put(client, name, "landing/crm/a.csv", HEADER + "C1;Ana;Ruiz;ana@x.es;;;;;ES;true;2026-01-01T00:00:00Z\n" * 500)
    store = ObjectStore(s3_server)
    [ref] = store.list(f"s3://{name}/landing/crm/*.csv")
    head = store.read_head(ref, 256)
    assert len(head) == 256 and head.startswith(b"\xef\xbb\xbfcontact_id;")
    header = read_csv_header(ref.uri, None, head)
    assert (header.separator, header.columns[:2], header.has_bom) == (";", ["contact_id", "first_name"], True)


@pytest.fixture()
def bucket_lake(spark, s3_server, bucket, cfg_factory):
    """The bucket's client and name, and a config whose delta-spark lake is ``s3a://<bucket>/cdp/lake``."""
    if not (s3a_available(spark) and delta_spark_available(spark)):
        pytest.skip("needs the delta-spark and hadoop-aws jars: run make jars")
    client, name = bucket
    cfg = cfg_factory("storage.engine=spark", f"object_store.endpoint_url={s3_server}",
                      data_dir=f"s3a://{name}/cdp")
    return client, name, cfg

def test_spark_engine_keeps_the_lake_in_the_bucket(spark, s3_server, bucket_lake):
    """A lake on ``s3a://`` through delta-spark: commits, merges, transaction versions and reads go to the
    endpoint; delta-rs reads the same table from the bucket."""
    client, name, cfg = bucket_lake
    store = make_context(spark, cfg, date(2026, 6, 30)).store
    assert store.path("silver.people") == f"s3a://{name}/cdp/lake/silver/people"
    schema = "id string, name string"
    store.write("silver.people", spark.createDataFrame([("C1", "ana"), ("C2", "bo")], schema), txn=Txn("load", 1))
    store.merge("silver.people", spark.createDataFrame([("C2", "bob"), ("C3", "cy")], schema), keys=["id"],
                txn=Txn("load", 2))
    assert store.merge("silver.people", spark.createDataFrame([("C9", "x")], schema), keys=["id"],
                       txn=Txn("load", 2)).skipped
    assert store.txn_version("silver.people", "load") == 2
    expected = spark.createDataFrame([("C1", "ana"), ("C2", "bob"), ("C3", "cy")], schema)
    assert_df_equality(store.read("silver.people").orderBy("id"), expected, ignore_nullable=True)
    listed = client.list_objects_v2(Bucket=name, Prefix="cdp/lake/silver/people/_delta_log/")["Contents"]
    commits = sorted(o["Key"].rsplit("/", 1)[1] for o in listed if o["Key"].endswith(".json"))
    assert commits == ["00000000000000000000.json", "00000000000000000001.json"]
    via_delta_rs = DeltaTable(f"s3://{name}/cdp/lake/silver/people", storage_options={
        "AWS_ENDPOINT_URL": s3_server, "AWS_ALLOW_HTTP": "true", "AWS_REGION": "us-east-1"})
    assert sorted(via_delta_rs.to_pyarrow_table().to_pylist(), key=lambda r: r["id"]) == [
        {"id": "C1", "name": "ana"}, {"id": "C2", "name": "bob"}, {"id": "C3", "name": "cy"}]


def test_erase_with_the_spark_engine_on_a_lake_in_the_bucket(spark, bucket_lake):
    """``cdp erase`` on a delta-spark lake in the bucket: the person's rows leave every table, zero-retention
    vacuum deletes the objects of earlier versions, no object left holds their e-mail or ids, and the
    suppression list and receipt are written."""
    client, name, cfg = bucket_lake
    store = make_context(spark, cfg, date(2026, 6, 30)).store
    contacts = "contact_id string, _system string, email string, email_norm string, phone string, phone_e164 string"
    store.write("silver.contacts", spark.createDataFrame([
        ("C1", "crm", "Ana@X.es", "ana@x.es", None, None), ("C2", "crm", "bo@x.es", "bo@x.es", None, None)],
        contacts))
    registry = "record_id string, person_id string, system string, source_key string"
    store.write("gold.person_registry", spark.createDataFrame([
        ("crm:C1", "P-ana", "crm", "C1"), ("crm:C2", "P-bo", "crm", "C2")], registry))
    store.write("gold.person_scores", spark.createDataFrame([("P-ana", 3), ("P-bo", 5)],
                                                            "person_id string, orders_total_count int"))

    receipt = erase.run(spark, cfg, person_id="P-ana", ctx=make_context(spark, cfg, date(2026, 6, 30)))

    assert {t: v["rows_removed"] for t, v in receipt["tables"].items()} == {
        "gold.person_registry": 1, "gold.person_scores": 1, "silver.contacts": 1}
    assert sorted(store.tables()) == ["gold.person_registry", "gold.person_scores", "meta.erasure_receipts",
                                      "meta.run_manifest", "meta.suppression", "silver.contacts"]
    assert [r.contact_id for r in store.read("silver.contacts").collect()] == ["C2"]
    assert [(r.person_id, r.orders_total_count) for r in store.read("gold.person_scores").collect()] == [("P-bo", 5)]
    assert sorted(r.kind for r in store.read("meta.suppression").collect()) == ["email", "record"]
    leftovers = []
    for listed in client.get_paginator("list_objects_v2").paginate(Bucket=name, Prefix="cdp/lake/"):
        for item in listed.get("Contents", []):
            body = client.get_object(Bucket=name, Key=item["Key"])["Body"].read()
            text = (str(pq.read_table(pa.BufferReader(body)).to_pylist()) if item["Key"].endswith(".parquet")
                    else body.decode("utf-8", "replace"))
            leftovers += [f"{item['Key']}: {n}" for n in ("ana@x.es", "P-ana", "crm:C1") if n in text.lower()
                          or n in text]
    assert leftovers == []
