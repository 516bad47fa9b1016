"""cdp erase on a resolved demo lake: the person leaves every table, the warehouse and the Delta history;
the receipt counts what was removed; re-ingesting their old rows does not bring them back."""

from __future__ import annotations

import csv
import shutil
from collections import Counter
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from cdp_spark.demo.generator import generate
from cdp_spark.pipelines import erase, ingest, normalise, pipeline, resolve
from cdp_spark.pipelines.common import make_context

pytestmark = pytest.mark.integration
AS_OF = date(2026, 6, 30)


def traces(root: Path, needles: list[str]) -> list[str]:
    """Files under ``root`` holding any needle: parquet files decoded (compression would hide text), other
    files (Delta commits, checkpoints pointers) as bytes."""
    found = []
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        text = str(pq.read_table(path).to_pylist()) if path.suffix == ".parquet" else path.read_bytes().decode(
            "utf-8", "replace")
        found += [f"{path.relative_to(root)}: {n}" for n in needles if n.lower() in text.lower()]
    return found


def test_erase_by_email_everywhere_with_receipt_and_suppression(spark, postgres, monkeypatch, cfg_factory, tmp_path):
    monkeypatch.setenv("CDP_WAREHOUSE_USER", postgres.user)
    monkeypatch.setenv("CDP_WAREHOUSE_PASSWORD", postgres.password)
    landing = tmp_path / "data" / "landing"
    generate(landing, customers=40, seed=3)
    cfg = cfg_factory("identity.matching=null", "warehouse.enabled=true", f"warehouse.url={postgres.jdbc_url}",
                      "warehouse.schema_name=t_erase", data_dir=tmp_path / "data")
    ctx = make_context(spark, cfg, AS_OF)
    pipeline.run(spark, cfg, ctx, ["ingest", "normalise", "resolve", "score", "validate", "sync"])
    store = ctx.store

    # the person with the most source records that has a CRM record with an e-mail
    registry = store.read("gold.person_registry").collect()
    sizes = Counter(r.person_id for r in registry)
    crm = {r.contact_id: r for r in store.read("silver.contacts").collect()}
    person = max((r.person_id for r in registry if r.system == "crm" and crm[r.source_key].email_norm),
                 key=lambda p: (sizes[p], p))
    records = sorted(r.record_id for r in registry if r.person_id == person)
    crm_keys = [r.split(":", 1)[1] for r in records if r.startswith("crm:")]
    email = crm[crm_keys[0]].email_norm
    before = {t: store.read(t).count() for t in ("gold.person_registry", "gold.person_profile", "gold.person_scores")}
    assert postgres.psql(f"SELECT count(*) FROM t_erase.person_profile WHERE person_id = '{person}'") == "1"

    receipt = erase.run(spark, cfg, email=f"  {email.upper()} ", ctx=make_context(spark, cfg, AS_OF))

    assert receipt["persons"] == 1 and receipt["source_records"] == len(records)
    assert receipt["tables"]["gold.person_registry"]["rows_removed"] == len(records)
    assert receipt["tables"]["gold.person_profile"]["rows_removed"] == 1
    assert receipt["tables"]["gold.person_scores"]["rows_removed"] == 1
    assert receipt["tables"]["silver.contacts"]["rows_removed"] == len(crm_keys)
    assert {t: store.read(t).count() for t in before} == {
        "gold.person_registry": before["gold.person_registry"] - len(records),
        "gold.person_profile": before["gold.person_profile"] - 1,
        "gold.person_scores": before["gold.person_scores"] - 1}
    receipts = store.read("meta.erasure_receipts").collect()
    assert {(r.table_name, r.rows_removed) for r in receipts} == {
        (t, v["rows_removed"]) for t, v in receipt["tables"].items()}
    # no file of any table (data, checkpoints, commits) holds the e-mail, the person id or a record id
    lake = Path(cfg.lake_root)
    assert traces(lake, [email, person, *records]) == []
    for table in ("t_erase.person_profile", "t_erase.person_scores"):
        assert postgres.psql(f"SELECT count(*) FROM {table} WHERE person_id = '{person}'") == "0"
    assert postgres.psql("SELECT count(*) FROM t_erase.person_registry WHERE record_id IN "
                         f"({', '.join(repr(r) for r in records)})") == "0"

    # the old CRM export comes back with one new contact: the erased rows are suppressed, the new one lands
    source = next((landing / "crm").glob("*.csv"))
    again = landing / "crm" / "crm_contacts_again.csv"
    shutil.copy(source, again)
    with again.open("a", encoding="utf-8", newline="") as handle:
        header = source.read_text(encoding="utf-8-sig").splitlines()[0].split(";")
        csv.DictWriter(handle, header, delimiter=";", lineterminator="\n", restval="").writerow(
            {"contact_id": "C99999999", "first_name": "Nueva", "last_name": "Persona",
             "email": "nueva.persona@example.org", "postcode": "28001", "city": "Madrid", "country": "ES",
             "opt_in": "true", "updated_at": "2026-06-01T10:00:00Z"})
    rerun = make_context(spark, cfg, AS_OF)
    for stage in (ingest, normalise, resolve):
        stage.run(spark, cfg, rerun.for_stage())
    logged = [r for r in store.read("meta.ingestion_log").collect() if r.file.endswith("crm_contacts_again.csv")]
    assert [(r.rows_read, r.rows_accepted, r.rows_quarantined, r.rows_suppressed) for r in logged] == [
        (len(crm) + 1, len(crm) + 1 - len(crm_keys), 0, len(crm_keys))]
    now_registered = {r.record_id: r.person_id for r in store.read("gold.person_registry").collect()}
    assert not set(records) & set(now_registered) and "crm:C99999999" in now_registered
    assert traces(lake / "bronze", [email]) == [] and traces(lake / "silver", [email]) == []
