"""The Overview's per-question answers as display tables, read from :func:`metaanalysis.answer`.

The answers themselves (per question and per evaluation kind: pooled effect with CI and
prediction interval, studies, leave-one-study-out range, verdict) are computed once by
``metaanalysis.answer`` — the same call as ``crev meta answer`` — in :mod:`ui.state`'s background
worker. This module only turns those typed objects into text tables with units ("–" where a value
is missing, "p < 0.001" style), the share of a question's effects that rests on one study, and the
share that rests on high-risk evaluations (``KindAnswer.n_high_risk``, with the pooled change refitted
without them where ``metaanalysis.answer`` could).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

import metaanalysis as ma
from ui import labels

__all__ = ["Concentration", "concentration", "kind_table", "per_study_table"]


@dataclass(frozen=True)
class Concentration:
    """How many of a question's effects come from its largest study (summed over evaluation kinds)."""

    study: str
    k_study: int
    k_total: int

    @property
    def text(self) -> str:
        return (f"{self.k_study:,} of {self.k_total:,} effects ({labels.share(self.k_study, self.k_total)}) come from one study "
                f"({self.study})")


def concentration(qa: ma.QuestionAnswer) -> Concentration | None:
    """The largest study's effects over the question's effects, from the per-study estimates."""
    per: dict[str, int] = {}
    for ka in qa.kinds:
        for s in ka.per_study:
            per[s.study] = per.get(s.study, 0) + s.k
    total = sum(ka.k for ka in qa.kinds)
    if not per or not total:
        return None
    study = max(per, key=lambda s: (per[s], s))
    return Concentration(study, per[study], total)


def _num(x, unit: str) -> str:
    return labels.num(x, 1 if unit == "pp" else 2, unit, signed=True)


def _range(lo, hi, unit: str) -> str:
    if lo is None or hi is None:
        return labels.MISSING
    d = 1 if unit == "pp" else 2
    return f"{lo:+.{d}f} to {hi:+.{d}f} {unit}"


def _high_risk(ka: ma.KindAnswer) -> str:
    if ka.n_high_risk is None:
        return labels.MISSING
    return f"{ka.n_high_risk:,} ({labels.share(ka.n_high_risk, ka.k)})"


def _without_high_risk(ka: ma.KindAnswer) -> str:
    """The pooled change on the low-risk effects alone, or why there is none ("–" where the kind has
    no pooled number or no high-risk effect)."""
    w = ka.without_high_risk
    if w is not None:
        return f"{_num(w.estimate, ka.unit)} ({_range(w.ci_low, w.ci_high, ka.unit)}; {w.n_studies} studies)"
    return ka.without_high_risk_note or labels.MISSING


def kind_table(qa: ma.QuestionAnswer) -> pd.DataFrame:
    """One row per evaluation kind, as text (so a missing value reads "–", never "None")."""
    rows = []
    for ka in qa.kinds:
        u = ka.unit
        rows.append({"evaluation kind": ka.kind.label,
                     "pooled change": _num(ka.estimate, u),
                     "95% CI": _range(ka.ci_low, ka.ci_high, u),
                     "95% PI (a new setting)": _range(ka.pi_low, ka.pi_high, u),
                     "p": labels.pval(ka.pval) if ka.pval is not None else labels.MISSING,
                     "studies": f"{ka.n_studies:,}", "effects": f"{ka.k:,}",
                     "high-risk effects": _high_risk(ka),
                     "leave-one-study-out": _range(ka.loo_low, ka.loo_high, u),
                     "without high-risk effects (95% CI)": _without_high_risk(ka),
                     "verdict": ka.verdict})
    return pd.DataFrame(rows)


def per_study_table(qa: ma.QuestionAnswer) -> pd.DataFrame:
    """Each study's own estimate in every evaluation kind that has no pooled number."""
    rows = []
    for ka in qa.kinds:
        if ka.estimable:
            continue
        for s in ka.per_study:
            rows.append({"evaluation kind": ka.kind.label, "study": s.study, "effects": f"{s.k:,}",
                         "estimate": _num(s.estimate, ka.unit), "95% CI": _range(s.ci_low, s.ci_high, ka.unit)})
    return pd.DataFrame(rows)
