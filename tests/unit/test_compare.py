"""Comparison levels: every kind and option gives the exact level of literal pairs."""

from __future__ import annotations

from datetime import date

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from cdp_spark.config import ComparisonSettings
from cdp_spark.identity.compare import (
    attach_records,
    compare,
    exact_key,
    full_swap_fields,
    level_names,
    one_typo,
)


def levels_of(spark, records, pairs, comparisons):
    frame = spark.createDataFrame(*records)
    pair_frame = spark.createDataFrame(pairs, "record_a string, record_b string")
    return compare(attach_records(pair_frame, frame), comparisons).select(
        "record_a", "record_b", *[f"lvl_{c.field}" for c in comparisons]).orderBy("record_a", "record_b")


def test_name_levels_nickname_swap_edit_words_and_jaro_winkler(spark):
    first = ComparisonSettings(field="first", kind="name", canonical="canon", swap_with="last")
    last = ComparisonSettings(field="last", kind="name", swap_with="first")
    assert level_names(first) == ["different", "jaro_winkler>=0.7", "jaro_winkler>=0.85", "jaro_winkler>=0.92",
                                  "words_contained", "damerau_levenshtein<=1", "swapped", "nickname", "exact"]
    records = ([("a", "jose", "jose", "garcia lopez"), ("b", "jose", "jose", "garcia lopez"),
                ("c", "pepe", "jose", "garcia"),          # nickname; surname without its second word
                ("d", "garcia lopez", "garcia lopez", "jose"),   # given name and surname swapped
                ("e", "jsoe", "jsoe", "garcya lopez"),    # one transposition; one substitution
                ("f", "josefa", "josefa", "lopez"),       # JW 0.933; a word of the other surname
                ("g", None, None, "garcia lopez"),
                ("h", "garcia lopez", "garcia lopez", "ruiz"),   # one crosswise agreement: a's surname
                ("i", "maria", "maria", "jose")],                # one crosswise agreement: a's given name
               "record_id string, first string, canon string, last string")
    pairs = [("a", x) for x in "bcdefghi"]
    # a full swap is two names agreeing: both comparisons say so; one crosswise agreement counts once, at the
    # comparison listed first, and the surnames of a / h and a / i are compared as they are
    expected = spark.createDataFrame([
        ("a", "b", 8, 7), ("a", "c", 7, 4), ("a", "d", 6, 6), ("a", "e", 5, 5), ("a", "f", 3, 4),
        ("a", "g", -1, 7), ("a", "h", 6, 0), ("a", "i", 6, 0)],
        "record_a string, record_b string, lvl_first int, lvl_last int")
    assert_df_equality(levels_of(spark, records, pairs, [first, last]), expected, ignore_nullable=True)
    assert full_swap_fields([first, last]) == {"last"} and full_swap_fields([last, first]) == {"first"}
    assert level_names(last, both_ways=True) == ["different", "jaro_winkler>=0.7", "jaro_winkler>=0.85",
                                                 "jaro_winkler>=0.92", "words_contained", "damerau_levenshtein<=1",
                                                 "swapped_both_ways", "exact"]


def test_words_contained_needs_every_word_of_one_side_among_the_others(spark):
    last = ComparisonSettings(field="last", kind="name", jaro_winkler=[], damerau_levenshtein=[])
    assert level_names(last) == ["different", "words_contained", "exact"]
    records = ([("a", "garcia lopez"), ("b", "garcia"), ("c", "lopez"), ("d", "lopez garcia maria"),
                ("e", "ana maria"), ("f", "mariana lopez"), ("g", "maria ana"), ("h", "maria"), ("i", "mariana"),
                ("j", "ana maria")], "record_id string, last string")
    pairs = [("a", "b"), ("a", "c"), ("a", "d"),  # a side's words among the other's, in any order
             ("e", "f"),  # "ana" occurs in "mariana lopez" but is not one of its words
             ("e", "g"),  # the same words, as many on each side: not this level
             ("h", "i"),  # no space on either side
             ("e", "j")]
    expected = spark.createDataFrame([("a", "b", 1), ("a", "c", 1), ("a", "d", 1), ("e", "f", 0), ("e", "g", 0),
                                      ("e", "j", 2), ("h", "i", 0)],
                                     "record_a string, record_b string, lvl_last int")
    assert_df_equality(levels_of(spark, records, pairs, [last]), expected, ignore_nullable=True)


