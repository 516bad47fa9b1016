"""Customer lifetime value: BG/NBD (Fader, Hardie & Lee 2005) for the number of future purchases and
Gamma-Gamma (Fader, Hardie & Lee 2005, "RFM and CLV") for their value (docs/design.md §5).

``customer_summary(facts, as_of, unit_days)`` (Spark)
    in:  order facts (person_id, order_date, net_amount, is_purchase)
    out: person_id, frequency (repeat purchase days), recency (first to last purchase day), T (first
         purchase day to as_of), both in units of ``unit_days`` days, monetary_value (mean net amount of
         the repeat purchase days; 0 without repeats). Purchases on one day count as one transaction.
``fit_bgnbd(frequency, recency, T)`` / ``fit_gamma_gamma(frequency, monetary_value)`` (driver, numpy/scipy)
    maximum likelihood on the summary, refusing too little data with ``PredictionError``.
``predict(summary, bgnbd, gamma_gamma, horizon, discount)`` (Spark)
    adds probability_alive, predicted_purchases (over ``horizon`` units), expected_average_value and
    predicted_clv (monthly-style discounting per unit: value of each unit's expected purchases / (1 + d)^k).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import date

import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from scipy.optimize import minimize
from scipy.special import betaln, gammaln, hyp2f1


class PredictionError(ValueError):
    """A model cannot be fitted (too little data, no convergence); the message says why."""


@dataclass(frozen=True)
class BgNbd:
    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float
    customers: int


@dataclass(frozen=True)
class GammaGamma:
    p: float
    q: float
    gamma: float
    log_likelihood: float
    customers: int


def as_dict(model: BgNbd | GammaGamma) -> dict[str, float | int]:
    return asdict(model)


def customer_summary(facts: DataFrame, as_of: date, unit_days: float = 7.0) -> DataFrame:
    days = (facts.where("is_purchase").groupBy("person_id", "order_date")
            .agg(F.sum("net_amount").cast("double").alias("day_value")))
    first = F.min("order_date")
    summary = days.groupBy("person_id").agg(
        (F.count("*") - 1).alias("frequency"), first.alias("first_day"), F.max("order_date").alias("last_day"),
        F.sum("day_value").alias("total_value"), F.min_by("day_value", "order_date").alias("first_value"))
    unit = F.lit(float(unit_days))
    return summary.select(
        "person_id", F.col("frequency").cast("int").alias("frequency"),
        (F.datediff("last_day", "first_day") / unit).alias("recency"),
        (F.datediff(F.lit(as_of), "first_day") / unit).alias("T"),
        F.when(F.col("frequency") > 0, (F.col("total_value") - F.col("first_value")) / F.col("frequency"))
        .otherwise(F.lit(0.0)).alias("monetary_value"))


class _Distinct:
    """A column as its distinct values and, per row, the position of its value: functions of one column
    are computed once per distinct value and gathered (the summary has few distinct frequencies and days)."""

    def __init__(self, column: np.ndarray) -> None:
        self.values, self.at = np.unique(column, return_inverse=True)


class BgNbdSample:
    """The summary columns of a BG/NBD fit, prepared once for the many likelihood evaluations of the fit."""

    def __init__(self, x: np.ndarray, t_x: np.ndarray, big_t: np.ndarray) -> None:
        self.x, self.t_x, self.big_t = _Distinct(x), _Distinct(t_x), _Distinct(big_t)

    def log_likelihood(self, params: np.ndarray) -> np.ndarray:
        """Per-customer log-likelihood (FHL 2005, eq. 6), in logs throughout for stability."""
        r, alpha, a, b = params
        xs = self.x.values
        with np.errstate(divide="ignore", invalid="ignore"):
            per_x = (gammaln(r + xs) - gammaln(r) + r * np.log(alpha) + betaln(a, b + xs) - betaln(a, b))
            # the second term exists for repeat buyers only: log 0 (-inf) for x = 0
            repeat_x = np.where(xs > 0, np.log(a) - np.log(b + xs - 1), -np.inf)
        r_x = (r + xs)[self.x.at]
        a3 = -r_x * np.log(alpha + self.big_t.values)[self.big_t.at]
        a4 = repeat_x[self.x.at] - r_x * np.log(alpha + self.t_x.values)[self.t_x.at]
        return per_x[self.x.at] + np.logaddexp(a3, a4)


def bgnbd_log_likelihood(params: np.ndarray, x: np.ndarray, t_x: np.ndarray, big_t: np.ndarray) -> np.ndarray:
    """Per-customer log-likelihood (FHL 2005, eq. 6)."""
    return BgNbdSample(np.asarray(x, dtype=float), np.asarray(t_x, dtype=float),
                       np.asarray(big_t, dtype=float)).log_likelihood(params)


# parameters are searched within e^-20 .. e^20: every plausible value, and a compact search
LOG_PARAMETER_BOUND = 20.0


def _fit(log_likelihood: Callable[[np.ndarray], np.ndarray], start: np.ndarray, what: str,
         linear: tuple[int, ...] = ()) -> np.ndarray:
    """Maximum likelihood: minimises the mean negative log-likelihood per customer (tolerances that do not
    depend on the number of customers) with bounded L-BFGS-B, then bounded Nelder-Mead from where it stopped
    if its line search gave up. Parameters are searched as logs, except those in ``linear``, whose maximum
    may lie on the boundary 0: when the data show no drop-out, the BG/NBD likelihood rises as a -> 0 and
    its slope in log a vanishes, so a search in log a stalls on a flat ridge (or, unbounded, walks it to its
    iteration limit), while a search in a reaches the boundary."""
    is_log = np.array([i not in linear for i in range(len(start))])

    def params(v: np.ndarray) -> np.ndarray:
        return np.where(is_log, np.exp(v), v)

    def objective(v: np.ndarray) -> float:
        value = -log_likelihood(params(v)).mean()
        return float(value) if np.isfinite(value) else 1e300

    low, high = np.exp(-LOG_PARAMETER_BOUND), np.exp(LOG_PARAMETER_BOUND)
    bounds = [(-LOG_PARAMETER_BOUND, LOG_PARAMETER_BOUND) if log else (low, high) for log in is_log]
    result = minimize(objective, np.where(is_log, np.log(start), start), method="L-BFGS-B", bounds=bounds,
                      options={"maxiter": 10_000, "ftol": 1e-12, "gtol": 1e-6})
    messages = [f"L-BFGS-B: {result.message}"]
    if not result.success:
        result = minimize(objective, result.x, method="Nelder-Mead", bounds=bounds,
                          options={"maxiter": 20_000, "xatol": 1e-8, "fatol": 1e-10})
        messages.append(f"Nelder-Mead: {result.message}")
    if not result.success or not np.all(np.isfinite(result.x)):
        raise PredictionError(f"{what} fit did not converge ({'; '.join(messages)})")
    if result.fun >= 1e300:  # a flat objective "converges" where it starts
        raise PredictionError(f"{what} likelihood is not finite for any parameters searched")
    return params(result.x)


def _require_finite(what: str, **columns: np.ndarray) -> None:
    """Refuses inputs with NaN or infinite values, naming the column and how many: one such value makes the
    likelihood non-finite everywhere, and the search would end where it started."""
    bad = [f"{name} ({int((~np.isfinite(values)).sum())} values)" for name, values in columns.items()
           if not np.isfinite(values).all()]
    if bad:
        raise PredictionError(f"{what} input has NaN or infinite values in {', '.join(bad)}")


def fit_bgnbd(frequency: np.ndarray, recency: np.ndarray, big_t: np.ndarray, min_customers: int = 100,
              min_repeat_customers: int = 20) -> BgNbd:
    x, t_x, t = (np.asarray(v, dtype=float) for v in (frequency, recency, big_t))
    _require_finite("BG/NBD", frequency=x, recency=t_x, T=t)
    repeaters = int((x > 0).sum())
    if len(x) < min_customers or repeaters < min_repeat_customers:
        raise PredictionError(f"BG/NBD needs at least {min_customers} customers with purchases and "
                              f"{min_repeat_customers} with repeat purchases; got {len(x)} and {repeaters}")
    if np.any(t_x > t + 1e-9) or np.any(x < 0):
        raise PredictionError("BG/NBD summary is inconsistent: recency above T or negative frequency")

    sample = BgNbdSample(x, t_x, t)

    # a is searched linearly: without visible drop-out its maximum is a -> 0 (then b does not matter)
    r, alpha, a, b = _fit(sample.log_likelihood, np.array([1.0, max(float(t.mean()), 1.0), 1.0, 1.0]), "BG/NBD",
                          linear=(2,))
    ll = float(sample.log_likelihood(np.array([r, alpha, a, b])).sum())
    return BgNbd(float(r), float(alpha), float(a), float(b), ll, len(x))


class GammaGammaSample:
    """The repeat buyers' (x, m_x) of a Gamma-Gamma fit, with the logs that do not depend on the parameters."""

    def __init__(self, x: np.ndarray, m_x: np.ndarray) -> None:
        self.x = _Distinct(x)
        self.log_m, self.log_xm, self.spend = np.log(m_x), np.log(x) + np.log(m_x), x * m_x

    def log_likelihood(self, params: np.ndarray) -> np.ndarray:
        """Per-customer log-likelihood of the mean spend m_x over x transactions (FHL 2005b, eq. 2)."""
        p, q, gamma = params
        px_values = p * self.x.values
        per_x = gammaln(px_values + q) - gammaln(px_values) - gammaln(q) + q * np.log(gamma)
        px = px_values[self.x.at]
        return per_x[self.x.at] + px * self.log_xm - self.log_m - (px + q) * np.log(gamma + self.spend)


