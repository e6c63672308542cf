"""Summaries for an overview: the evidence map and the headline answer."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from .analysis import AnalysisSpec, run_analysis
from .effects import EffectTable
from .models.results import clean
from .models.uni import MetaInputError

__all__ = ["evidence_map", "headline", "Headline"]

MAP_AXES = ("compression_family", "adversarial_training", "threat_model")


def evidence_map(results: pd.DataFrame, table: EffectTable | None = None, spec: AnalysisSpec | None = None) -> pd.DataFrame:
    """Compression family × adversarial training × threat model: number of results and studies per
    cell, and the cell's pooled effect under the default model (study / cluster / effect, CR2 by
    study). A direction is stated only from at least 3 studies; below that the cell says so (one or
    two studies cannot show what compression does in general). Cells mix attack families: the
    per-kind answer is :func:`metaanalysis.answer`."""
    counts = results.groupby(list(MAP_AXES)).agg(results=("study_id", "size"), studies=("study_id", "nunique")).reset_index()
    counts["pooled"] = np.nan
    counts["direction"] = "no effect sizes"
    spec = (spec or AnalysisSpec()).replace(component_tests=False, mods=None)
    if table is not None and len(table.effects):
        for i, row in counts.iterrows():
            g = table.effects
            g = g[(g["compression_family"] == row["compression_family"]) & (g["adversarial_training"] == row["adversarial_training"])
                  & (g["threat_model"] == row["threat_model"])]
            if len(g) < 2:
                continue
            n_st = g["study"].nunique()
            try:
                c = run_analysis(g.reset_index(drop=True), spec).fit.coefficients[0]
            except MetaInputError:
                continue
            counts.loc[i, "pooled"] = c.estimate
            if n_st < 3:
                counts.loc[i, "direction"] = f"not assessable with {n_st} stud{'y' if n_st == 1 else 'ies'}"
            else:
                counts.loc[i, "direction"] = "robustness up" if c.ci_low > 0 else "robustness down" if c.ci_high < 0 else "no clear change"
    return counts


@dataclass(frozen=True)
class Headline:
    """The pooled effect of the current filters under the default model, in words and numbers.
    ``ok`` is False (and ``text`` says why) when there is nothing to pool."""

    ok: bool
    text: str
    k: int
    n_studies: int = 0
    estimate: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    pi_low: float | None = None
    pi_high: float | None = None
    pval: float | None = None
    df: float | None = None
    test: str | None = None
    model: str | None = None
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return clean(asdict(self))


def _model_words(fit) -> str:
    if fit.model != "rma.mv":
        return f"{fit.method} random-effects model"
    return "multilevel model (" + " / ".join(name.split("/")[-1] for name in fit.sigma2) + ")"


def headline(table: EffectTable, spec: AnalysisSpec | None = None) -> Headline:
    """The pooled effect of the current filters with its uncertainty (default model: study / cluster /
    effect with CR2 by study). Evaluations of different kinds are pooled here as filtered: the per-question,
    per-kind answer is :func:`metaanalysis.answer`."""
    if len(table) < 2:
        return Headline(False, f"{len(table)} effect(s) under the current filters: too few to pool.", len(table))
    try:
        an = run_analysis(table, spec or AnalysisSpec())
    except MetaInputError as exc:
        return Headline(False, str(exc), len(table))
    c = an.fit.coefficients[0]
    word = "lower" if c.ci_high < 0 else "higher" if c.ci_low > 0 else "not clearly different"
    n_st = an.n_studies
    model = _model_words(an.fit)
    infer = f"CR2 by study, {c.df:.1f} df" if an.fit.test == "CR2" else f"t, {c.df:g} df" if c.df is not None else "z"
    text = (f"Compressed models' robust accuracy is {word} than their dense counterparts': {c.estimate:+.2f} pp "
            f"(95% CI {c.ci_low:+.2f} to {c.ci_high:+.2f}; {an.fit.k} effects from {n_st} stud{'y' if n_st == 1 else 'ies'}, {model}; {infer})")
    return Headline(True, text, an.fit.k, n_st, c.estimate, c.ci_low, c.ci_high, an.fit.pi_low, an.fit.pi_high, c.pval, c.df, an.fit.test,
                    an.fit.model, tuple(dict.fromkeys(an.notes + an.fit.notes)))
