from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

from cdp_spark.demo.generator import generate


def digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_seeded_and_scalable(tmp_path):
    small_a = generate(tmp_path / "a" / "landing", customers=60, seed=3)
    small_b = generate(tmp_path / "b" / "landing", customers=60, seed=3)
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    larger = generate(tmp_path / "c" / "landing", customers=600, seed=3)
    assert larger["persons"] == 600 and larger["orders"] > 5 * small_a["orders"] > 0
    assert small_a == small_b


def test_formats_and_ground_truth_cover_every_person_record(tmp_path):
    landing = tmp_path / "landing"
    counts = generate(landing, customers=200, seed=11)
    crm_bytes = (landing / "crm" / "crm_contacts.csv").read_bytes()
    assert crm_bytes.startswith(b"\xef\xbb\xbfcontact_id;first_name;")
    assert (landing / "loyalty" / "loyalty_members.csv").read_text().startswith("loyalty_id|first_name|")
    with (tmp_path / "ground_truth" / "person_records.csv").open() as f:
        truth = list(csv.DictReader(f))
    assert len(truth) == counts["crm_contacts"] + counts["ecommerce_customers"] + counts["loyalty_members"]
    assert len({r["true_person"] for r in truth}) == 200
    keys = {(r["source"], r["source_key"]) for r in truth}
    with (landing / "ecommerce" / "customers.jsonl").open() as f:
        assert all(("ecommerce", json.loads(line)["customer_id"]) in keys for line in f)
    with (landing / "orders" / "orders.csv").open() as f:
        orders = list(csv.DictReader(f))
    assert all((o["customer_source"], o["customer_key"]) in keys for o in orders)
    assert {o["status"] for o in orders} == {"completed", "refund"}
    assert any(float(o["discount_amount"]) > 0 for o in orders)


def test_same_person_varies_across_sources(tmp_path):
    landing = tmp_path / "landing"
    generate(landing, customers=300, seed=5)
    with (tmp_path / "ground_truth" / "person_records.csv").open() as f:
        person_of = {(r["source"], r["source_key"]): r["true_person"] for r in csv.DictReader(f)}
    with (landing / "crm" / "crm_contacts.csv").open(encoding="utf-8-sig") as f:
        crm = list(csv.DictReader(f, delimiter=";"))
    emails = [r["email"] for r in crm if r["email"]]
    assert any(e != e.lower() for e in emails) and any(e != e.strip() for e in emails)
    assert any(r["email"] == "" for r in crm) and any(r["phone"].startswith("+34 ") for r in crm)
    names_by_person: dict[str, set[str]] = {}
    for r in crm:
        names_by_person.setdefault(person_of[("crm", r["contact_id"])], set()).add(r["first_name"])
    assert any(len(names) > 1 for names in names_by_person.values())  # a person's CRM duplicates differ