def gamma_gamma_log_likelihood(params: np.ndarray, x: np.ndarray, m_x: np.ndarray) -> np.ndarray:
    """Per-customer log-likelihood of the mean spend m_x over x transactions (FHL 2005b, eq. 2)."""
    return GammaGammaSample(np.asarray(x, dtype=float), np.asarray(m_x, dtype=float)).log_likelihood(params)


def fit_gamma_gamma(frequency: np.ndarray, monetary_value: np.ndarray, min_repeat_customers: int = 20) -> GammaGamma:
    x, m = np.asarray(frequency, dtype=float), np.asarray(monetary_value, dtype=float)
    _require_finite("Gamma-Gamma", frequency=x, monetary_value=m)
    keep = (x > 0) & (m > 0)
    x, m = x[keep], m[keep]
    if len(x) < min_repeat_customers:
        raise PredictionError(f"Gamma-Gamma needs at least {min_repeat_customers} customers with repeat "
                              f"purchases of positive value; got {len(x)}")

    sample = GammaGammaSample(x, m)

    p, q, gamma = _fit(sample.log_likelihood, np.array([1.0, 1.0, max(float(m.mean()), 1.0)]), "Gamma-Gamma")
    ll = float(sample.log_likelihood(np.array([p, q, gamma])).sum())
    return GammaGamma(float(p), float(q), float(gamma), ll, len(x))


