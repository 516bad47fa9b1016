"""Two writers on one Delta table at once: blind appends both land; a table another writer created meanwhile
is written to; a merge that loses a commit race is computed again from the winner's version, and one that
keeps losing fails clearly after its attempts, leaving no partial commit and no stray files."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from chispa import assert_df_equality
from deltalake import DeltaTable

from cdp_spark.io.tables import TableError, open_store

SCHEMA = "id string, n int"


def test_concurrent_appends_both_land_exactly_once(spark, lake):
    store = open_store(spark, str(lake), "rs")
    store.write("silver.t", spark.createDataFrame([("a", 0)], SCHEMA))
    errors: list[BaseException] = []

    def append(rows: list[tuple[str, int]]) -> None:
        try:
            store.write("silver.t", spark.createDataFrame(rows, SCHEMA))
        except BaseException as exc:
            errors.append(exc)

    writers = [threading.Thread(target=append, args=([(f"{w}{i}", i) for i in range(3)],)) for w in "xy"]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    assert errors == []
    expected = spark.createDataFrame([("a", 0), *[(f"{w}{i}", i) for w in "xy" for i in range(3)]], SCHEMA)
    assert_df_equality(store.read("silver.t").orderBy("id"), expected.orderBy("id"), ignore_nullable=True)
    assert store.version("silver.t") == 2


def _every_file_ever_added(table_dir: Path) -> set[str]:
    versions = range(DeltaTable(str(table_dir)).version() + 1)
    return {Path(uri).name for v in versions for uri in DeltaTable(str(table_dir), version=v).file_uris()}


def test_a_merge_that_loses_a_commit_race_is_computed_again_from_the_winners_version(spark, lake, monkeypatch):
    store = open_store(spark, str(lake), "rs")
    store.write("silver.t", spark.createDataFrame([("a", 1), ("b", 2)], SCHEMA))
    stage = store._stage_files  # type: ignore[attr-defined]
    raced = []

    def stage_then_let_another_writer_win(df, table, *keys):  # type: ignore[no-untyped-def]
        if not raced:  # the other writer commits between our snapshot and our commit, once
            raced.append(True)
            store.merge("silver.t", spark.createDataFrame([("a", 10), ("d", 4)], SCHEMA), ["id"])
        return stage(df, table, *keys)

    monkeypatch.setattr(store, "_stage_files", stage_then_let_another_writer_win)
    result = store.merge("silver.t", spark.createDataFrame([("a", 100), ("c", 3)], SCHEMA), ["id"])
    monkeypatch.undo()
    assert result.version == 2  # the winner's merge is version 1, ours lands on top of it
    expected = spark.createDataFrame([("a", 100), ("b", 2), ("c", 3), ("d", 4)], SCHEMA)
    assert_df_equality(store.read("silver.t").orderBy("id"), expected, ignore_nullable=True)
    table_dir = Path(store.path("silver.t"))
    assert {p.name for p in table_dir.glob("*.parquet")} == _every_file_ever_added(table_dir)  # none of the loser's


def test_a_merge_that_keeps_losing_fails_clearly_after_its_attempts_and_leaves_the_winners(spark, lake, monkeypatch):
    store = open_store(spark, str(lake), "rs")
    store.write("silver.t", spark.createDataFrame([("a", 1), ("b", 2)], SCHEMA))
    stage = store._stage_files  # type: ignore[attr-defined]
    winners: list[int] = []

    def stage_then_let_another_writer_win(df, table, *keys):  # type: ignore[no-untyped-def]
        if len(winners) < 3 and df.where("n >= 100").count():  # our attempts only, not the winners' merges
            winners.append(10 * (len(winners) + 1))
            store.merge("silver.t", spark.createDataFrame([("a", winners[-1])], SCHEMA), ["id"])
        return stage(df, table, *keys)

    monkeypatch.setattr(store, "_stage_files", stage_then_let_another_writer_win)
    with pytest.raises(TableError, match=r"silver.t: another writer changed the same data first .*\(after 3 "
                                         r"attempts\); nothing of this write was committed: run the job again"):
        store.merge("silver.t", spark.createDataFrame([("a", 100), ("c", 3)], SCHEMA), ["id"])
    monkeypatch.undo()
    assert winners == [10, 20, 30]
    expected = spark.createDataFrame([("a", 30), ("b", 2)], SCHEMA)
    assert_df_equality(store.read("silver.t").orderBy("id"), expected, ignore_nullable=True)
    table_dir = Path(store.path("silver.t"))
    assert {p.name for p in table_dir.glob("*.parquet")} == _every_file_ever_added(table_dir)


def test_delta_spark_conflicts_become_commit_conflicts():
    from delta.exceptions import ConcurrentAppendException

    from cdp_spark.io.tables.protocol import CommitConflict
    from cdp_spark.io.tables.spark import _as_conflict

    def losing_write():  # type: ignore[no-untyped-def]
        raise ConcurrentAppendException(message="Files were added to the root of the table by a concurrent update.")

    with pytest.raises(CommitConflict, match=r"silver.t: another writer changed the same data first \(Files were"):
        _as_conflict("silver.t", losing_write)


def test_a_table_created_by_another_writer_meanwhile_is_written_to_not_failed(spark, lake, monkeypatch):
    store = open_store(spark, str(lake), "rs")
    store.write("silver.t", spark.createDataFrame([("a", 1)], SCHEMA))  # the other writer's create
    exists = store.exists
    looked = []

    def absent_at_first_look(table):  # type: ignore[no-untyped-def]
        looked.append(table)
        return False if len(looked) == 1 else exists(table)

    monkeypatch.setattr(store, "exists", absent_at_first_look)  # our writer saw no table, then lost the race
    result = store.write("silver.t", spark.createDataFrame([("b", 2)], SCHEMA))
    monkeypatch.undo()
    assert result.version == 1 and result.rows_written == 1
    expected = spark.createDataFrame([("a", 1), ("b", 2)], SCHEMA)
    assert_df_equality(store.read("silver.t").orderBy("id"), expected, ignore_nullable=True)
    table_dir = Path(store.path("silver.t"))
    referenced = {Path(uri).name for uri in DeltaTable(str(table_dir)).file_uris()}
    assert {p.name for p in table_dir.glob("*.parquet")} == referenced  # the create attempt's files are gone
