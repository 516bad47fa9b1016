"""``cdp run --plan``: what a run would do and why, with nothing run or written; ``--source`` and ``--table``
select part of a stage."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from cdp_spark.cli import main
from tests.conftest import REPO_ROOT


def cdp(data: Path, *args: str):
    return CliRunner().invoke(main, ["--conf", str(REPO_ROOT / "conf"), "--data-dir", str(data), "--as-of",
                                     "2026-06-30", *args])


def planned(data: Path, *args: str) -> list[dict]:
    result = cdp(data, "run", "--stages", "ingest,normalise", "--plan", "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_the_plan_names_new_files_modes_and_skips_and_writes_nothing(spark, tmp_path):
    data = tmp_path / "data"
    first = data / "landing" / "crm" / "a.csv"
    first.parent.mkdir(parents=True)
    first.write_text("contact_id;first_name\nC1;Ana\n")

    before = planned(data)
    assert not (data / "lake").exists()  # nothing written, not even the run manifest
    assert before[0] == {"stage": "ingest", "as_of": "2026-06-30", "action": "run",
                         "reason": "1 of 1 inputs hold something new",
                         "details": [f"crm_contacts: {first}: new file"]}
    assert before[1]["stage"] == "normalise" and before[1]["action"] == "run"
    assert before[1]["reason"] == "no successful run as of 2026-06-30 yet"
    assert "silver.contacts: nothing yet (bronze.contacts does not exist)" in before[1]["details"]

    assert cdp(data, "run", "--stages", "ingest,normalise").exit_code == 0
    unchanged = planned(data)
    assert unchanged[0]["reason"] == "0 of 1 inputs hold something new"
    assert unchanged[0]["details"] == [f"crm_contacts: {first}: already ingested (same content)"]
    assert unchanged[1]["action"] == "skip" and unchanged[1]["reason"].startswith("unchanged since run ")

    second = first.with_name("b.csv")
    second.write_text("contact_id;first_name\nC2;Bo\n")
    arrived = planned(data)
    assert arrived[0]["details"] == [f"crm_contacts: {first}: already ingested (same content)",
                                     f"crm_contacts: {second}: new file"]
    assert (arrived[1]["action"], arrived[1]["reason"]) == ("run", "bronze.contacts changes first (ingest)")
    assert "silver.contacts: incremental, the keys that arrived in bronze.contacts after version 0" in (
        arrived[1]["details"])
    text = cdp(data, "run", "--stages", "ingest,normalise", "--plan")
    assert text.exit_code == 0 and text.output.splitlines()[:3] == [
        "plan of a run as of 2026-06-30 (nothing was run or written):",
        f"  {'ingest':<22} run   1 of 2 inputs hold something new",
        f"  {'':<22}       - crm_contacts: {first}: already ingested (same content)"]


def test_source_and_table_select_part_of_a_stage_and_unknown_names_are_usage_errors(spark, tmp_path):
    data = tmp_path / "data"
    for folder in ("crm", "loyalty"):
        (data / "landing" / folder).mkdir(parents=True)
    (data / "landing" / "crm" / "a.csv").write_text("contact_id\nC1\n")
    (data / "landing" / "loyalty" / "l.csv").write_text("member_id\nM1\n")
    chosen = cdp(data, "ingest", "--source", "crm_contacts", "--plan", "--json")
    assert chosen.exit_code == 0, chosen.output
    assert [d.split(":")[0] for d in json.loads(chosen.output)[0]["details"]] == ["crm_contacts"]
    unknown = cdp(data, "ingest", "--source", "crm")
    assert unknown.exit_code == 2 and "unknown source(s) ['crm']; sources are ['crm_contacts'" in unknown.output
    table = cdp(data, "validate", "--table", "gold.nope")
    assert table.exit_code == 2 and "unknown table(s) ['gold.nope']; tables validated, synced or exported are" in (
        table.output)


def test_a_validation_of_some_tables_is_never_taken_for_one_of_all(cfg_factory, spark):
    from datetime import date

    from cdp_spark.pipelines import validate
    from cdp_spark.pipelines.common import make_context

    ctx = make_context(spark, cfg_factory(), date(2026, 6, 30))
    every = validate.settings_hash(ctx)
    ctx.tables = frozenset({"gold.person_scores"})
    assert validate.settings_hash(ctx) != every
    assert validate.settings_hash(ctx.for_stage()) == validate.settings_hash(ctx)  # the run's stages keep it
