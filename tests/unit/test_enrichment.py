from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pytest
from chispa import assert_df_equality

from cdp_spark.config import ComputedField, CustomAggregate
from cdp_spark.scores.enrichment import EnrichmentError, computed_fields, custom_aggregate


@pytest.fixture()
def subscriptions(spark):
    return spark.createDataFrame([
        ("s1", "crm", "C1", "Marketing CRM", Decimal("10.00"), datetime(2026, 1, 1)),
        ("s2", "crm", "C1", "Marketing CRM", Decimal("15.00"), datetime(2026, 3, 1)),
        ("s3", "crm", "C1", "Email", Decimal("99.00"), datetime(2026, 4, 1)),
        ("s4", "shop", "E1", "Marketing CRM", Decimal("5.00"), datetime(2026, 2, 1)),   # same person as C1
        ("s5", "crm", "C2", "Email", Decimal("7.00"), datetime(2026, 5, 1)),
        ("s6", "crm", "C9", "Marketing CRM", Decimal("50.00"), datetime(2026, 5, 1)),  # no such record
    ], "id string, src string, key string, product string, amount decimal(10,2), at timestamp")


@pytest.fixture()
def registry(spark):
    return spark.createDataFrame([("crm", "C1", "P1"), ("shop", "E1", "P1"), ("crm", "C2", "P2")],
                                 "system string, source_key string, person_id string")


def test_custom_aggregates_with_filters(spark, subscriptions, registry):
    def run(**spec):
        base = {"table": "silver.subscriptions", "key_column": "key", "system_column": "src"}
        return {r.person_id: r[spec["name"]] for r in
                custom_aggregate(subscriptions, registry, CustomAggregate(**{**base, **spec})).collect()}

    assert run(name="crm_spend", function="sum", column="amount", filter="product = 'Marketing CRM'") == {
        "P1": Decimal("30.00")}
    assert run(name="n", function="count") == {"P1": 4, "P2": 1}
    assert run(name="last_product", function="last", column="product", order_by="at") == {"P1": "Email",
                                                                                           "P2": "Email"}
    assert run(name="first_amount", function="min", column="amount") == {"P1": Decimal("5.00"),
                                                                        "P2": Decimal("7.00")}
    with pytest.raises(ValueError, match="set exactly one of system_column and system"):
        CustomAggregate(name="x", table="t", function="count", key_column="k")


def test_computed_fields_use_only_the_current_table(spark):
    profile = spark.createDataFrame([("P1", date(1990, 7, 1)), ("P2", date(1990, 6, 30)), ("P3", None)],
                                    "person_id string, birth_date date")
    age = ComputedField(name="age", sql="CAST(floor(months_between({as_of}, birth_date) / 12) AS INT)")
    got = computed_fields(profile, [age], "gold.person_profile", date(2026, 6, 30))
    expected = spark.createDataFrame([("P1", date(1990, 7, 1), 35), ("P2", date(1990, 6, 30), 36),
                                      ("P3", None, None)], "person_id string, birth_date date, age int")
    assert_df_equality(got, expected, ignore_nullable=True)
    with pytest.raises(EnrichmentError, match=r"computed field 'x' on gold\.person_profile may use only that "
                                              r"table's columns; it refers to another table or query"):
        computed_fields(profile, [ComputedField(name="x", sql="(SELECT max(amount) FROM silver.orders)")],
                        "gold.person_profile", date(2026, 6, 30))
    with pytest.raises(EnrichmentError, match=r"computed field 'y' on gold.person_profile may use only that "
                                              r"table's columns \(person_id, birth_date\)"):
        computed_fields(profile, [ComputedField(name="y", sql="orders.amount * 2")], "gold.person_profile",
                        date(2026, 6, 30))
