"""Synthetic persons and the ways their source records differ (the demo generator's identity half).

Names are drawn from Spanish, French and English pools with Zipf-like frequencies (a few very common
names, a long tail), most Spanish customers carry two surnames, addresses are a street, a house number, a
postcode and a city. Some persons share a household: the same address, often a surname, sometimes a
phone or an e-mail, yet different people. A source record of a person differs from the person the way
real CRM exports do:
case and accents, nicknames, a typo anywhere in a name, e-mail or phone (insertion, deletion,
substitution or swap of adjacent characters), given name and surname swapped, a second surname dropped,
a birth date with a wrong digit, day and month swapped or a year off by one, street abbreviations, a move
to another address, and missing values. Every draw comes from the ``random.Random`` passed in.
"""

from __future__ import annotations

import random
import string
import unicodedata
from dataclasses import dataclass, field
from datetime import date, timedelta

GIVEN_F = ["María", "Carmen", "Ana", "Isabel", "Laura", "Lucía", "Marta", "Elena", "Cristina", "Paula", "Sara",
           "Sofía", "Raquel", "Pilar", "Rosa", "Teresa", "Beatriz", "Silvia", "Patricia", "Mercedes", "Julia",
           "Alba", "Irene", "Nuria", "Andrea", "Claudia", "Rocío", "Eva", "Alicia", "Inés", "Natalia", "Sonia",
           "Lorena", "Montserrat", "Noelia", "Victoria", "Esther", "Marina", "Begoña", "Ainhoa", "Carla",
           "Daniela", "Valeria", "Nerea", "Aitana", "Vera", "Olga", "Miriam", "Yolanda", "Gloria", "Amparo",
           "Chloé", "Camille", "Léa", "Manon", "Inès", "Émilie", "Juliette", "Margaux", "Élodie", "Aurélie",
           "Elizabeth", "Margaret", "Sarah", "Emily", "Jessica", "Hannah"]
GIVEN_M = ["Antonio", "José", "Manuel", "Francisco", "David", "Juan", "Javier", "Daniel", "Carlos", "Jesús",
           "Alejandro", "Miguel", "Rafael", "Pablo", "Pedro", "Ángel", "Sergio", "Fernando", "Jorge", "Luis",
           "Alberto", "Álvaro", "Diego", "Adrián", "Raúl", "Enrique", "Ramón", "Vicente", "Iván", "Rubén",
           "Óscar", "Andrés", "Joaquín", "Santiago", "Eduardo", "Víctor", "Roberto", "Jaime", "Mario", "Ignacio",
           "Hugo", "Martín", "Marcos", "Gonzalo", "Iker", "Unai", "Xavier", "Jordi", "Gabriel", "Tomás",
           "Sébastien", "Étienne", "Nicolas", "Julien", "Mathieu", "Guillaume", "François", "Thibault",
           "Robert", "William", "James", "Thomas", "Michael", "George"]
NICKNAMES = {"José": "Pepe", "Francisco": "Paco", "Manuel": "Manolo", "Antonio": "Toño", "Alejandro": "Álex",
             "Robert": "Bob", "William": "Bill", "Elizabeth": "Liz", "Margaret": "Maggie", "Isabel": "Isa",
             "Ignacio": "Nacho", "Enrique": "Quique", "Jesús": "Chus", "Dolores": "Lola", "Guillermo": "Guille",
             "Concepción": "Concha", "Rosario": "Charo", "Mercedes": "Merche", "Montserrat": "Montse",
             "Cristina": "Cris", "Fernando": "Fer", "Santiago": "Santi", "Nicolas": "Nico", "Thomas": "Tom",
             "Michael": "Mike", "James": "Jim"}
