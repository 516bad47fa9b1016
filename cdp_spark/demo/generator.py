"""Seeded, scalable synthetic CDP sources with ground truth.

For ``--customers N`` true persons it writes, under ``--out``:

* ``crm/crm_contacts.csv``            CRM contacts, ``;``-separated, UTF-8 with BOM
* ``ecommerce/customers.jsonl``       e-commerce customers, JSON Lines
* ``loyalty/loyalty_members.csv``     loyalty members, ``|``-separated (also the JDBC demo table)
* ``orders/orders.csv``, ``order_items/order_items.csv``, ``products/products.csv``, ``stores/stores.csv``
* ``events/events.jsonl``             web/app events (page_view, product_view, add_to_cart, checkout,
                                      purchase) of e-commerce customers and of anonymous visitors
* ``../ground_truth/person_records.csv``  (source, source_key, true_person) for measuring resolution

The same person appears in several sources with realistic variations: e-mail case and spaces, phone
formats, nicknames, dropped accents, typos, missing fields, moved address. Orders point at a source
record (the e-commerce customer or the loyalty member), never at a person.
"""

from __future__ import annotations

import csv
import json
import random
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import click

GIVEN = ["María", "José", "Ana", "Francisco", "Lucía", "Javier", "Carmen", "Antonio", "Laura", "Manuel",
         "Isabel", "David", "Elena", "Pablo", "Marta", "Daniel", "Sofía", "Alejandro", "Paula", "Sergio",
         "Robert", "William", "Elizabeth", "Margaret", "Jean", "Sébastien", "Chloé", "Étienne", "Inés", "Raúl"]
NICKNAMES = {"José": "Pepe", "Francisco": "Paco", "Manuel": "Manolo", "Antonio": "Toño", "Alejandro": "Álex",
             "Robert": "Bob", "William": "Bill", "Elizabeth": "Liz", "Margaret": "Maggie", "Isabel": "Isa"}
SURNAMES = ["García", "Fernández", "González", "Rodríguez", "López", "Martínez", "Sánchez", "Pérez", "Gómez",
            "Martín", "Jiménez", "Ruiz", "Hernández", "Díaz", "Moreno", "Muñoz", "Álvarez", "Romero", "Alonso",
            "Gutiérrez", "Navarro", "Torres", "Domínguez", "Vázquez", "Ramos", "Gil", "Ramírez", "Serrano",
            "Blanco", "Molina", "Dubois", "Lefèvre", "Moreau", "Castillo", "Ortega", "Delgado", "Castro"]
CITIES = [("28001", "Madrid"), ("08001", "Barcelona"), ("46001", "Valencia"), ("41001", "Sevilla"),
          ("50001", "Zaragoza"), ("29001", "Málaga"), ("48001", "Bilbao"), ("15001", "A Coruña"),
          ("07001", "Palma"), ("35001", "Las Palmas")]
DOMAINS = ["gmail.com", "hotmail.com", "yahoo.es", "outlook.com", "telefonica.net", "icloud.com"]
CATEGORIES = ["Bebé y niño", "Hogar", "Huerto ECO", "Jardín y exterior", "Plantas", "Supermercado ECO"]
STORES = [("S01", "Madrid Centro", "Madrid", "store"), ("S02", "Barcelona Gràcia", "Barcelona", "store"),
          ("S03", "Valencia Ruzafa", "Valencia", "store"), ("S04", "Sevilla Triana", "Sevilla", "store"),
          ("S05", "Bilbao Indautxu", "Bilbao", "store"), ("W01", "Tienda online", None, "web"),
          ("A01", "App móvil", None, "app")]
REFERENCE_DATE = date(2026, 6, 30)


@dataclass
class Person:
    pid: str
    given: str
    surname: str
    email: str
    phone: str  # 9 national digits, Spain
    birth: date
    postcode: str
    city: str
    favourite_categories: list[str]
    home_store: str
    records: dict[str, list[str]] = field(default_factory=dict)


def strip_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


