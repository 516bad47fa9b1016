"""Keyed hashing of identifiers: RFC 4231's HMAC-SHA256 test vector, nulls, and no key in the plan."""

from __future__ import annotations

import pytest
from chispa import assert_df_equality

from cdp_spark.config import ConfigError, PrivacySettings
from cdp_spark.privacy.hashing import add_hashes

# RFC 4231, test case 2: key "Jefe", data "what do ya want for nothing?"
RFC4231_CASE_2 = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"


def test_hmac_sha256_matches_rfc_4231_and_keeps_nulls(spark):
    df = spark.createDataFrame([("P1", "what do ya want for nothing?", None), ("P2", None, None)],
                               "person_id string, email_norm string, phone_e164 string")
    got = add_hashes(df, {"email_norm": "email_hash", "phone_e164": "phone_hash", "absent": "absent_hash"}, b"Jefe")
    expected = spark.createDataFrame(
        [("P1", "what do ya want for nothing?", None, RFC4231_CASE_2, None), ("P2", None, None, None, None)],
        "person_id string, email_norm string, phone_e164 string, email_hash string, phone_hash string")
    assert_df_equality(got.orderBy("person_id"), expected, ignore_nullable=True)
    plan = got._jdf.queryExecution().toString()  # the key never appears in a plan
    assert "hmac_sha256" in plan and "Jefe" not in plan


def test_key_only_from_the_environment(monkeypatch):
    monkeypatch.delenv("CDP_TEST_NO_KEY", raising=False)
    with pytest.raises(ConfigError, match=r"privacy\.hash_key_env names CDP_TEST_NO_KEY, which is not set"):
        PrivacySettings(hash_key_env="CDP_TEST_NO_KEY").key()
    monkeypatch.setenv("CDP_TEST_NO_KEY", "k1")
    assert PrivacySettings(hash_key_env="CDP_TEST_NO_KEY").key() == b"k1"


def test_delta_log_has_no_statistics_for_private_columns(spark, tmp_path):
    from datetime import date

    from cdp_spark.io.tables import open_store

    store = open_store(spark, str(tmp_path / "lake"), "rs", private_columns=["birth_date"])
    df = spark.createDataFrame([("P1", date(1980, 5, 17), date(2026, 1, 2), "ana@x.es")],
                               "person_id string, birth_date date, order_date date, email string")
    store.write("silver.people", df)
    log_text = "".join(p.read_text() for p in (tmp_path / "lake" / "silver" / "people" / "_delta_log").glob("*.json"))
    assert "2026-01-02" in log_text  # other dates keep their statistics (data skipping)
    assert "1980-05-17" not in log_text and "ana@x.es" not in log_text
