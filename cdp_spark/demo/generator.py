"""Seeded, scalable synthetic CDP sources with ground truth.

For ``--customers N`` true persons it writes, under ``--out``:

* ``crm/crm_contacts.csv``            CRM contacts, ``;``-separated, UTF-8 with BOM
* ``ecommerce/customers.jsonl``       e-commerce customers, JSON Lines
* ``loyalty/loyalty_members.csv``     loyalty members, ``|``-separated (also the JDBC demo table)
* ``orders/orders.csv``, ``order_items/order_items.csv``, ``products/products.csv``, ``stores/stores.csv``
* ``events/events.jsonl``             web/app events (page_view, product_view, add_to_cart, checkout,
                                      purchase) of e-commerce customers and of anonymous visitors
* ``../ground_truth/person_records.csv``  (source, source_key, true_person) for measuring resolution

The same person appears in several sources with the variations of ``cdp_spark.demo.people``: case and
accents, nicknames, typos anywhere, swapped names, dropped second surnames, birth-date typos, street
abbreviations, moves and missing values. Orders point at a source record (the e-commerce customer or
the loyalty member), never at a person.
"""

from __future__ import annotations

import csv
import json
import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import click

from cdp_spark.demo.people import People, Person

CATEGORIES = ["Bebé y niño", "Hogar", "Huerto ECO", "Jardín y exterior", "Plantas", "Supermercado ECO"]
STORES = [("S01", "Madrid Centro", "Madrid", "store"), ("S02", "Barcelona Gràcia", "Barcelona", "store"),
          ("S03", "Valencia Ruzafa", "Valencia", "store"), ("S04", "Sevilla Triana", "Sevilla", "store"),
          ("S05", "Bilbao Indautxu", "Bilbao", "store"), ("W01", "Tienda online", None, "web"),
          ("A01", "App móvil", None, "app")]
REFERENCE_DATE = date(2026, 6, 30)