SURNAMES = ["García", "Rodríguez", "González", "Fernández", "López", "Martínez", "Sánchez", "Pérez", "Gómez",
            "Martín", "Jiménez", "Ruiz", "Hernández", "Díaz", "Moreno", "Muñoz", "Álvarez", "Romero", "Alonso",
            "Gutiérrez", "Navarro", "Torres", "Domínguez", "Vázquez", "Ramos", "Gil", "Ramírez", "Serrano",
            "Blanco", "Molina", "Morales", "Suárez", "Ortega", "Delgado", "Castro", "Ortiz", "Rubio", "Marín",
            "Sanz", "Núñez", "Iglesias", "Medina", "Garrido", "Cortés", "Castillo", "Santos", "Lozano",
            "Guerrero", "Cano", "Prieto", "Méndez", "Cruz", "Calvo", "Gallego", "Vidal", "León", "Márquez",
            "Herrera", "Peña", "Flores", "Cabrera", "Campos", "Vega", "Fuentes", "Carrasco", "Diez", "Caballero",
            "Reyes", "Nieto", "Aguilar", "Pascual", "Santana", "Herrero", "Lorenzo", "Montero", "Hidalgo",
            "Giménez", "Ibáñez", "Ferrer", "Durán", "Santiago", "Benítez", "Mora", "Vicente", "Vargas", "Arias",
            "Carmona", "Crespo", "Román", "Pastor", "Soto", "Sáez", "Velasco", "Moya", "Soler", "Parra",
            "Esteban", "Bravo", "Gallardo", "Rojas", "Pardo", "Merino", "Franco", "Espinosa", "Izquierdo",
            "Lara", "Rivas", "Silva", "Rivera", "Casado", "Arroyo", "Redondo", "Camacho", "Rey", "Vera", "Otero",
            "Luque", "Galán", "Montes", "Ríos", "Sierra", "Segura", "Carrillo", "Marcos", "Marti", "Soriano",
            "Mendoza", "Robles", "Bernal", "Vila", "Valero", "Palacios", "Pereira", "Macías", "Varela", "Benito",
            "Aguirre", "Etxeberria", "Goikoetxea", "Puig", "Roca", "Casals", "Pujol", "Ferrándiz", "Quintana",
            "Dubois", "Lefèvre", "Moreau", "Laurent", "Bernard", "Durand", "Lefebvre", "Fontaine", "Rousseau",
            "Girard", "Bonnet", "Mercier", "Faure", "Chevalier", "Smith", "Jones", "Taylor", "Brown", "Wilson"]
STREET_TYPES = [("Calle", "C/"), ("Avenida", "Avda."), ("Plaza", "Pza."), ("Paseo", "Pº"), ("Camino", "Cno."),
                ("Ronda", "Rda."), ("Travesía", "Trav.")]
STREET_NAMES = ["Mayor", "Real", "de la Constitución", "del Sol", "de Alcalá", "Gran Vía", "de la Paz",
                "San Juan", "de Cervantes", "de Goya", "Colón", "de la Libertad", "del Mar", "de los Olivos",
                "Nueva", "de Andalucía", "de Valencia", "del Carmen", "San Francisco", "de la Estación",
                "de la Iglesia", "de las Flores", "del Pilar", "Santa María", "de Castilla", "Miguel Hernández",
                "Antonio Machado", "Federico García Lorca", "Blasco Ibáñez", "de Sagasta", "de Velázquez",
                "de Serrano", "del Prado", "Ramón y Cajal", "Juan Carlos I", "de Europa", "de América",
                "del Río", "de la Fuente", "de las Huertas", "del Parque", "de la Ermita", "Doctor Fleming",
                "de la Rosa", "San Antonio", "San Vicente", "de Aragón", "de Cataluña", "de Navarra", "del Puerto"]
CITIES = [("28", "Madrid", 30), ("08", "Barcelona", 20), ("46", "Valencia", 10), ("41", "Sevilla", 8),
          ("50", "Zaragoza", 6), ("29", "Málaga", 6), ("48", "Bilbao", 5), ("15", "A Coruña", 4),
          ("07", "Palma", 4), ("35", "Las Palmas", 4), ("30", "Murcia", 4), ("03", "Alicante", 4),
          ("47", "Valladolid", 3), ("33", "Oviedo", 3), ("18", "Granada", 3), ("20", "San Sebastián", 3),
          ("31", "Pamplona", 2), ("39", "Santander", 2), ("37", "Salamanca", 2), ("10", "Cáceres", 1)]
