"""CLV: BG/NBD + Gamma-Gamma against the published CDNOW results (Fader, Hardie & Lee 2005), with the
customer summary computed by Spark from the raw CDNOW transaction log shipped in the lifetimes wheel."""

from __future__ import annotations

import importlib.util
import math
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F
from scipy.special import betaln, gammaln

from cdp_spark.predict.clv import (
    BgNbd,
    GammaGamma,
    PredictionError,
    _fit,
    bgnbd_log_likelihood,
    customer_summary,
    expected_purchases,
    fit_bgnbd,
    fit_gamma_gamma,
    gamma_gamma_log_likelihood,
    predict,
    probability_alive,
)

CALIBRATION_END = date(1997, 9, 30)  # the paper's 39-week calibration period


def cdnow(name: str) -> Path:
    spec = importlib.util.find_spec("lifetimes")  # the data files only; lifetimes itself is not imported
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / name


def significant(value: float, digits: int = 3) -> float:
    return round(value, digits - 1 - math.floor(math.log10(abs(value))))


@pytest.fixture(scope="module")
def cdnow_summary(spark):
    raw = pd.read_csv(cdnow("CDNOW_sample.txt"), sep=r"\s+", header=None,
                      names=["customer", "id", "date", "cds", "amount"], dtype={"date": str})
    facts = (spark.createDataFrame(raw[["id", "date", "amount"]])
             .select(F.format_string("%04d", "id").alias("person_id"),
                     F.to_date("date", "yyyyMMdd").alias("order_date"),
                     F.col("amount").cast("decimal(12,2)").alias("net_amount"), F.lit(True).alias("is_purchase"))
             .where(F.col("order_date") <= F.lit(CALIBRATION_END)))
    return customer_summary(facts, CALIBRATION_END, unit_days=7.0).orderBy("person_id").toPandas()


def test_spark_summary_reproduces_the_published_cdnow_summary(cdnow_summary):
    published = pd.read_csv(cdnow("cdnow_customers_summary_with_transactions.csv"))
    got = cdnow_summary.round({"recency": 2, "T": 2, "monetary_value": 2})
    assert len(got) == len(published) == 2357
    assert got["frequency"].tolist() == published["x"].tolist()
    assert np.allclose(got["recency"], published["t_x"], atol=0.006)
    assert np.allclose(got["T"], published["T"], atol=0.006)
    # the published means are rounded half up (22.345 -> 22.35), ours in binary floating point (22.34)
    assert np.allclose(got["monetary_value"], published["zbar"], atol=0.0101)


def test_bgnbd_and_gamma_gamma_reproduce_the_paper(cdnow_summary):
    bg = fit_bgnbd(cdnow_summary["frequency"], cdnow_summary["recency"], cdnow_summary["T"])
    assert [significant(v) for v in (bg.r, bg.alpha, bg.a, bg.b)] == [0.243, 4.41, 0.793, 2.43]
    assert round(bg.log_likelihood, 1) == -9582.4
    gg = fit_gamma_gamma(cdnow_summary["frequency"], cdnow_summary["monetary_value"])
    assert gg.customers == 946
    assert [significant(v) for v in (gg.p, gg.q)] == [6.25, 3.74]
    assert round(gg.gamma, 1) in (15.4, 15.5)  # paper: 15.44; our optimum 15.448


def test_predictions_for_the_papers_worked_example():
    # FHL 2005 section 5: x=2, t_x=30.43, T=38.86 -> 1.226 expected purchases in the next 39 weeks
    model = BgNbd(0.243, 4.414, 0.793, 2.426, 0.0, 0)
    assert expected_purchases(model, 39, np.array([2]), np.array([30.43]), np.array([38.86]))[0] == pytest.approx(
        1.226, abs=0.005)
    # nobody seen yet repeat buying is alive for sure; a long silence lowers the probability
    alive = probability_alive(model, np.array([0, 2, 2]), np.array([0.0, 38.0, 2.0]), np.array([38.86] * 3))
    assert alive[0] == 1.0 and alive[1] > alive[2]