def test_jaro_winkler_bands_are_configurable(spark):
    first = ComparisonSettings(field="first", kind="name", jaro_winkler=[0.92, 0.85], damerau_levenshtein=[])
    records = ([("x", "martha"), ("y", "marhta"), ("z", "dwayne"), ("w", "duane"), ("v", "josefa"), ("u", "jose")],
               "record_id string, first string")
    # JW(martha, marhta) = 0.961; JW(dwayne, duane) = 0.84 (< 0.85: different); JW(jose, josefa) = 0.933
    expected = spark.createDataFrame([("u", "v", 2), ("w", "z", 0), ("x", "y", 2)],
                                     "record_a string, record_b string, lvl_first int")
    got = levels_of(spark, records, [("x", "y"), ("w", "z"), ("u", "v")], [first])
    assert_df_equality(got, expected, ignore_nullable=True)
    assert level_names(first) == ["different", "jaro_winkler>=0.85", "jaro_winkler>=0.92", "words_contained",
                                  "exact"]


def test_text_levels_for_addresses_and_ids(spark):
    street = ComparisonSettings(field="street", kind="text")
    ident = ComparisonSettings(field="ident", kind="text", jaro_winkler=[], damerau_levenshtein=[1, 2])
    records = ([("a", "calle mayor", "12345678"), ("b", "calle mayor", "12345678"),
                ("c", "calle mayro", "12345687"),     # JW 0.98; two digits swapped: one edit
                ("d", "c mayor", "12395688"),         # JW 0.848: the 0.8 band; two substitutions
                ("e", "avenida sol", "99999999"),
                ("f", None, "123456"),                # two dropped: lengths as far apart as the widest band
                ("g", None, "1234")],                 # four dropped: never sent to the similarity UDF
               "record_id string, street string, ident string")
    expected = spark.createDataFrame([("a", "b", 3, 3), ("a", "c", 2, 2), ("a", "d", 1, 1), ("a", "e", 0, 0),
                                      ("a", "f", -1, 1), ("a", "g", -1, 0)],
                                     "record_a string, record_b string, lvl_street int, lvl_ident int")
    assert_df_equality(levels_of(spark, records, [("a", x) for x in "bcdefg"], [street, ident]), expected,
                       ignore_nullable=True)
    assert level_names(ident) == ["different", "damerau_levenshtein<=2", "damerau_levenshtein<=1", "exact"]


def test_date_levels_on_dates_and_on_yyyymmdd_text(spark):
    born = ComparisonSettings(field="born", kind="date")
    text = ComparisonSettings(field="born_key", kind="date", tolerance=[31, 365])
    assert level_names(born) == ["different", "within_365_days", "two_of_three_parts", "day_month_swapped",
                                 "one_typo", "exact"]
    records = ([("a", date(1980, 3, 12), "19800312"), ("b", date(1980, 3, 12), "19800312"),
                ("c", date(1980, 3, 13), "19800313"),    # one digit
                ("d", date(1980, 12, 3), "19801203"),    # day and month swapped
                ("e", date(1980, 5, 12), "19800512"),    # one digit of the month
                ("f", date(1981, 1, 30), "19810130"),    # within a year (324 days), no part equal
                ("g", date(1970, 1, 1), "19371233"),     # far; the text key is an impossible date
                ("h", None, None)],
               "record_id string, born date, born_key string")
    expected = spark.createDataFrame([
        ("a", "b", 5, 6), ("a", "c", 4, 5), ("a", "d", 3, 4), ("a", "e", 4, 5), ("a", "f", 1, 1),
        ("a", "g", 0, 0), ("a", "h", -1, -1)], "record_a string, record_b string, lvl_born int, lvl_born_key int")
    assert_df_equality(levels_of(spark, records, [("a", x) for x in "bcdefgh"], [born, text]), expected,
                       ignore_nullable=True)


def test_two_of_three_date_parts(spark):
    born = ComparisonSettings(field="born", kind="date", tolerance=[])
    records = ([("a", date(1980, 3, 12)), ("b", date(1991, 3, 12)), ("c", date(1980, 3, 28))],
               "record_id string, born date")
    # 1980-03-12 / 1991-03-12: two digits of the year differ, month and day agree
    expected = spark.createDataFrame([("a", "b", 1), ("a", "c", 1)], "record_a string, record_b string, lvl_born int")
    assert_df_equality(levels_of(spark, records, [("a", "b"), ("a", "c")], [born]), expected, ignore_nullable=True)


