"""An independent implementation of the score library in DuckDB SQL, to check the Spark one against.

Written from docs/design.md §5 and the score registry, not from the Spark code: plain SQL over the same inputs
(orders, registry, stores, order_items, products), with exact integer arithmetic for every rounded
figure. ``tests/unit/test_reference_scores.py`` asserts that both give exactly the same rows on
generated data, and ``make bench-scores`` times both on 1M persons. Needs ``duckdb`` (a test extra).

``reference_scores(con, sources, as_of, timezone, lifecycle, rfm)`` (``reference_query`` gives the query instead)
    sources: {table name: parquet path or glob} for orders, registry, stores, order_items, products
    out:     (rows, cut points); rows in the column order of ``gold.person_scores`` without the
             custom fields, one per person of the registry; cut points {metric: [cuts]}.

Rounding: decimal HALF_UP, as the SQL standard's decimal arithmetic does. The average discount rate is
the mean of the per-order ratios, each and the mean carried at 17 decimals, then rounded to 4.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date
from typing import Any

from cdp_spark.config import LifecycleSettings, RfmSettings

RFM_METRICS = {"recency": "days_since_last_order", "frequency": "orders_total_count",
               "monetary": "orders_total_amount"}


def _half_up(numerator: str, denominator: str) -> str:
    """SQL for numerator / denominator rounded half up to an integer (denominator > 0, exact)."""
    return (f"(sign({numerator}) * ((2 * abs({numerator})::HUGEINT + ({denominator})) "
            f"// (2 * ({denominator})::HUGEINT)))")


def _sql(as_of: date, timezone: str, lifecycle: LifecycleSettings) -> str:
    day = f"DATE '{as_of.isoformat()}'"
    e17 = "100000000000000000::HUGEINT"
    return f"""