class Generator:
    def __init__(self, customers: int, seed: int, reference: date = REFERENCE_DATE,
                 orders_mean: float = 3.0) -> None:
        self.n = customers
        self.orders_mean = orders_mean
        # customers differ in basket size (drawn apart so the main stream, and every other value, is unchanged)
        self.basket_rng = random.Random(seed * 7919 + 1)
        self.rng = random.Random(seed)
        self.reference = reference

    # ---- persons and their source records ---------------------------------------------------
    def postcode_in(self, city_index: int) -> tuple[str, str]:
        base, city = CITIES[city_index]
        return f"{base[:2]}{self.rng.randint(1, 80):03d}", city

    def person(self, index: int) -> Person:
        rng = self.rng
        given = rng.choice(GIVEN)
        first_surname = rng.choice(SURNAMES)
        # most Spanish customers carry two surnames
        surname = f"{first_surname} {rng.choice(SURNAMES)}" if rng.random() < 0.7 else first_surname
        local = f"{strip_accents(given).lower()}.{strip_accents(first_surname).lower()}{rng.randint(1, 9999)}"
        postcode, city = self.postcode_in(rng.randrange(len(CITIES)))
        return Person(
            pid=f"T{index:07d}", given=given, surname=surname, email=f"{local}@{rng.choice(DOMAINS)}",
            phone=f"6{rng.randint(0, 99_999_999):08d}",
            birth=date(1950, 1, 1) + timedelta(days=rng.randint(0, 365 * 55)),
            postcode=postcode, city=city,
            favourite_categories=rng.sample(CATEGORIES, rng.choice([1, 1, 2, 3])),
            home_store=rng.choice(STORES[:5])[0],
        )

    def vary_email(self, email: str) -> str:
        rng = self.rng
        roll = rng.random()
        if roll < 0.15:
            return email.upper()
        if roll < 0.25:
            return f"  {email.capitalize()} "
        return email

    def vary_phone(self, phone: str) -> str:
        p = phone
        return self.rng.choice([p, f"+34{p}", f"+34 {p[:3]} {p[3:5]} {p[5:7]} {p[7:]}", f"0034{p}",
                                f"{p[:3]}-{p[3:6]}-{p[6:]}", f"({p[:3]}) {p[3:]}"])

    def vary_given(self, given: str) -> str:
        rng = self.rng
        roll = rng.random()
        if roll < 0.12 and given in NICKNAMES:
            return NICKNAMES[given]
        if roll < 0.25:
            return strip_accents(given)
        if roll < 0.32:
            return given.upper()
        return given

    def vary_surname(self, surname: str) -> str:
        rng = self.rng
        roll = rng.random()
        if roll < 0.06 and len(surname) > 3:  # adjacent letters swapped
            i = rng.randint(1, len(surname) - 2)
            return surname[:i] + surname[i + 1] + surname[i] + surname[i + 2:]
        if roll < 0.2:
            return strip_accents(surname)
        if roll < 0.26:
            return surname.lower()
        return surname

    def maybe(self, value: str, missing_rate: float) -> str:
        return "" if self.rng.random() < missing_rate else value

    def address(self, person: Person) -> tuple[str, str]:
        if self.rng.random() < 0.08:  # moved
            return self.postcode_in(self.rng.randrange(len(CITIES)))
        return person.postcode, person.city

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
                    postcode, city = self.address(person)
                    email = self.maybe(self.vary_email(person.email), 0.08)
                    phone = self.maybe(self.vary_phone(person.phone), 0.15)
                    updated = self.ts_before(900).isoformat().replace("+00:00", "Z")
                    given, surname = self.vary_given(person.given), self.vary_surname(person.surname)
                    if source == "crm":
                        crm_rows.append([key, given, surname, email, phone,
                                         self.maybe(person.birth.isoformat(), 0.3), postcode, city, "ES",
                                         rng.choice(["true", "false"]), updated])
                    elif source == "ecommerce":
                        record: dict[str, object] = {"customer_id": key, "first_name": given, "last_name": surname,
                                                     "email": email or None, "phone": phone or None,
                                                     "postcode": postcode, "city": city, "country": "ES",
                                                     "created_at": self.ts_before(1200).isoformat().replace(
                                                         "+00:00", "Z"), "updated_at": updated}
                        shop_rows.append(record)
                    else:
                        loyalty_rows.append([key, given, surname, email, phone,
                                             self.maybe(person.birth.isoformat(), 0.2),
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
                  ["contact_id", "first_name", "last_name", "email", "phone", "birth_date", "postcode", "city",
                   "country", "opt_in", "updated_at"], crm_rows)
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
