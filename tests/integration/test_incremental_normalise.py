"""Incremental normalise: after the first build only the keys that arrived in bronze since are rebuilt
(from all their bronze rows, so the latest row per key still wins), other silver rows are left as they
are, and ``full_refresh`` rebuilds everything."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest
from chispa import assert_df_equality

from cdp_spark.pipelines import ingest, normalise
from cdp_spark.pipelines.common import make_context

pytestmark = pytest.mark.integration

HEADER = "contact_id;first_name;last_name;email;phone;birth_date;postcode;city;country;opt_in;updated_at"
FIRST = [
    "C1;Pepe;Smith;pepe@example.org;;1980-01-01;28001;Madrid;ES;true;2026-01-02 10:00:00",
    "C2;Ana;Lopez;ana@example.org;;1985-02-02;28002;Madrid;ES;true;2026-01-02 10:00:00",
    "C3;Paco;Ruiz;paco@example.org;;1990-03-03;28003;Madrid;ES;false;2026-01-02 10:00:00",
]
SECOND = [
    "C2;Ana;Garcia;ana@example.org;;1985-02-02;28002;Madrid;ES;true;2026-03-01 09:00:00",  # newer: wins
    "C3;Paco;Oldname;paco@example.org;;1990-03-03;28003;Madrid;ES;false;2025-12-01 08:00:00",  # older: loses
    "C4;Pepe;Nuevo;pepe.nuevo@example.org;;1999-04-04;28004;Madrid;ES;true;2026-03-02 11:00:00",  # new key
]


def write_csv(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([HEADER, *lines]) + "\n", encoding="utf-8")


def run(spark, cfg, full_refresh: bool = False):
    ctx = make_context(spark, cfg, date(2026, 6, 30), full_refresh=full_refresh)
    ingest.run(spark, cfg, ctx.for_stage())
    stage = ctx.for_stage()
    normalise.run(spark, cfg, stage)
    return stage, stage.counts["normalise_modes"]["silver.contacts"]


def silver_rows(spark, ctx, expected: list[tuple]):
    actual = (ctx.store.read("silver.contacts")
              .select("contact_id", "last_name", "given_name_canonical", "updated_at").orderBy("contact_id"))
    wanted = spark.createDataFrame(expected, "contact_id string, last_name string, given_name_canonical string, "
                                             "updated_at timestamp")
    assert_df_equality(actual, wanted, ignore_nullable=True)


def test_only_arrived_keys_are_rebuilt_latest_row_wins_and_full_refresh_rebuilds_all(spark, tmp_path, cfg_factory):
    data = tmp_path / "data"
    write_csv(data / "landing" / "crm" / "crm_contacts.csv", FIRST)
    base = cfg_factory(data_dir=data)
    cfg = base.model_copy(update={"sources": {"crm_contacts": base.sources["crm_contacts"]}})
    ctx, mode = run(spark, cfg)
    assert mode == "full"

    write_csv(data / "landing" / "crm" / "crm_contacts_2.csv", SECOND)
    # a changed nickname table: only records normalised from now on see it, until a full refresh
    renamed = cfg.model_copy(update={"identity": cfg.identity.model_copy(
        update={"nicknames": {**cfg.identity.nicknames, "pepe": "giuseppe"}})})
    ctx, mode = run(spark, renamed)
    assert mode == "incremental"
    silver_rows(spark, ctx, [
        ("C1", "Smith", "jose", datetime(2026, 1, 2, 10)),  # not in the new file: left as it was
        ("C2", "Garcia", "ana", datetime(2026, 3, 1, 9)),
        ("C3", "Ruiz", "francisco", datetime(2026, 1, 2, 10)),  # the re-delivered older row did not win
        ("C4", "Nuevo", "giuseppe", datetime(2026, 3, 2, 11)),
    ])

    ctx, mode = run(spark, renamed)
    assert mode == "unchanged"

    ctx, mode = run(spark, renamed, full_refresh=True)
    assert mode == "full"
    silver_rows(spark, ctx, [
        ("C1", "Smith", "giuseppe", datetime(2026, 1, 2, 10)),
        ("C2", "Garcia", "ana", datetime(2026, 3, 1, 9)),
        ("C3", "Ruiz", "francisco", datetime(2026, 1, 2, 10)),
        ("C4", "Nuevo", "giuseppe", datetime(2026, 3, 2, 11)),
    ])