WITH facts AS (
    SELECT r.person_id, o.order_id, CAST(timezone('{timezone}', o.order_ts) AS DATE) AS order_date, o.order_ts,
           COALESCE(s.name, o.store_id) AS store_name, o.channel,
           CAST(COALESCE(o.gross_amount, 0) - COALESCE(o.discount_amount, 0) AS DECIMAL(14, 2)) AS net_amount,
           CAST(COALESCE(o.gross_amount, 0) AS DECIMAL(14, 2)) AS gross_amount,
           CAST(COALESCE(o.discount_amount, 0) AS DECIMAL(14, 2)) AS discount_amount
    FROM orders o
    JOIN registry r ON r.system = o.customer_source AND r.source_key = o.customer_key
    LEFT JOIN stores s ON s.store_id = o.store_id
    WHERE CAST(timezone('{timezone}', o.order_ts) AS DATE) <= {day}
),
purchases AS (
    SELECT *, CAST(net_amount * 100 AS BIGINT) AS net_cents,
           CAST(gross_amount * 100 AS BIGINT) AS gross_cents, CAST(discount_amount * 100 AS BIGINT) AS discount_cents
    FROM facts WHERE net_amount > 0
),
per_person AS (
    SELECT person_id, count(*) AS n, sum(net_amount) AS amount, sum(net_cents) AS cents,
           max(order_date) AS last_day, min(order_date) AS first_day,
           list(DISTINCT store_name ORDER BY store_name) FILTER (WHERE store_name IS NOT NULL) AS stores,
           count(DISTINCT store_name) AS n_stores, count(DISTINCT channel) AS n_channels,
           count(*) FILTER (WHERE discount_cents > 0) AS n_discounted,
           sum({_half_up(f"discount_cents * {e17}", "gross_cents")}) FILTER (WHERE gross_cents > 0) AS rate_sum_e17,
           count(*) FILTER (WHERE gross_cents > 0) AS n_rated
    FROM purchases GROUP BY person_id
),
order_days AS (
    SELECT person_id, order_date,
           order_date - lag(order_date) OVER (PARTITION BY person_id ORDER BY order_date) AS gap
    FROM (SELECT DISTINCT person_id, order_date FROM purchases)
),
gaps AS (
    SELECT person_id, count(*) AS days, count(gap) AS n_gaps, sum(gap) AS gap_sum,
           avg(gap) AS mean_gap, stddev_samp(gap) AS std_gap
    FROM order_days GROUP BY person_id
),
favourite AS (
    SELECT person_id, store_name FROM (
        SELECT person_id, store_name, row_number() OVER (PARTITION BY person_id
               ORDER BY count(*) DESC, max(order_ts) DESC, store_name ASC NULLS FIRST) AS rank
        FROM purchases GROUP BY person_id, store_name) WHERE rank = 1
),
first_last AS (
    SELECT person_id,
           arg_min_null(store_name, (order_ts, order_id)) AS first_store,
           arg_max_null(store_name, (order_ts, order_id)) AS last_store
    FROM purchases GROUP BY person_id
),
lines AS (
    SELECT p.person_id, p.order_id, p.order_ts, pr.category, COALESCE(i.quantity, 0) AS quantity
    FROM purchases p JOIN order_items i ON i.order_id = p.order_id
    LEFT JOIN products pr ON pr.product_id = i.product_id
),
items AS (SELECT person_id, sum(quantity) AS n_items FROM lines GROUP BY person_id),
categories AS (
    SELECT person_id, list(category ORDER BY category) AS all_categories,
           list(category ORDER BY rank)[1:3] AS top3, count(*) AS n_categories
    FROM (SELECT person_id, category, row_number() OVER (PARTITION BY person_id
                 ORDER BY count(DISTINCT order_id) DESC, max(order_ts) DESC, category) AS rank
          FROM lines WHERE category IS NOT NULL GROUP BY person_id, category)
    GROUP BY person_id
),
joined AS (
    SELECT persons.person_id, COALESCE(pp.n, 0) AS n, pp.amount, pp.cents, pp.last_day, pp.first_day, pp.stores,
           pp.n_stores, pp.n_channels, pp.n_discounted, pp.rate_sum_e17, pp.n_rated,
           g.days, g.n_gaps, g.gap_sum, g.mean_gap,
           CASE WHEN g.days = 2 THEN 0.5 * g.mean_gap
                ELSE greatest(COALESCE(g.std_gap, 0.0), 0.25 * g.mean_gap) END AS sigma,
           {day} - pp.last_day AS since_last, f.store_name AS favourite_store, fl.first_store, fl.last_store,
           COALESCE(it.n_items, 0) AS n_items, c.all_categories, c.top3, COALESCE(c.n_categories, 0) AS n_cat
    FROM (SELECT DISTINCT person_id FROM registry) persons
    LEFT JOIN per_person pp ON pp.person_id = persons.person_id
    LEFT JOIN gaps g ON g.person_id = persons.person_id
    LEFT JOIN favourite f ON f.person_id = persons.person_id
    LEFT JOIN first_last fl ON fl.person_id = persons.person_id
    LEFT JOIN items it ON it.person_id = persons.person_id
    LEFT JOIN categories c ON c.person_id = persons.person_id
)
SELECT person_id, {day} AS as_of,
       CASE WHEN days IS NULL OR days = 0 THEN 'no_order'
            WHEN days = 1 THEN 'one_order'
            WHEN since_last < 0.5 * mean_gap THEN 'recent'
            WHEN since_last < mean_gap THEN 'approaching'
            WHEN since_last < mean_gap + 2 * sigma THEN 'late'
            ELSE 'significantly_late' END AS purchase_timing_deviation,
       COALESCE(all_categories, []::VARCHAR[]) AS all_ordered_categories,
       COALESCE(top3, []::VARCHAR[]) AS top3_categories,
       CAST(n_cat AS INTEGER) AS distinct_categories_count,
       favourite_store, COALESCE(stores, []::VARCHAR[]) AS all_stores,
       CAST(COALESCE(n_stores, 0) AS INTEGER) AS distinct_stores_count,
       first_store AS first_order_store, last_store AS last_order_store,
       n >= 2 AS multi_buyer, n_cat >= 2 AS multi_category, n = 1 AS new_customer, n >= 3 AS regular_customer,
       COALESCE(n_channels, 0) >= 2 AS omnichannel, COALESCE(n_stores, 0) >= 2 AS multi_store,
       n >= 1 AS active_customer,
       CAST(COALESCE(amount, 0) AS DECIMAL(16, 2)) AS orders_total_amount,
       CASE WHEN n > 0 THEN CAST(CAST({_half_up("cents", "n")} AS DECIMAL(18, 0)) * 0.01 AS DECIMAL(16, 2)) END
           AS orders_average_value,
       CAST(n AS BIGINT) AS orders_total_count,
       CAST(n_items AS BIGINT) AS orders_total_items,
       CASE WHEN n > 0 THEN CAST({_half_up("100 * n_items", "n")} AS DOUBLE) / 100 END AS orders_average_items,
       CASE WHEN days >= 2 THEN CAST({_half_up("100 * gap_sum", "n_gaps")} AS DOUBLE) / 100 END
           AS orders_average_days_between,
       CAST(COALESCE(n_discounted, 0) AS BIGINT) AS discounted_orders_count,
       CASE WHEN n > 0 THEN CAST({_half_up("10000 * n_discounted", "n")} AS DOUBLE) / 10000 END
           AS discounted_orders_rate,
       CASE WHEN n_rated > 0 THEN CAST({_half_up(_half_up("rate_sum_e17", "n_rated"), "10000000000000::HUGEINT")}
           AS DOUBLE) / 10000 END AS average_discount_rate,
       CAST(since_last AS INTEGER) AS days_since_last_order,
       CAST({day} - first_day AS INTEGER) AS days_since_first_order,
       CASE WHEN n = 0 THEN 'no_order'
            WHEN since_last < {lifecycle.inactive_after_days} THEN 'active'
            WHEN since_last < {lifecycle.hibernating_after_days} THEN 'inactive'
            WHEN since_last <= {lifecycle.lost_after_days} THEN 'hibernating'
            ELSE 'lost' END AS hibernation_state