def test_predict_adds_the_expected_columns(spark):
    bg, gg = BgNbd(0.243, 4.414, 0.793, 2.426, 0.0, 0), GammaGamma(6.25, 3.74, 15.44, 0.0, 0)
    summary = spark.createDataFrame([("p1", 2, 30.43, 38.86, 22.35), ("p2", 0, 0.0, 38.86, 0.0)],
                                    "person_id string, frequency int, recency double, T double, monetary_value double")
    got = {r.person_id: r for r in predict(summary, bg, gg, horizon=39).collect()}
    assert got["p1"].predicted_purchases == pytest.approx(1.226, abs=0.005)
    assert got["p1"].expected_average_value == pytest.approx(6.25 * (15.44 + 2 * 22.35) / (6.25 * 2 + 3.74 - 1))
    assert got["p1"].predicted_clv == pytest.approx(got["p1"].predicted_purchases * got["p1"].expected_average_value)
    assert got["p2"].expected_average_value == pytest.approx(6.25 * 15.44 / 2.74)  # the population mean
    discounted = {r.person_id: r for r in predict(summary, bg, gg, horizon=39, discount_per_unit=0.01).collect()}
    assert discounted["p1"].predicted_clv < got["p1"].predicted_clv


def test_refuses_to_fit_on_too_little_data():
    with pytest.raises(PredictionError, match="at least 100 customers with purchases and 20 with repeat purchases; "
                                              "got 3 and 1"):
        fit_bgnbd(np.array([0, 0, 1]), np.array([0.0, 0.0, 2.0]), np.array([5.0, 5.0, 5.0]))
    with pytest.raises(PredictionError, match=r"Gamma-Gamma needs at least 20 customers .*got 1"):
        fit_gamma_gamma(np.array([0, 1]), np.array([0.0, 5.0]))


def test_refuses_non_finite_inputs_naming_the_column():
    # one infinite spend made every Gamma-Gamma likelihood NaN: the search stopped at its start and returned
    # a model with log-likelihood NaN
    rng = np.random.default_rng(1)
    x, m = rng.integers(1, 5, 200).astype(float), rng.gamma(2.0, 50.0, 200)
    m[3] = np.inf
    with pytest.raises(PredictionError, match=r"^Gamma-Gamma input has NaN or infinite values in "
                                              r"monetary_value \(1 values\)$"):
        fit_gamma_gamma(x, m)
    big_t = rng.uniform(10.0, 50.0, 300)
    frequency = rng.poisson(2.0, 300).astype(float)
    recency = np.where(frequency > 0, big_t / 2, 0.0)
    big_t[[5, 7]] = np.nan
    with pytest.raises(PredictionError, match=r"^BG/NBD input has NaN or infinite values in T \(2 values\)$"):
        fit_bgnbd(frequency, recency, big_t)


def test_refuses_a_likelihood_that_is_not_finite_anywhere():
    with pytest.raises(PredictionError, match=r"^test likelihood is not finite for any parameters searched$"):
        _fit(lambda params: np.full(3, np.nan), np.array([1.0, 1.0]), "test")


def test_gamma_gamma_fit_on_many_customers_does_not_depend_on_row_order():
    # 100k customers drawn from the model: per-transaction spend Gamma(p, nu), nu ~ Gamma(q, gamma). The fit
    # minimises the mean log-likelihood; on the sum (~1e5), Nelder-Mead's absolute tolerance sat below float
    # precision and the fit failed to converge for some row orders of the pipeline's 100k-person summary
    rng = np.random.default_rng(1)
    n, p, q, gamma = 100_000, 2.0, 4.0, 500.0
    nu = rng.gamma(q, 1 / gamma, n)
    x = rng.integers(1, 10, n).astype(float)
    m = rng.gamma(p * x, 1 / (nu * x))
    fits = []
    for seed in range(2):
        order = np.random.default_rng(seed).permutation(n)
        fit = fit_gamma_gamma(x[order], m[order])
        fits.append((significant(fit.p), significant(fit.q), significant(fit.gamma)))
    assert fits == [(2.01, 4.02, 502.0)] * 2