DOMAINS = ["gmail.com", "hotmail.com", "yahoo.es", "outlook.com", "telefonica.net", "icloud.com", "gmail.com",
           "hotmail.es"]
LETTERS = string.ascii_lowercase


def strip_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def zipf_weights(n: int, exponent: float) -> list[float]:
    return [1.0 / (rank + 1) ** exponent for rank in range(n)]


@dataclass
class Address:
    street_type: int
    street: str
    house_number: str
    postcode: str
    city: str


@dataclass
class Person:
    pid: str
    given: str
    surname: str
    gender: str
    email: str
    phone: str  # 9 national digits, Spain
    birth: date
    address: Address
    favourite_categories: list[str]
    home_store: str
    records: dict[str, list[str]] = field(default_factory=dict)


class People:
    """Draws persons and their records' variations from one ``random.Random``."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.given_f = zipf_weights(len(GIVEN_F), 0.8)
        self.given_m = zipf_weights(len(GIVEN_M), 0.8)
        self.surnames = zipf_weights(len(SURNAMES), 0.6)
        self.streets = zipf_weights(len(STREET_NAMES), 0.5)
        self.cities = [w for _, _, w in CITIES]

    def address(self) -> Address:
        rng = self.rng
        prefix, city, _ = rng.choices(CITIES, weights=self.cities)[0]
        return Address(rng.randrange(len(STREET_TYPES)), rng.choices(STREET_NAMES, weights=self.streets)[0],
                       str(rng.randint(1, 150)), f"{prefix}{rng.randint(1, 80):03d}", city)

    def join_household(self, person: Person, head: Person) -> None:
        """``person`` moves in with ``head``: same address; often the same first surname (a child or a
        sibling), sometimes the household's landline phone or a shared e-mail. Two people, one address:
        what an address or a surname alone must not merge."""
        rng = self.rng
        person.address = head.address
        if rng.random() < 0.6:
            rest = person.surname.split(" ")[1:] if " " in person.surname else []
            person.surname = " ".join([head.surname.split(" ")[0], *rest])
        if rng.random() < 0.03:
            person.phone = head.phone
        if rng.random() < 0.01:
            person.email = head.email

    def person(self, pid: str, categories: list[str], stores: list[str]) -> Person:
        rng = self.rng
        female = rng.random() < 0.52
        given = rng.choices(GIVEN_F if female else GIVEN_M, weights=self.given_f if female else self.given_m)[0]
        first_surname = rng.choices(SURNAMES, weights=self.surnames)[0]
        # most Spanish customers carry two surnames
        surname = (f"{first_surname} {rng.choices(SURNAMES, weights=self.surnames)[0]}" if rng.random() < 0.7
                   else first_surname)
        local = rng.choice([f"{given}.{first_surname}", f"{given[0]}{first_surname}", f"{given}{first_surname}",
                            f"{first_surname}.{given}"])
        local = strip_accents(local).lower().replace(" ", "") + str(rng.randint(1, 9999))
        return Person(
            pid=pid, given=given, surname=surname, gender="F" if female else "M",
            email=f"{local}@{rng.choice(DOMAINS)}", phone=f"6{rng.randint(0, 99_999_999):08d}",
            birth=date(1945, 1, 1) + timedelta(days=rng.randint(0, 365 * 60)), address=self.address(),
            favourite_categories=rng.sample(categories, rng.choice([1, 1, 2, 3])), home_store=rng.choice(stores))

    # ---- variations ---------------------------------------------------------------------------
    def typo(self, text: str) -> str:
        """One edit anywhere: insertion, deletion, substitution or swap of two adjacent characters."""
        rng = self.rng
        if len(text) < 2:
            return text
        i = rng.randrange(len(text) - 1)
        kind = rng.random()
        if kind < 0.25:
            return text[:i] + rng.choice(LETTERS) + text[i:]
        if kind < 0.5:
            return text[:i] + text[i + 1:]
        if kind < 0.75:
            return text[:i] + rng.choice(LETTERS) + text[i + 1:]
        return text[:i] + text[i + 1] + text[i] + text[i + 2:]

    def digit_typo(self, digits: str) -> str:
        i = self.rng.randrange(len(digits))
        return digits[:i] + str((int(digits[i]) + self.rng.randint(1, 9)) % 10) + digits[i + 1:]

    def given_name(self, given: str) -> str:
        rng = self.rng
        roll = rng.random()
        if roll < 0.10 and given in NICKNAMES:
            return NICKNAMES[given]
        if roll < 0.25:
            given = strip_accents(given)
        elif roll < 0.31:
            given = given.upper()
        return self.typo(given) if rng.random() < 0.05 else given

    def surname(self, surname: str) -> str:
        rng = self.rng
        if " " in surname and rng.random() < 0.12:  # second surname left out
            surname = surname.split(" ")[0]
        roll = rng.random()
        if roll < 0.15:
            surname = strip_accents(surname)
        elif roll < 0.21:
            surname = surname.lower()
        return self.typo(surname) if rng.random() < 0.06 else surname

    def names(self, person: Person) -> tuple[str, str]:
        given, surname = self.given_name(person.given), self.surname(person.surname)
        return (surname, given) if self.rng.random() < 0.02 else (given, surname)

    def email(self, email: str) -> str:
        rng = self.rng
        if rng.random() < 0.02:
            local, domain = email.split("@")
            email = f"{self.typo(local)}@{domain}"
        roll = rng.random()
        if roll < 0.15:
            return email.upper()
        if roll < 0.25:
            return f"  {email.capitalize()} "
        return email

    def phone(self, phone: str) -> str:
        p = self.digit_typo(phone) if self.rng.random() < 0.02 else phone
        return self.rng.choice([p, f"+34{p}", f"+34 {p[:3]} {p[3:5]} {p[5:7]} {p[7:]}", f"0034{p}",
                                f"{p[:3]}-{p[3:6]}-{p[6:]}", f"({p[:3]}) {p[3:]}"])

    def birth_date(self, birth: date) -> str:
        rng = self.rng
        if rng.random() >= 0.04:
            return birth.isoformat()
        kind = rng.random()
        if kind < 0.4:  # a wrong digit (the result must still be a date)
            for _ in range(10):
                text = birth.strftime("%Y%m%d")
                changed = self.digit_typo(text)
                try:
                    return date(int(changed[:4]), int(changed[4:6]), int(changed[6:])).isoformat()
                except ValueError:
                    continue
            return birth.isoformat()
        if kind < 0.7 and birth.day <= 12:  # day and month swapped
            return date(birth.year, birth.day, birth.month).isoformat()
        try:
            return birth.replace(year=birth.year + rng.choice([-1, 1])).isoformat()
        except ValueError:  # 29 February
            return birth.isoformat()

    def address_of(self, person: Person) -> Address:
        """The person's address as a record has it: 8 % moved, 4 % a typo in the street, 2 % in the postcode."""
        rng = self.rng
        address = self.address() if rng.random() < 0.08 else person.address
        street = address.street
        if rng.random() < 0.04:
            street = self.typo(street)
        postcode = self.digit_typo(address.postcode) if rng.random() < 0.02 else address.postcode
        return Address(address.street_type, street, address.house_number, postcode, address.city)

    def street_text(self, address: Address) -> str:
        full, short = STREET_TYPES[address.street_type]
        kind = self.rng.random()
        prefix = short if kind < 0.3 else (full.upper() if kind < 0.35 else full)
        return f"{prefix} {address.street}"

    def maybe(self, value: str, missing_rate: float) -> str:
        return "" if self.rng.random() < missing_rate else value