FROM joined
"""


def _cut_points(con: Any, groups: int) -> dict[str, list[float]]:
    """The value at rank ceil(p * n) of the customers with orders, for p = 1/groups ... (groups-1)/groups."""
    cuts: dict[str, list[float]] = {}
    n = con.execute("SELECT count(*) FROM scores WHERE orders_total_count > 0").fetchone()[0]
    for metric, column in RFM_METRICS.items():
        ranks = [max(1, math.ceil(k / groups * n)) for k in range(1, groups)]
        values = con.execute(
            f"SELECT v FROM (SELECT CAST({column} AS DOUBLE) AS v, row_number() OVER (ORDER BY "
            f"CAST({column} AS DOUBLE)) AS rank FROM scores WHERE orders_total_count > 0) "
            f"WHERE rank IN ({', '.join(map(str, ranks))}) ORDER BY rank").fetchall()
        cuts[metric] = [float(v) for (v,) in values] if n else []
    return cuts


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _bucket(column: str, cuts: list[float]) -> str:
    return "(1" + "".join(f" + CASE WHEN CAST({column} AS DOUBLE) > {cut!r} THEN 1 ELSE 0 END" for cut in cuts) + ")"


def reference_query(con: Any, sources: Mapping[str, str], as_of: date, timezone: str,
                    lifecycle: LifecycleSettings, rfm: RfmSettings | None) -> tuple[str, dict[str, list[float]]]:
    """Computes the library into the temporary table ``scores``; returns the final query (RFM added, ordered
    by person) and the RFM cut points."""
    con.execute("SET TimeZone = 'UTC'")
    for name, path in sources.items():
        con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM read_parquet('{path}')")
    con.execute(f"CREATE OR REPLACE TEMP TABLE scores AS {_sql(as_of, timezone, lifecycle)}")
    if rfm is None:
        return "SELECT * FROM scores ORDER BY person_id", {}
    cuts = _cut_points(con, rfm.groups)
    active = "orders_total_count > 0"
    r = f"CAST({rfm.groups + 1} - {_bucket(RFM_METRICS['recency'], cuts['recency'])} AS INTEGER)"
    f = f"CAST({_bucket(RFM_METRICS['frequency'], cuts['frequency'])} AS INTEGER)"
    m = f"CAST({_bucket(RFM_METRICS['monetary'], cuts['monetary'])} AS INTEGER)"
    rules = " ".join(f"WHEN COALESCE({rule.rule}, false) THEN {_quote(rule.name)}" for rule in rfm.segments)
    segment = f"CASE WHEN NOT ({active}) THEN NULL {rules} END"
    with_rfm = (f"SELECT *, CASE WHEN {active} THEN concat(r, f, m) END AS rfm_score, {segment} AS rfm_segment "
                f"FROM (SELECT *, CASE WHEN {active} THEN {r} END AS r, CASE WHEN {active} THEN {f} END AS f, "
                f"CASE WHEN {active} THEN {m} END AS m FROM scores)")
    return (f"SELECT * EXCLUDE (r, f, m, rfm_score, rfm_segment), r AS rfm_recency, f AS rfm_frequency, "
            f"m AS rfm_monetary, rfm_score, rfm_segment FROM ({with_rfm}) ORDER BY person_id"), cuts


def reference_scores(con: Any, sources: Mapping[str, str], as_of: date, timezone: str,
                     lifecycle: LifecycleSettings, rfm: RfmSettings | None) -> tuple[list[tuple[Any, ...]],
                                                                                    dict[str, list[float]]]:
    query, cuts = reference_query(con, sources, as_of, timezone, lifecycle, rfm)
    return con.execute(query).fetchall(), cuts