def test_number_email_phone_postcode_and_exact_levels(spark):
    comparisons = [ComparisonSettings(field="house", kind="number", tolerance=[2]),
                   ComparisonSettings(field="email", kind="email"), ComparisonSettings(field="phone", kind="phone"),
                   ComparisonSettings(field="postcode", kind="postcode"),
                   ComparisonSettings(field="gender", kind="exact")]
    assert [level_names(c) for c in comparisons[1:3]] == [
        ["different", "same_local_part_or_one_typo", "exact"], ["different", "one_typo", "same_last_7", "exact"]]
    records = ([("a", "12", "jo@x.es", "+34611222333", "28013", "f"),
                ("b", "12", "jo@x.es", "+34611222333", "28013", "f"),
                ("c", "14", "jo@y.org", "+34601222333", "28018", "m"),   # within 2; same local part; last 7; typo
                ("d", "12a", "oj@x.es", "+33611000000", "28999", None),   # text number; neighbours swapped; same area
                ("e", "40", "ajo@x.es", None, "46001", "m"),              # one insertion
                ("f", "99", "ja@z.es", "+34611223233", "28013", "f"),     # two substitutions; neighbours swapped
                ("g", None, "jojo@x.es", "+3461122233", "28031", None)],  # two insertions; a digit dropped; swap
               "record_id string, house string, email string, phone string, postcode string, gender string")
    expected = spark.createDataFrame([
        ("a", "b", 2, 2, 3, 3, 1), ("a", "c", 1, 1, 2, 2, 0), ("a", "d", 0, 1, 0, 1, -1),
        ("a", "e", 0, 1, -1, 0, 0), ("a", "f", 0, 0, 1, 3, 1), ("a", "g", -1, 0, 1, 2, -1)],
        "record_a string, record_b string, lvl_house int, lvl_email int, lvl_phone int, lvl_postcode int, "
        "lvl_gender int")
    assert_df_equality(levels_of(spark, records, [("a", x) for x in "bcdefg"], comparisons), expected,
                       ignore_nullable=True)


def test_one_typo_is_damerau_levenshtein_of_at_most_one(spark):
    pairs = [("1", "abcd", "abcd", True), ("2", "abcd", "bacd", True),  # equal; first two swapped
             ("3", "abcd", "abdc", True), ("4", "abcd", "abxd", True),  # last two swapped; one wrong
             ("5", "abcd", "abd", True), ("6", "", "a", True),          # one dropped; one added to nothing
             ("7", "abcd", "badc", False), ("8", "abcd", "acbe", False),  # two swaps; a swap and a wrong one
             ("9", "abcd", "cbad", False), ("10", "abcd", "ab", False),   # far neighbours swapped; two dropped
             ("11", "1324", "1234", True), ("12", None, "abcd", None)]  # nothing to compare: null
    got = (spark.createDataFrame([p[:3] for p in pairs], "id string, l string, r string")
           .select("id", one_typo(F.col("l"), F.col("r")).alias("one_typo")))
    expected = spark.createDataFrame([(p[0], p[3]) for p in pairs], "id string, one_typo boolean")
    assert_df_equality(got, expected, ignore_nullable=True, ignore_row_order=True)


def test_address_levels_treat_the_address_as_one_comparison(spark):
    address = ComparisonSettings(field="address", kind="address",
                                 parts={"street": "street", "number": "num", "postcode": "pc", "city": "city"})
    assert level_names(address) == ["different", "city", "postcode_one_typo", "postcode", "postcode_and_number",
                                    "street_and_postcode", "street_and_number", "exact"]
    records = ([("a", "calle mayor", "12", "28013", "madrid"), ("b", "calle mayor", "12", "28013", "madrid"),
                ("c", "calle mayro", "12", "28031", "madrid"),   # street typo, same number
                ("d", "calle mayor", None, "28013", "madrid"),   # no number
                ("e", "gran via", "12", "28013", "madrid"),      # another street, same postcode and number
                ("f", None, None, "28014", "madrid"),            # postcode one typo
                ("g", None, None, None, "madrid"),               # the city only
                ("h", "plaza sol", "3", "08001", "barcelona"),   # moved
                ("i", None, None, None, None)],
               "record_id string, street string, num string, pc string, city string")
    expected = spark.createDataFrame([
        ("a", "b", 7), ("a", "c", 6), ("a", "d", 5), ("a", "e", 4), ("a", "f", 2), ("a", "g", 1), ("a", "h", 0),
        ("a", "i", -1)], "record_a string, record_b string, lvl_address int")
    assert_df_equality(levels_of(spark, records, [("a", x) for x in "bcdefghi"], [address]), expected,
                       ignore_nullable=True)
    keys = spark.createDataFrame(*records).select(exact_key(address).alias("k")).collect()
    assert [k.k for k in keys][:2] == ["calle mayor\u241f12\u241f28013\u241fmadrid"] * 2 and keys[3].k is None


def test_options_that_do_not_fit_the_kind_are_refused():
    with pytest.raises(ValueError, match="canonical and swap_with belong to the name kind"):
        ComparisonSettings(field="x", kind="text", swap_with="y")
    with pytest.raises(ValueError, match="ordered highest first"):
        ComparisonSettings(field="x", kind="name", jaro_winkler=[0.8, 0.9])
    with pytest.raises(ValueError, match="needs 'parts'"):
        ComparisonSettings(field="x", kind="address")
    with pytest.raises(ValueError, match="tolerance belongs"):
        ComparisonSettings(field="x", kind="email", tolerance=[1])
