"""`cdp identity diagnostics`: m, u and weight per level, candidates per rule, the weight histogram."""

from cdp_spark.identity.diagnostics import diagnostics, render
from cdp_spark.identity.fellegi_sunter import FsModel


def sample() -> dict:
    model = FsModel(fields=["last_name_key"], levels={"last_name_key": ["different", "exact"]},
                    m={"last_name_key": [0.1, 0.9]}, u={"last_name_key": [0.9, 0.1]}, prior=0.001,
                    tf_fields=["last_name_key"], trained_by={"last_name_key": ["given_birth"]})
    counts = {"records": 10, "candidate_pairs": 6, "accepted_pairs": 2,
              "pairs_per_source": {"snm:street": 3, "block:names": 4},
              "oversized_blocks": {"block:names": {"blocks": 1, "largest": 120}},
              "weight_histogram": {"3": 2, "-3": 4}}
    return diagnostics(model, counts, 0.5)


def test_diagnostics_report_weights_per_level_and_the_threshold_in_bits():
    report = sample()
    assert report["prior_weight"] == -9.96 and report["threshold_weight"] == 0.0
    assert report["comparisons"] == [{
        "field": "last_name_key", "trained_by": ["given_birth"], "term_frequency": True,
        "levels": [{"level": "different", "m": 0.1, "u": 0.9, "weight": -3.17},
                   {"level": "exact", "m": 0.9, "u": 0.1, "weight": 3.17}]}]
    assert report["weight_histogram"] == {-3: 4, 3: 2}


def test_rendered_histogram_shows_empty_bins_and_marks_the_threshold():
    assert render(sample(), width=4).splitlines() == [
        "matching model: 10 records, 6 candidate pairs, 2 accepted",
        "prior (two random records match): 0.001 = -9.96 bits; threshold: probability 0.5 = match weight +0.00",
        "",
        "last_name_key  (m trained in: given_birth; term-frequency adjusted)",
        "    exact                        m 0.9       u 0.1         weight   +3.17",
        "    different                    m 0.1       u 0.9         weight   -3.17",
        "",
        "candidate pairs per source:",
        "    block:names                  4",
        "    snm:street                   3",
        "    block:names: 1 blocks over the size limit gave no pairs (largest 120 records)",
        "",
        "match weights of the candidate pairs (bits; | marks the threshold):",
        "    -3   #### 4",
        "    -2    0",
        "    -1    0",
        "     0 |  0",
        "     1    0",
        "     2    0",
        "     3   ## 2",
    ]
