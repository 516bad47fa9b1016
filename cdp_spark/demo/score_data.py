"""Generated inputs for the score library, at any size (tests and ``make bench-scores``).

``generate_score_inputs(out, persons, orders, seed, as_of)`` writes five parquet tables under ``out``,
shaped like the silver/gold tables the score stage reads:

    orders/       order_id, customer_source, customer_key, store_id, channel, order_ts (UTC),
                  gross_amount decimal(12,2), discount_amount decimal(12,2)
    registry/     system, source_key, person_id       (every person has a crm key, 30 % a shop key too)
    stores/       store_id, name                      (one store has no row: its id stands in for the name)
    order_items/  order_id, product_id, quantity
    products/     product_id, category                (some products have no category)

The data holds every case the score definitions must handle: persons without orders, refunds and
zero-amount orders, null amounts and quantities, same-day orders, orders just before midnight UTC
(the next day in Madrid), orders after the as-of date, orders without lines, lines of unknown products,
orders without a store, and a skewed number of orders per person. Built with numpy and pyarrow (5M
orders in seconds); the same seed always gives the same files.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

CATEGORIES = ["Hogar", "Plantas", "Huerto ECO", "Jardín", "Riego", "Mascotas", "Herramientas", "Decoración",
              "Semillas", "Iluminación", "Piscina", "Barbacoa"]
STORES = 40
PRODUCTS = 300
ROWS_PER_FILE = 1_000_000


def _ids(prefix: str, numbers: np.ndarray) -> pa.Array:
    return pc.binary_join_element_wise(pa.scalar(prefix), pc.cast(pa.array(numbers), pa.string()), "")


def _cents(values: np.ndarray, nulls: np.ndarray) -> pa.Array:
    units = pa.array(values.astype(np.int64), mask=nulls).cast(pa.decimal128(19, 0))
    return pc.multiply(units, pa.scalar(Decimal("0.01"), pa.decimal128(3, 2))).cast(pa.decimal128(12, 2))


def _write(out: Path, name: str, table: pa.Table) -> None:
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    for part, start in enumerate(range(0, max(table.num_rows, 1), ROWS_PER_FILE)):
        pq.write_table(table.slice(start, ROWS_PER_FILE), folder / f"part-{part:05d}.parquet")


def generate_score_inputs(out: Path, persons: int, orders: int, seed: int = 7,
                          as_of: date = date(2026, 6, 30)) -> dict[str, int]:
    """Write the five tables under ``out``; returns their row counts."""
    rng = np.random.default_rng(seed)
    person_numbers = np.arange(persons)
    has_shop_key = rng.random(persons) < 0.3
    registry = pa.table({
        "system": pa.array(["crm"] * persons + ["shop"] * int(has_shop_key.sum())),
        "source_key": pa.concat_arrays([_ids("C", person_numbers), _ids("E", person_numbers[has_shop_key])]),
        "person_id": pa.concat_arrays([_ids("P", person_numbers), _ids("P", person_numbers[has_shop_key])]),
    })
    store_numbers = np.arange(1, STORES + 1)
    stores = pa.table({"store_id": _ids("S", store_numbers[:-1]),
                       "name": pa.array([f"Tienda {n:02d}" for n in store_numbers[:-1]])})
    product_numbers = np.arange(PRODUCTS)
    categories = rng.choice(len(CATEGORIES), PRODUCTS)
    products = pa.table({"product_id": _ids("PR", product_numbers),
                         "category": pa.array([CATEGORIES[c] for c in categories],
                                              mask=rng.random(PRODUCTS) < 0.03)})

    # a skewed number of orders per person; about 8 % of persons order nothing at 5 orders per person
    buyer = np.minimum((persons * rng.random(orders) ** 2).astype(np.int64), persons - 1)
    channel_code = rng.choice(3, orders, p=[0.6, 0.3, 0.1])  # store, web, app
    web_with_shop_key = (channel_code == 1) & has_shop_key[buyer]
    store_number = np.where(channel_code == 0, rng.integers(1, STORES + 1, orders), 0)
    no_store = pa.array(rng.random(orders) < 0.005)
    store_ids = pc.if_else(no_store, pa.scalar(None, pa.string()),
                           pc.if_else(pa.array(store_number > 0), _ids("S", store_number), "W1"))
    seconds_back = rng.integers(-20 * 86400, 900 * 86400, orders)  # some orders after the as-of date
    late_evening = rng.random(orders) < 0.05
    midnight = datetime.combine(as_of, datetime.min.time(), UTC) + timedelta(days=1)
    base = (np.datetime64(midnight.replace(tzinfo=None), "s") - seconds_back.astype("timedelta64[s]"))
    day_start = base.astype("datetime64[D]").astype("datetime64[s]")
    in_last_two_hours = day_start + np.timedelta64(22 * 3600, "s") + rng.integers(0, 7200, orders).astype(
        "timedelta64[s]")
    order_ts = np.where(late_evening, in_last_two_hours, base)
    gross = rng.integers(100, 50_000, orders)
    gross = np.where(rng.random(orders) < 0.03, -gross, gross)       # refunds
    gross = np.where(rng.random(orders) < 0.01, 0, gross)            # zero-amount orders
    discount_rate = rng.choice([0.05, 0.1, 0.15, 0.2, 0.5], orders)
    discount = np.where((rng.random(orders) < 0.3) & (gross > 0), np.round(gross * discount_rate), 0)
    order_numbers = np.arange(orders)
    order_ids = _ids("O", order_numbers)
    orders_table = pa.table({
        "order_id": order_ids,
        "customer_source": pa.array(np.where(web_with_shop_key, "shop", "crm")),
        "customer_key": pc.if_else(pa.array(web_with_shop_key), _ids("E", buyer), _ids("C", buyer)),
        "store_id": store_ids,
        "channel": pa.array(np.array(["store", "web", "app"])[channel_code]),
        "order_ts": pa.array(order_ts.astype("datetime64[us]")).cast(pa.timestamp("us", tz="UTC")),
        "gross_amount": _cents(gross, rng.random(orders) < 0.005),
        "discount_amount": _cents(discount, rng.random(orders) < 0.01),
    })

    lines_per_order = rng.choice(5, orders, p=[0.05, 0.4, 0.3, 0.15, 0.1])
    line_orders = np.repeat(order_numbers, lines_per_order)
    lines = len(line_orders)
    product_of_line = rng.integers(0, PRODUCTS + 3, lines)  # a few unknown products
    items = pa.table({
        "order_id": pc.take(order_ids, pa.array(line_orders)),
        "product_id": _ids("PR", product_of_line),
        "quantity": pa.array(rng.integers(1, 6, lines).astype(np.int32), mask=rng.random(lines) < 0.01),
    })
    tables = {"orders": orders_table, "registry": registry, "stores": stores, "order_items": items,
              "products": products}
    for name, table in tables.items():
        _write(out, name, table)
    return {name: table.num_rows for name, table in tables.items()}