class Generator:
    def __init__(self, customers: int, seed: int, reference: date = REFERENCE_DATE,
                 orders_mean: float = 3.0) -> None:
        self.n = customers
        self.orders_mean = orders_mean
        # customers differ in basket size (drawn apart so the main stream, and every other value, is unchanged)
        self.basket_rng = random.Random(seed * 7919 + 1)
        self.rng = random.Random(seed)
        self.people = People(self.rng)
        self.reference = reference

    def person(self, index: int) -> Person:
        return self.people.person(f"T{index:07d}", CATEGORIES, [s[0] for s in STORES[:5]])

    def ts_before(self, days: int) -> datetime:
        start = datetime.combine(self.reference, datetime.min.time(), tzinfo=UTC) - timedelta(days=days)
        return start + timedelta(seconds=self.rng.randint(0, days * 86_400))

    # ---- writers -----------------------------------------------------------------------------
    def events(self, persons: list[Person], products: list[list[str]]) -> list[dict[str, object]]:
        """Sessions that go down the funnel page_view > product_view > add_to_cart > checkout > purchase,
        each step less likely; a quarter of the sessions are anonymous (no customer key)."""
        rng = self.rng
        rows: list[dict[str, object]] = []
        shoppers = [p for p in persons if p.records.get("ecommerce")]
        anonymous = max(1, len(shoppers) // 3)
        for number in range(len(shoppers) + anonymous):
            person = shoppers[number] if number < len(shoppers) else None
            sessions = min(int(rng.expovariate(1 / 2.5)) + 1, 12)
            for session in range(sessions):
                session_id = f"s{number:07d}-{session:02d}"
                start = self.ts_before(365)
                steps = ["page_view"]
                for step, chance in (("product_view", 0.75), ("add_to_cart", 0.45), ("checkout", 0.6),
                                     ("purchase", 0.75)):
                    if rng.random() >= chance:
                        break
                    steps.append(step)
                product = rng.choice(products)[0]
                for position, step in enumerate(steps):
                    rows.append({
                        "event_id": f"{session_id}-{position}", "session_id": session_id,
                        "customer_source": "ecommerce" if person else None,
                        "customer_key": person.records["ecommerce"][0] if person else None,
                        "anonymous_id": None if person else f"anon-{number:07d}",
                        "event_type": step, "product_id": None if step == "page_view" else product,
                        "event_ts": (start + timedelta(minutes=3 * position)).isoformat().replace("+00:00", "Z")})
        return rows

    def run(self, out: Path, truth_path: Path, with_events: bool = True) -> dict[str, int]:
        rng = self.rng
        persons = [self.person(i) for i in range(self.n)]
        for index in range(1, len(persons)):  # about one person in seven shares an earlier person's household
            if rng.random() < 0.15:
                self.people.join_household(persons[index], persons[rng.randrange(index)])
        crm_rows: list[list[str]] = []
        shop_rows: list[dict[str, object]] = []
        loyalty_rows: list[list[str]] = []
        truth: list[list[str]] = []
        next_id = {"crm": 1, "ecommerce": 1, "loyalty": 1}

        def new_key(source: str) -> str:
            prefix = {"crm": "C", "ecommerce": "E", "loyalty": "L"}[source]
            key = f"{prefix}{next_id[source]:08d}"
            next_id[source] += 1
            return key

        for person in persons:
            in_crm = rng.random() < 0.7
            in_shop = rng.random() < 0.6
            in_loyalty = rng.random() < 0.4
            if not (in_crm or in_shop or in_loyalty):
                in_crm = True
            copies = {"crm": (2 if rng.random() < 0.05 else 1) if in_crm else 0,
                      "ecommerce": 1 if in_shop else 0, "loyalty": 1 if in_loyalty else 0}
            for source, count in copies.items():
                for _ in range(count):
                    key = new_key(source)
                    person.records.setdefault(source, []).append(key)
                    truth.append([source, key, person.pid])
                    people = self.people
                    address = people.address_of(person)
                    street = people.maybe(people.street_text(address), 0.05)
                    house_number = people.maybe(address.house_number, 0.06)
                    # e-commerce accounts are keyed by their e-mail; a loyalty card needs an e-mail or a phone
                    email = people.email(person.email) if source == "ecommerce" else people.maybe(
                        people.email(person.email), 0.08)
                    phone = people.maybe(people.phone(person.phone), 0.15)
                    if source == "loyalty" and not email and not phone:
                        phone = people.phone(person.phone)
                    updated = self.ts_before(900).isoformat().replace("+00:00", "Z")
                    given, surname = people.names(person)
                    given, surname = people.maybe(given, 0.02), people.maybe(surname, 0.01)
                    if source == "crm":
                        crm_rows.append([key, given, surname, email, phone,
                                         people.maybe(people.birth_date(person.birth), 0.3),
                                         people.maybe(person.gender, 0.2), street, house_number,
                                         address.postcode, address.city, "ES", rng.choice(["true", "false"]),
                                         updated])
                    elif source == "ecommerce":
                        record: dict[str, object] = {"customer_id": key, "first_name": given or None,
                                                     "last_name": surname or None, "email": email or None,
                                                     "phone": phone or None, "street": street or None,
                                                     "house_number": house_number or None,
                                                     "postcode": address.postcode, "city": address.city,
                                                     "country": "ES",
                                                     "created_at": self.ts_before(1200).isoformat().replace(
                                                         "+00:00", "Z"), "updated_at": updated}
                        shop_rows.append(record)
                    else:
                        loyalty_rows.append([key, given, surname, email, phone,
                                             people.maybe(people.birth_date(person.birth), 0.2),
                                             str(rng.randint(0, 5000)), rng.choice(["bronze", "silver", "gold"]),
                                             updated])

        products = []
        for i in range(1, 121):
            category = CATEGORIES[(i - 1) % len(CATEGORIES)]
            products.append([f"P{i:04d}", f"{category} item {i}", category, f"{rng.uniform(2, 80):.2f}"])
        by_category: dict[str, list[list[str]]] = {}
        for product in products:
            by_category.setdefault(product[2], []).append(product)

        orders, items = [], []
        order_no = 1
        for person in persons:
            basket = 0.5 + self.basket_rng.gammavariate(2.0, 0.75)
            n_orders = min(int(rng.expovariate(1 / self.orders_mean)), 25) if rng.random() < 0.85 else 0
            for _ in range(n_orders):
                channel = rng.choices(["store", "web", "app"], weights=[5, 4, 1])[0]
                if channel == "store":
                    refs = person.records.get("loyalty") or person.records.get("crm")
                    source = "loyalty" if person.records.get("loyalty") else "crm"
                    store_id = person.home_store if rng.random() < 0.8 else rng.choice(STORES[:5])[0]
                else:
                    refs = person.records.get("ecommerce")
                    source = "ecommerce"
                    store_id = "W01" if channel == "web" else "A01"
                if not refs:
                    continue
                order_id = f"O{order_no:09d}"
                order_no += 1
                ts = self.ts_before(1000)
                gross = 0.0
                for line in range(1, rng.randint(1, 4) + 1):
                    pool = by_category[rng.choice(person.favourite_categories)] if rng.random() < 0.8 else products
                    product = rng.choice(pool)
                    qty = max(1, round(rng.randint(1, 3) * basket))
                    gross += qty * float(product[3])
                    items.append([order_id, str(line), product[0], str(qty), product[3]])
                discount = round(gross * rng.choice([0.1, 0.15, 0.2]), 2) if rng.random() < 0.3 else 0.0
                status = "completed"
                if rng.random() < 0.03:
                    status, gross, discount = "refund", -gross, 0.0
                orders.append([order_id, source, rng.choice(refs), store_id, channel,
                               ts.isoformat().replace("+00:00", "Z"), f"{gross:.2f}", f"{discount:.2f}", "EUR",
                               status])

        self._csv(out / "crm" / "crm_contacts.csv", ";", "utf-8-sig",
                  ["contact_id", "first_name", "last_name", "email", "phone", "birth_date", "gender", "street",
                   "house_number", "postcode", "city", "country", "opt_in", "updated_at"], crm_rows)
        self._jsonl(out / "ecommerce" / "customers.jsonl", shop_rows)
        self._csv(out / "loyalty" / "loyalty_members.csv", "|", "utf-8",
                  ["loyalty_id", "first_name", "last_name", "email", "phone", "birth_date", "loyalty_points",
                   "tier", "updated_at"], loyalty_rows)
        self._csv(out / "products" / "products.csv", ",", "utf-8",
                  ["product_id", "name", "category", "list_price"], products)
        self._csv(out / "stores" / "stores.csv", ",", "utf-8", ["store_id", "name", "city", "channel"],
                  [[s, n, c or "", ch] for s, n, c, ch in STORES])
        self._csv(out / "orders" / "orders.csv", ",", "utf-8",
                  ["order_id", "customer_source", "customer_key", "store_id", "channel", "order_ts",
                   "gross_amount", "discount_amount", "currency", "status"], orders)
        self._csv(out / "order_items" / "order_items.csv", ",", "utf-8",
                  ["order_id", "line_no", "product_id", "quantity", "unit_price"], items)
        self._csv(truth_path, ",", "utf-8", ["source", "source_key", "true_person"], truth)
        events = self.events(persons, products) if with_events else []
        if with_events:
            self._jsonl(out / "events" / "events.jsonl", events)
        return {"events": len(events), "persons": len(persons), "crm_contacts": len(crm_rows),
                "ecommerce_customers": len(shop_rows), "loyalty_members": len(loyalty_rows), "orders": len(orders),
                "order_items": len(items), "products": len(products), "stores": len(STORES)}

    @staticmethod
    def _csv(path: Path, sep: str, encoding: str, header: list[str], rows: list[list[str]]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding=encoding, newline="") as handle:
            writer = csv.writer(handle, delimiter=sep, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(rows)

    @staticmethod
    def _jsonl(path: Path, rows: list[dict[str, object]]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def generate(out: Path, customers: int, seed: int = 42, truth_path: Path | None = None,
             with_events: bool = True, orders_mean: float = 3.0) -> dict[str, int]:
    """Writes the demo landing files under ``out`` and returns row counts per file (events last, so the
    other files are the same with or without them). ``orders_mean`` is the mean of the exponential draw of
    a buyer's number of orders (capped at 25; 15 % of persons never order)."""
    truth = truth_path or out.parent / "ground_truth" / "person_records.csv"
    return Generator(customers, seed, orders_mean=orders_mean).run(out, truth, with_events)


@click.command()
@click.option("--customers", default=2000, show_default=True, help="number of true persons")
@click.option("--seed", default=42, show_default=True)
@click.option("--out", default="data/landing", show_default=True, type=click.Path(path_type=Path))
def main(customers: int, seed: int, out: Path) -> None:
    """Generates the demo landing files and the ground truth."""
    counts = generate(out, customers, seed)
    click.echo(f"demo data in {out}: " + ", ".join(f"{k}={v}" for k, v in counts.items()))


if __name__ == "__main__":
    main()
