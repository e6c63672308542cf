"""Summaries for an overview: the evidence map and the headline answer."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .analysis import AnalysisSpec, run_analysis
from .effects import EffectTable
from .uni import MetaInputError, rma_uni

__all__ = ["evidence_map", "headline"]

MAP_AXES = ("compression_family", "adversarial_training", "threat_model")


def evidence_map(results: pd.DataFrame, table: EffectTable | None = None) -> pd.DataFrame:
    """Compression family × adversarial training × threat model: number of results and studies per
    cell, and where the cell has at least two effects, their pooled direction (random effects by
    REML over the cell's effects; with several effects per study this is descriptive, not inference)."""
    counts = results.groupby(list(MAP_AXES)).agg(results=("study_id", "size"), studies=("study_id", "nunique")).reset_index()
    counts["pooled"] = np.nan
    counts["direction"] = "no effect sizes"
    if table is not None and len(table.effects):
        for i, row in counts.iterrows():
            g = table.effects
            g = g[(g["compression_family"] == row["compression_family"]) & (g["adversarial_training"] == row["adversarial_training"])
                  & (g["threat_model"] == row["threat_model"])]
            if len(g) < 2:
                continue
            try:
                f = rma_uni(g["yi"], g["vi"], method="REML")
            except MetaInputError:
                continue
            c = f.coefficients[0]
            counts.loc[i, "pooled"] = c.estimate
            counts.loc[i, "direction"] = "robustness up" if c.ci_low > 0 else "robustness down" if c.ci_high < 0 else "no clear change"
    return counts


def headline(table: EffectTable, spec: AnalysisSpec | None = None) -> dict:
    """The pooled effect of the current filters with its uncertainty, in words and numbers."""
    if len(table) < 2:
        return {"ok": False, "text": f"{len(table)} effect(s) under the current filters: too few to pool.", "k": len(table)}
    try:
        an = run_analysis(table, spec or AnalysisSpec())
    except MetaInputError as exc:
        return {"ok": False, "text": str(exc), "k": len(table)}
    c = an.fit.coefficients[0]
    word = "lower" if c.ci_high < 0 else "higher" if c.ci_low > 0 else "not clearly different"
    n_st = int(an.effects["study"].nunique())
    levels = len(an.fit.sigma2)
    model = ("three-level model (effects within clusters within studies)" if levels == 2 and "study" in an.fit.sigma2
             else "multilevel model over one study's clusters" if "cluster" in an.fit.sigma2
             else "two-level model (effects within studies)" if an.fit.model == "rma.mv" else f"{an.fit.method} random-effects model")
    return {"ok": True, "estimate": c.estimate, "ci_low": c.ci_low, "ci_high": c.ci_high, "pi_low": an.fit.pi_low, "pi_high": an.fit.pi_high,
            "pval": c.pval, "k": an.fit.k, "n_studies": n_st, "model": an.fit.model, "notes": an.notes,
            "text": (f"Compressed models' robust accuracy is {word} than their dense counterparts': {c.estimate:+.2f} pp "
                     f"(95% CI {c.ci_low:+.2f} to {c.ci_high:+.2f}; {an.fit.k} effects from {n_st} stud{'y' if n_st == 1 else 'ies'}, {model})")}
