"""Predictions as of a date: CLV, personas, product recommendations (docs/design.md §5).

Tables written (each overwritten per run; Delta versions keep earlier runs):
    gold.clv                      person_id, frequency, recency, T, monetary_value, probability_alive,
                                  predicted_purchases, expected_average_value, predicted_clv, as_of
    gold.clv_model                run_id, as_of, model (bgnbd | gamma_gamma), parameters (JSON)   append
    gold.person_personas          person_id, persona_id, persona_name, propensity, as_of
    gold.persona_model            persona_id, persona_name, persons, share, levels, cut_points, as_of, run_id
    gold.product_recommendations  person_id, rank, product_id, score, as_of
A model that cannot be fitted (too little data) fails the stage with the reason, unless it is disabled
in config (``predictions.<model>: null``).
"""

from __future__ import annotations

import json
import logging

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from cdp_spark.catalog import CLV, CLV_MODEL, PERSON_PERSONAS, PERSONA_MODEL, RECOMMENDATIONS, declared_schema
from cdp_spark.config import CdpConfig
from cdp_spark.pipelines.common import RunContext, StageError, record_manifest, stage
from cdp_spark.pipelines.score import purchase_facts
from cdp_spark.predict.clv import PredictionError, as_dict, customer_summary, fit_bgnbd, fit_gamma_gamma, predict
from cdp_spark.predict.personas import category_matrix, personas
from cdp_spark.predict.recommend import recommendations

log = logging.getLogger("cdp.predict")



def _write(ctx: RunContext, table: str, frame: DataFrame, mode: str = "overwrite") -> int:
    written = ctx.store.write(table, frame.withColumn("as_of", F.lit(ctx.as_of)), mode=mode)  # type: ignore[arg-type]
    ctx.wrote(table, written.version)
    return written.rows_written


def run_clv(spark: SparkSession, ctx: RunContext, cfg: CdpConfig, facts: DataFrame) -> int:
    settings = cfg.predictions.clv
    assert settings is not None
    summary = customer_summary(facts, ctx.as_of, settings.unit_days).persist()
    local: pd.DataFrame = summary.select("frequency", "recency", "T", "monetary_value").toPandas()
    try:
        bgnbd = fit_bgnbd(local["frequency"], local["recency"], local["T"], settings.min_customers,
                          settings.min_repeat_customers)
        gamma_gamma = fit_gamma_gamma(local["frequency"], local["monetary_value"], settings.min_repeat_customers)
    except PredictionError as exc:
        raise StageError(f"CLV: {exc} (set predictions.clv: null to skip CLV)") from None
    log.info("CLV fitted: BG/NBD %s; Gamma-Gamma %s", as_dict(bgnbd), as_dict(gamma_gamma))
    models = [(ctx.run_id, name, json.dumps(as_dict(model)), ctx.as_of)
              for name, model in (("bgnbd", bgnbd), ("gamma_gamma", gamma_gamma))]
    ctx.wrote(CLV_MODEL, ctx.store.append_rows(CLV_MODEL, models, declared_schema(CLV_MODEL)).version)
    rows = _write(ctx, CLV, predict(summary, bgnbd, gamma_gamma, settings.horizon_units, settings.discount_per_unit))
    summary.unpersist()
    return rows


def previous_personas(ctx: RunContext) -> dict[int, dict[str, float]] | None:
    if not ctx.exists(PERSONA_MODEL):
        return None
    return {int(r["persona_id"]): dict(r["share"]) for r in ctx.read(PERSONA_MODEL).collect()}


@stage
def run(spark: SparkSession, cfg: CdpConfig, ctx: RunContext) -> dict[str, int]:
    bought = purchase_facts(ctx, cfg)
    counts: dict[str, int] = {}
    if cfg.predictions.clv:
        counts["clv_persons"] = run_clv(spark, ctx, cfg, bought.facts)
    if cfg.predictions.personas:
        try:
            result = personas(spark, category_matrix(bought.categories), cfg.predictions.personas,
                              previous_personas(ctx))
        except PredictionError as exc:
            raise StageError(f"personas: {exc} (set predictions.personas: null to skip them)") from None
        _write(ctx, PERSONA_MODEL, result.model.withColumn("run_id", F.lit(ctx.run_id)))
        counts["persona_persons"] = _write(ctx, PERSON_PERSONAS, result.members)
        for frame in result.cached:
            frame.unpersist()
    if cfg.predictions.recommendations:
        cached: list[DataFrame] = []
        counts["recommendations"] = _write(ctx, RECOMMENDATIONS,
                                           recommendations(bought.facts, bought.lines, cfg.predictions.recommendations,
                                                           cached))
        for frame in cached:
            frame.unpersist()
    ctx.counts["predict"] = counts
    record_manifest(spark, ctx, "predict", "succeeded")
    log.info("predictions as of %s: %s", ctx.as_of, counts)
    return counts
