"""Sensitivity analyses of the default model: without high-risk evaluations, with each rigour
component as a moderator, and over the assumed correlation of dense and compressed accuracies.

References: Carlini N et al. (2019) for the rigour components (see :mod:`metaanalysis.rigour`);
Holm S (1979) for the adjusted p-values (statsmodels ``multipletests``); the paired variance bound
follows from p10 + p01 >= |p01 - p10| (see :mod:`metaanalysis.effects`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .analysis import Analysis, AnalysisSpec, run_analysis
from .effects import EffectMeasure, EffectTable, binomial_variance
from .models.uni import MetaInputError

__all__ = ["Sensitivity", "rigour_sensitivity", "RigourModerators", "rigour_moderators", "CorrelationSensitivity", "correlation_sensitivity",
           "RHO_SWEEP"]

RHO_SWEEP = (0.0, 0.5, 0.8, 0.9)


@dataclass
class Sensitivity:
    """The same analysis on all effects and without the high-risk ones."""

    all: Analysis
    low_risk: Analysis | None
    n_high_risk: int
    note: str = ""

    def to_frame(self) -> pd.DataFrame:
        rows = []
        for label, an in (("all effects", self.all), ("without high-risk effects", self.low_risk)):
            if an is None:
                rows.append({"analysis": label, "k": 0})
                continue
            c = an.fit.coefficients[0]
            rows.append({"analysis": label, "k": an.fit.k, "n_studies": an.effects["study"].nunique(), "estimate": c.estimate, "se": c.se,
                         "ci_low": c.ci_low, "ci_high": c.ci_high, "pval": c.pval})
        return pd.DataFrame(rows)

    def summary(self) -> str:
        return self.to_frame().to_string(index=False, float_format=lambda x: f"{x:.3f}") + (f"\n{self.note}" if self.note else "")


def rigour_sensitivity(table: EffectTable, spec: AnalysisSpec | None = None) -> Sensitivity:
    spec = spec or AnalysisSpec()
    full = run_analysis(table, spec)
    low = table.effects[~table.effects["high_risk"].astype(bool)]
    n_high = int(len(table.effects) - len(low))
    if len(low) < 2:
        return Sensitivity(full, None, n_high, "fewer than 2 low-risk effects: the analysis cannot be repeated without the high-risk ones")
    try:
        sub = run_analysis(EffectTable(low.reset_index(drop=True), table.excluded, table.settings, table.notes), spec)
    except MetaInputError as exc:
        return Sensitivity(full, None, n_high, f"without the high-risk effects the model cannot be fitted: {exc}")
    return Sensitivity(full, sub, n_high)


@dataclass
class CorrelationSensitivity:
    """The default analysis under several correlations ρ of the dense and compressed accuracies
    (rows without discordant counts; rows with them keep their exact paired variance). The variance
    never falls below |Δ|(1 − |Δ|)/n, the least a difference Δ allows."""

    rows: pd.DataFrame
    n_paired: int
    n_floor: int

    def to_frame(self) -> pd.DataFrame:
        return self.rows

    def summary(self) -> str:
        return (f"sensitivity to the assumed correlation of dense and compressed accuracies ({self.n_paired} effects use exact paired "
                f"counts and do not change; {self.n_floor} floor rows with both models at or below chance):\n"
                + self.rows.to_string(index=False, float_format=lambda x: f"{x:.2f}"))


def correlation_sensitivity(table: EffectTable, spec: AnalysisSpec | None = None, rhos=RHO_SWEEP) -> CorrelationSensitivity:
    """Refit the analysis with vi recomputed for each ρ (``delta_robust`` only)."""
    if table.settings.measure != EffectMeasure.delta_robust:
        raise MetaInputError("the correlation sweep applies to delta_robust (difference of accuracies)")
    spec = (spec or AnalysisSpec()).replace(component_tests=False)
    e = table.effects
    n = e["n_test"].to_numpy(float)
    rd, rc = e["robust_acc_dense"].to_numpy(float) / 100, e["robust_acc_compressed"].to_numpy(float) / 100
    vd, _ = binomial_variance(rd, n)
    vc, _ = binomial_variance(rc, n)
    d = np.abs(rc - rd)
    paired = e["paired_variance"].to_numpy(bool) if "paired_variance" in e else np.zeros(len(e), bool)
    rows = []
    for rho in rhos:
        vi = np.where(paired, e["vi"].to_numpy(float), 1e4 * np.maximum(vd + vc - 2 * rho * np.sqrt(vd * vc), d * (1 - d) / n))
        an = run_analysis(EffectTable(e.assign(vi=vi), table.excluded, table.settings, table.notes), spec)
        c = an.fit.coefficients[0]
        rows.append({"rho": rho, "k": an.fit.k, "estimate": c.estimate, "se": c.se, "ci_low": c.ci_low, "ci_high": c.ci_high,
                     "pi_low": an.fit.pi_low, "pi_high": an.fit.pi_high, "df": c.df,
                     "sum_sigma2": float(sum(an.fit.sigma2.values())) if an.fit.sigma2 else an.fit.tau2})
    n_floor = int(e["floor"].sum()) if "floor" in e else 0
    return CorrelationSensitivity(pd.DataFrame(rows), int(paired.sum()), n_floor)


@dataclass
class RigourModerators:
    """Each rigour component (and the high-risk flag) as the only moderator of the default model:
    does the pooled effect differ with how the robustness was evaluated? (one fit per component)."""

    rows: pd.DataFrame  # component, levels, k, coefficient (1 vs 0), se, ci, p, df, Holm-adjusted p
    notes: list[str] = field(default_factory=list)

    def to_frame(self) -> pd.DataFrame:
        return self.rows

    def summary(self) -> str:
        return ("rigour components as moderators (difference in pooled effect, higher-rigour minus lower):\n"
                + self.rows.to_string(index=False, float_format=lambda x: f"{x:.3g}") + "".join(f"\nnote: {n}" for n in self.notes))


def rigour_moderators(table: EffectTable, spec: AnalysisSpec | None = None) -> RigourModerators:
    from .rigour import RIGOUR_COMPONENTS

    spec = (spec or AnalysisSpec()).replace(component_tests=False)
    rows, notes = [], []
    for comp in (*RIGOUR_COMPONENTS, "high_risk"):
        e = table.effects
        if comp not in e or e[comp].nunique() < 2:
            notes.append(f"{comp}: one value among the effects, not a moderator here")
            continue
        col = e[comp].astype(int).astype(float) if comp != "attack_strength" else e[comp].astype(float)
        per_level = e.groupby(col)["study"].nunique()
        if (per_level >= 2).sum() < 2:
            notes.append(f"{comp}: its levels are spread over too few studies ({', '.join(f'{lv:g}: {n}' for lv, n in per_level.items())} "
                         "studies): not assessable as a moderator with study-level inference")
            continue
        try:
            an = run_analysis(EffectTable(e.assign(**{comp: col}), table.excluded, table.settings, table.notes), spec.replace(mods=comp))
        except MetaInputError as exc:
            notes.append(f"{comp}: {exc}")
            continue
        c = an.fit.coef(comp)
        rows.append({"component": comp, "levels": int(e[comp].nunique()), "k": an.fit.k, "coefficient": c.estimate, "se": c.se,
                     "ci_low": c.ci_low, "ci_high": c.ci_high, "pval": c.pval, "df": c.df, "test": an.fit.test})
    out = pd.DataFrame(rows)
    if len(out):
        from statsmodels.stats.multitest import multipletests

        out["pval_holm"] = multipletests(out["pval"].to_numpy(), method="holm")[1]  # several components tested on the same data
        notes.append("pval_holm: Holm-adjusted over the components tested (statsmodels multipletests)")
    return RigourModerators(out, notes)
