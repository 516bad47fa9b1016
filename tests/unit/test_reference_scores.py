"""The score library against an independent DuckDB SQL implementation, on generated data: every score of
every person, and the RFM cut points, must agree exactly."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
from chispa import assert_df_equality

from cdp_spark.config import load_config
from cdp_spark.demo.score_data import generate_score_inputs
from cdp_spark.scores.library import score_library
from cdp_spark.scores.orders import category_orders, order_facts, order_items
from cdp_spark.scores.rfm import cut_points, rfm
from tests.reference_duckdb import reference_scores

ROOT = Path(__file__).resolve().parents[2]
AS_OF = date(2026, 6, 30)
TABLES = ("orders", "registry", "stores", "order_items", "products")


def test_spark_scores_equal_the_duckdb_reference(spark, tmp_path):
    counts = generate_score_inputs(tmp_path, persons=3000, orders=15000, seed=11, as_of=AS_OF)
    assert counts["orders"] == 15000
    settings = load_config(ROOT / "conf", "local").scores
    assert settings.rfm is not None
    read = {name: spark.read.parquet(str(tmp_path / name)) for name in TABLES}
    facts = order_facts(read["orders"], read["registry"], read["stores"], settings.business_timezone, AS_OF)
    items = order_items(read["order_items"], read["products"])
    persons = read["registry"].select("person_id").distinct()
    library = score_library(persons, facts, category_orders(facts, items), AS_OF, settings.lifecycle).persist()
    spark_cuts = cut_points(library, settings.rfm.groups)
    got = rfm(library, spark_cuts, settings.rfm.groups, settings.rfm.segments).orderBy("person_id")

    with duckdb.connect() as con:
        rows, duckdb_cuts = reference_scores(con, {name: f"{tmp_path / name}/*.parquet" for name in TABLES},
                                             AS_OF, settings.business_timezone, settings.lifecycle, settings.rfm)
    assert duckdb_cuts == spark_cuts
    expected = spark.createDataFrame(rows, got.schema)
    assert_df_equality(got, expected)
    # the data exercises what the definitions must handle
    labels = {r["purchase_timing_deviation"] for r in got.select("purchase_timing_deviation").distinct().collect()}
    assert labels == {"no_order", "one_order", "recent", "approaching", "late", "significantly_late"}
    states = {r["hibernation_state"] for r in got.select("hibernation_state").distinct().collect()}
    assert states == {"no_order", "active", "inactive", "hibernating", "lost"}
    library.unpersist()