def test_bgnbd_fit_reaches_the_no_drop_out_boundary_when_nobody_drops_out():
    # 5k customers who never drop out: purchase rates ~ Gamma(1.5, 30) per week, first purchase on one of the
    # last 1,000 days, recency and T whole days in weeks, like the pipeline's summary. The likelihood rises
    # as a -> 0; the former search in log a walked that ridge (a = 0.0047, b = 1.5e6 here) and, on the
    # generator's 100k persons, never converged
    rng = np.random.default_rng(13)
    n = 5_000
    rate = rng.gamma(1.5, 1 / 30.0, n)
    big_t = (1000 - rng.integers(0, 1000, n)) / 7
    x = rng.poisson(rate * big_t)
    t_x = np.where(x > 0, np.floor(big_t * 7 * rng.beta(np.maximum(x, 1), 1)) / 7, 0.0)
    model = fit_bgnbd(x, t_x, big_t)
    assert model.a < 1e-6  # on the boundary: no drop-out
    assert model.r == pytest.approx(1.5, rel=0.1) and model.alpha == pytest.approx(30.0, rel=0.1)
    assert probability_alive(model, x, t_x, big_t).min() > 0.999999
    # a fifth of them drop out after a fifth of their time (their purchases before it are kept): drop-out is
    # visible and the maximum lies inside, a well above 0
    gone = rng.random(n) < 0.2
    x_cut = np.where(gone, rng.binomial(x, 0.2), x)
    t_x_cut = np.where(gone, np.where(x_cut > 0, np.floor(big_t * 1.4 * rng.beta(np.maximum(x_cut, 1), 1)) / 7, 0.0),
                       t_x)
    assert fit_bgnbd(x_cut, t_x_cut, big_t).a > 0.01


def test_likelihoods_computed_per_distinct_value_equal_the_per_customer_formulas():
    # the fits evaluate the terms of x, t_x and T once per distinct value; the textbook formulas row by row
    rng = np.random.default_rng(3)
    x = rng.integers(0, 6, 500).astype(float)
    t_x = np.where(x > 0, rng.integers(0, 40, 500) / 7, 0.0)
    big_t = t_x + rng.integers(0, 20, 500) / 7
    for r, alpha, a, b in [(0.24, 4.4, 0.79, 2.4), (1.5, 32.0, 0.3, 0.6)]:  # b < 1: log(b - 1) at x = 0 is unused
        textbook = [gammaln(r + xi) - gammaln(r) + r * math.log(alpha) + betaln(a, b + xi) - betaln(a, b)
                    + np.logaddexp(-(r + xi) * math.log(alpha + ti),
                                   math.log(a) - math.log(b + xi - 1) - (r + xi) * math.log(alpha + txi)
                                   if xi > 0 else -np.inf)
                    for xi, txi, ti in zip(x, t_x, big_t, strict=True)]
        assert np.allclose(bgnbd_log_likelihood(np.array([r, alpha, a, b]), x, t_x, big_t), textbook,
                           rtol=1e-12, atol=1e-9)
    m = rng.gamma(2.0, 20.0, 500)
    n = np.maximum(x, 1)
    p, q, gamma = 6.25, 3.74, 15.44
    textbook = (gammaln(p * n + q) - gammaln(p * n) - gammaln(q) + q * np.log(gamma) + (p * n - 1) * np.log(m)
                + p * n * np.log(n) - (p * n + q) * np.log(gamma + m * n))
    assert np.allclose(gamma_gamma_log_likelihood(np.array([p, q, gamma]), n, m), textbook, rtol=1e-12, atol=1e-9)
