"""Dose-response that the data support: sparsity (or bits) as a factor, linear and quadratic,
compared under ML; a vertex only when the curvature's CI excludes 0.

References: Viechtbauer W (2010), metafor (models compared by ML with ``anova``; AIC); Pustejovsky JE,
Tipton E (2018) for the CR2 inference on the curvature.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from .analysis import AnalysisSpec, run_analysis
from .models.design import ALIASES
from .effects import EffectTable
from .models.results import MetaResult
from .models.uni import MetaInputError

__all__ = ["DoseResponse", "dose_response"]


@dataclass
class DoseResponse:
    """Effect against a dose (sparsity, bits) three ways, compared under ML (metafor: fit by ML to
    compare fixed effects, ``anova(fit_ML_a, fit_ML_b)``): linear, quadratic, and the dose as a
    factor (no shape imposed). The quadratic curve is drawn with its CI (REML, the analysis's
    inference, CR2 by study by default); a vertex ("sweet spot") is reported only when the CI of the
    curvature excludes 0. ``factor_means`` are the pooled effects at each dose level with CIs."""

    x: str
    fit: MetaResult  # the quadratic model (REML, default inference)
    grid: pd.DataFrame  # x, fitted, ci_low, ci_high
    vertex: float | None
    supported: bool
    verdict: str
    points: pd.DataFrame
    factor_means: pd.DataFrame = field(default_factory=pd.DataFrame)  # level, k, n_studies, estimate, ci_low, ci_high
    comparison: pd.DataFrame = field(default_factory=pd.DataFrame)  # model, logLik, parameters, AIC, LRT against the previous, p
    curvature_ci: tuple[float, float] | None = None

    def to_frame(self) -> pd.DataFrame:
        return self.grid

    def summary(self) -> str:
        q = self.fit.coef(f"{self.x}^2")
        lines = [f"dose-response on {self.x}: quadratic term {q.estimate:.3f} [{q.ci_low:.3f}, {q.ci_high:.3f}] ({self.fit.test}); {self.verdict}"]
        if len(self.comparison):
            lines.append(self.comparison.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
        if len(self.factor_means):
            lines.append(f"{self.x} as a factor (pooled effect per level):")
            lines.append(self.factor_means.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
        return "\n".join(lines)


def _dose_levels(x: pd.Series, max_levels: int = 12) -> pd.Series:
    """The dose as a factor: its distinct values (rounded to 3 decimals), or sextiles when there are many."""
    r = x.astype(float).round(3)
    if r.nunique() <= max_levels:
        return r.map(lambda v: f"{v:g}")
    bins = pd.qcut(r, 6, duplicates="drop")
    return bins.astype(str)


def dose_response(table: EffectTable, x: str = "sparsity", spec: AnalysisSpec | None = None, n_grid: int = 60) -> DoseResponse:
    spec = spec or AnalysisSpec()
    x = ALIASES.get(x, x)
    an = run_analysis(table, spec.replace(mods=f"{x} + {x}^2"))
    fit = an.fit
    used = an.effects
    b = np.array([c.estimate for c in fit.coefficients])
    lo, hi = float(used[x].min()), float(used[x].max())
    grid = np.linspace(lo, hi, n_grid)
    G = np.column_stack([np.ones_like(grid), grid, grid ** 2])
    pred = G @ b
    se = np.sqrt(np.einsum("ij,jk,ik->i", G, fit.vcov, G))
    dfs = [c.df for c in fit.coefficients if c.df is not None]
    crit = stats.norm.isf((1 - spec.level) / 2) if not dfs else stats.t.isf((1 - spec.level) / 2, min(dfs))
    q = fit.coef(f"{x}^2")
    b1, b2 = b[1], b[2]
    curved = q.ci_low > 0 or q.ci_high < 0
    vertex = float(-b1 / (2 * b2)) if (curved and b2 != 0) else None
    inside = vertex is not None and lo < vertex < hi
    peak = float(np.array([1, vertex, vertex ** 2]) @ b) if vertex is not None else None
    supported = bool(curved and b2 < 0 and inside and peak > 0 and pred[-1] < peak)
    if not curved:
        verdict = (f"no curvature the data support: the quadratic term's {fit.test} CI [{q.ci_low:.3g}, {q.ci_high:.3g}] includes 0, "
                   "so no vertex (sweet spot) is reported")
    elif supported:
        verdict = f"supported: the effect peaks at {x} = {vertex:.3f} ({peak:+.2f}) and falls to {pred[-1]:+.2f} at {hi:.3f}"
    elif b2 < 0 and inside:
        verdict = f"inverted U at {x} = {vertex:.3f}, but the peak effect ({peak:+.2f}) is not above zero: no level helps"
    else:
        verdict = f"curved ({'convex' if b2 > 0 else 'concave'}), vertex {'outside the observed range' if not inside else f'at {vertex:.3f}'}: no sweet spot"
    grid_df = pd.DataFrame({x: grid, "fitted": pred, "ci_low": pred - crit * se, "ci_high": pred + crit * se})
    factor_means, comparison = _dose_factor(used, x, spec)
    if len(comparison):
        best = comparison.loc[comparison["AIC"].idxmin(), "model"]
        verdict += f"; by AIC under ML the {best} model fits best"
    return DoseResponse(x, fit, grid_df, vertex, supported, verdict, used[[x, "yi", "vi", "study"]].copy(), factor_means, comparison,
                        (q.ci_low, q.ci_high))


def _dose_factor(used: pd.DataFrame, x: str, spec: AnalysisSpec):
    """Pooled effect per dose level (factor model, the analysis's inference) and the ML comparison of
    linear, quadratic and factor models (same rows, same random structure)."""
    df = used.assign(dose_level=_dose_levels(used[x]))
    levels = sorted(df["dose_level"].unique(), key=lambda s: float(str(s).strip("([]").split(",")[0]))
    if len(levels) < 2:
        return pd.DataFrame(), pd.DataFrame()
    df["dose_level"] = pd.Categorical(df["dose_level"], categories=levels, ordered=True).astype(str)
    # factor model with the first level in order as reference (design_matrix sorts levels alphabetically: rename to keep order)
    order = {lv: f"{i:02d}:{lv}" for i, lv in enumerate(levels)}
    df["dose_level"] = df["dose_level"].map(order)
    try:
        fac = run_analysis(df, spec.replace(mods="dose_level", component_tests=False)).fit
    except MetaInputError:
        return pd.DataFrame(), pd.DataFrame()
    b, V = np.array([c.estimate for c in fac.coefficients]), fac.vcov
    dfs = [c.df for c in fac.coefficients]
    rows = []
    for i, lv in enumerate(levels):
        L = np.zeros(len(b))
        L[0] = 1.0
        if i > 0:
            L[i] = 1.0
        est, se = float(L @ b), float(np.sqrt(L @ V @ L))
        d = None if dfs[0] is None else min(dfs[0], dfs[i])  # conservative: the smaller df of the two terms
        crit = stats.norm.isf((1 - spec.level) / 2) if d is None else stats.t.isf((1 - spec.level) / 2, d)
        g = df[df["dose_level"] == order[lv]]
        rows.append({"level": lv, "k": len(g), "n_studies": g["study"].nunique(), "estimate": est, "se": se,
                     "ci_low": est - crit * se, "ci_high": est + crit * se, "df": d})
    means = pd.DataFrame(rows)
    comparison = pd.DataFrame()
    if spec.model == "multilevel":
        ml = spec.replace(method="ML", robust=None, test="z", component_tests=False)
        fits = []
        for name, mods in (("linear", x), ("quadratic", f"{x} + {x}^2"), ("factor", "dose_level")):
            try:
                f = run_analysis(df, ml.replace(mods=mods)).fit
            except MetaInputError:
                continue
            n_par = f.p + len(f.sigma2)
            fits.append({"model": name, "logLik": f.extra["logLik"], "parameters": n_par, "AIC": -2 * f.extra["logLik"] + 2 * n_par})
        comparison = pd.DataFrame(fits)
        if len(comparison) > 1:
            lrt, pv = [np.nan], [np.nan]
            for i in range(1, len(comparison)):
                a, c = comparison.iloc[i - 1], comparison.iloc[i]
                dpar = c["parameters"] - a["parameters"]
                stat = 2 * (c["logLik"] - a["logLik"])
                lrt.append(stat if dpar > 0 else np.nan)
                pv.append(float(stats.chi2.sf(stat, dpar)) if dpar > 0 else np.nan)
            comparison["LRT_vs_previous"], comparison["pval"] = lrt, pv
    return means, comparison