def expected_purchases(model: BgNbd, t: float, x: np.ndarray, t_x: np.ndarray, big_t: np.ndarray) -> np.ndarray:
    """E[Y(t) | x, t_x, T] (FHL 2005, eq. 10)."""
    r, alpha, a, b = model.r, model.alpha, model.a, model.b
    x, t_x, big_t = (np.asarray(v, dtype=float) for v in (x, t_x, big_t))
    hyp = hyp2f1(r + x, b + x, a + b + x - 1, t / (alpha + big_t + t))
    first = (a + b + x - 1) / (a - 1) * (1 - ((alpha + big_t) / (alpha + big_t + t)) ** (r + x) * hyp)
    return first / (1 + (x > 0) * a / (b + x - 1) * ((alpha + big_t) / (alpha + t_x)) ** (r + x))


def probability_alive(model: BgNbd, x: np.ndarray, t_x: np.ndarray, big_t: np.ndarray) -> np.ndarray:
    """P(alive | x, t_x, T) (FHL 2005, eq. 11 / appendix)."""
    x, t_x, big_t = (np.asarray(v, dtype=float) for v in (x, t_x, big_t))
    ratio = ((model.alpha + big_t) / (model.alpha + t_x)) ** (model.r + x)
    return 1.0 / (1.0 + (x > 0) * model.a / (model.b + x - 1) * ratio)


def expected_average_value(model: GammaGamma, x: np.ndarray, m_x: np.ndarray) -> np.ndarray:
    """E(M | p, q, gamma, m_x, x): the Gamma-Gamma posterior mean spend per transaction."""
    return model.p * (model.gamma + x * m_x) / (model.p * x + model.q - 1)


def predict(summary: DataFrame, bgnbd: BgNbd, gamma_gamma: GammaGamma, horizon: int,
            discount_per_unit: float = 0.0) -> DataFrame:
    """Adds the predictions to every summary row with a vectorised pandas UDF (scipy's hyp2f1)."""
    import pandas as pd

    schema = ("person_id string, frequency int, recency double, T double, monetary_value double, "
              "probability_alive double, predicted_purchases double, expected_average_value double, "
              "predicted_clv double")

    def per_batch(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for frame in batches:
            x, t_x, big_t = frame["frequency"].to_numpy(float), frame["recency"].to_numpy(), frame["T"].to_numpy()
            # with x = 0 this is the population mean p * gamma / (q - 1)
            value = expected_average_value(gamma_gamma, x, frame["monetary_value"].to_numpy())
            cumulative = [np.zeros(len(frame))] + [expected_purchases(bgnbd, k, x, t_x, big_t)
                                                   for k in range(1, horizon + 1)]
            clv = sum((cumulative[k] - cumulative[k - 1]) / (1 + discount_per_unit) ** k
                      for k in range(1, horizon + 1)) * value
            yield pd.DataFrame({**{c: frame[c] for c in ("person_id", "frequency", "recency", "T", "monetary_value")},
                                "probability_alive": probability_alive(bgnbd, x, t_x, big_t),
                                "predicted_purchases": cumulative[horizon], "expected_average_value": value,
                                "predicted_clv": clv})

    return summary.select("person_id", "frequency", "recency", "T", "monetary_value").mapInPandas(per_batch, schema)
