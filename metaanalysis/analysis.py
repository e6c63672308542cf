"""Analyses over an effect table: pooled models, meta-regression, subgroups, dose-response and the
rigour sensitivity analysis.

The default model for evidence from the database is the three-level model (effects within
clusters within studies, fitted by REML): the seed holds 7,798 rows of one study, and a model that
treats them as independent would be wrong (Van den Noortgate et al. 2013).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

from .design import design_matrix
from .effects import EffectTable
from .multilevel import rma_mv
from .results import MetaResult, clean
from .robust import robust as robust_fit
from .uni import MetaInputError, rma_uni

__all__ = ["AnalysisSpec", "Analysis", "run_analysis", "study_estimate", "per_study", "SubgroupResult", "subgroups", "DoseResponse", "dose_response",
           "Sensitivity", "rigour_sensitivity"]

ModelKind = Literal["multilevel", "random", "common"]


@dataclass(frozen=True)
class AnalysisSpec:
    """What to fit. ``model="multilevel"`` is ``rma.mv(random = ~ 1 | study/cluster)``;
    ``"random"`` is ``rma.uni`` (treats effects as independent: only for one effect per study);
    ``"common"`` the common-effect model."""

    model: ModelKind = "multilevel"
    method: str = "REML"
    mods: str | None = None
    knha: bool = False
    robust: str | None = None  # "CR2" | "CR1" | "CR0"
    robust_cluster: str = "study"
    level: float = 0.95

    def __post_init__(self):
        if self.model not in ("multilevel", "random", "common"):
            raise MetaInputError("model must be multilevel, random or common")
        if self.model == "multilevel" and self.method.upper() not in ("REML", "ML"):
            raise MetaInputError("the multilevel model is fitted by REML or ML")


@dataclass
class Analysis:
    fit: MetaResult
    spec: AnalysisSpec
    effects: pd.DataFrame  # the effects that entered the model
    excluded: pd.DataFrame  # rows that could not give an effect, or lacked a moderator
    notes: list[str] = field(default_factory=list)

    def to_frame(self) -> pd.DataFrame:
        return self.fit.to_frame()

    def to_dict(self) -> dict:
        d = self.fit.to_dict()
        d["n_studies"] = int(self.effects["study"].nunique())
        d["n_excluded"] = int(len(self.excluded))
        d["notes"] = list(dict.fromkeys(self.notes + self.fit.notes))
        return clean(d)

    def summary(self) -> str:
        return "\n".join([self.fit.summary(), *(f"note: {n}" for n in self.notes if n not in self.fit.notes)])


def _fit(df: pd.DataFrame, X, names, spec: AnalysisSpec, notes: list[str]) -> MetaResult:
    y, v = df["yi"].to_numpy(float), df["vi"].to_numpy(float)
    if spec.model == "multilevel":
        n_study = df["study"].nunique()
        n_cluster = (df["study"].astype(str) + "\x1f" + df["cluster"].astype(str)).nunique() if "cluster" in df else n_study
        if n_study >= 2 and n_cluster > n_study:
            fit = rma_mv(y, v, df["study"], df["cluster"], X, names, method=spec.method, test="t" if spec.knha else "z", level=spec.level)
        elif n_study >= 2:
            notes.append("each study holds one cluster: two-level model (random = ~ 1 | study)")
            fit = rma_mv(y, v, df["study"], None, X, names, method=spec.method, test="t" if spec.knha else "z", level=spec.level)
        elif n_cluster >= 2:
            notes.append("a single study: its clusters (shared models or runs) are the only random level (random = ~ 1 | cluster)")
            fit = rma_mv(y, v, df["cluster"], None, X, names, method=spec.method, test="t" if spec.knha else "z", level=spec.level)
            fit.sigma2 = {"cluster": fit.sigma2["study"]}
            fit.n_levels = {"cluster": fit.n_levels["study"]}
        else:
            raise MetaInputError("a single study with a single cluster: no between-unit variance can be estimated")
    else:
        method = "FE" if spec.model == "common" else spec.method
        if spec.model == "random" and df["study"].duplicated().any():
            notes.append("WARNING: several effects per study treated as independent (use the multilevel model)")
        fit = rma_uni(y, v, X, names, method=method, knha=spec.knha, level=spec.level)
    if spec.robust:
        col = spec.robust_cluster
        if col not in df:
            raise MetaInputError(f"no column {col!r} for robust clusters")
        fit = robust_fit(fit, y, v, X, df[col], kind=spec.robust, level=spec.level)
    return fit


def run_analysis(table: EffectTable | pd.DataFrame, spec: AnalysisSpec | None = None) -> Analysis:
    """Fit ``spec`` to the effects; rows lacking a moderator are reported in ``excluded``."""
    spec = spec or AnalysisSpec()
    if isinstance(table, EffectTable):
        df, excluded, notes = table.effects, table.excluded.copy(), list(table.notes)
    else:
        df, excluded, notes = table, pd.DataFrame(columns=["reason"]), []
    if len(df) < 2:
        raise MetaInputError(f"need at least 2 effects, have {len(df)} (check the filters and the excluded rows)")
    design = design_matrix(df, spec.mods)
    used = df.loc[design.rows].reset_index(drop=True)
    if design.dropped_reason:
        dropped = df.loc[~design.rows, [c for c in ("uid", "study_id", "dataset") if c in df]].copy()
        dropped["reason"] = design.dropped_reason
        excluded = pd.concat([excluded, dropped], ignore_index=True)
        notes.append(f"{int((~design.rows).sum())} effects left out of the meta-regression: {design.dropped_reason}")
    fit = _fit(used, design.X, design.names, spec, notes)
    return Analysis(fit, spec, used, excluded, notes)


@dataclass
class SubgroupResult:
    """Pooled estimate per subgroup and the test of differences between them."""

    by: str
    groups: pd.DataFrame  # one row per level: k, n_studies, estimate, se, ci, pi
    between: MetaResult  # meta-regression on the grouping: its QM is the between-groups test
    notes: list[str] = field(default_factory=list)

    def to_frame(self) -> pd.DataFrame:
        return self.groups

    def summary(self) -> str:
        q = self.between
        df = q.qm_df
        return (self.groups.to_string(index=False, float_format=lambda x: f"{x:.3f}")
                + f"\ntest of subgroup differences ({self.by}): QM(df = {df[0]:g}) = {q.qm:.3f}, p = {q.qm_pval:.4g}")


def subgroups(table: EffectTable, by: str, spec: AnalysisSpec | None = None) -> SubgroupResult:
    spec = spec or AnalysisSpec()
    df = table.effects
    from .design import ALIASES

    col = ALIASES.get(by, by)
    if col not in df:
        raise MetaInputError(f"no column {by!r} to form subgroups")
    rows, notes = [], []
    for level, g in df.groupby(df[col].astype(str)):
        if len(g) < 2:
            rows.append({"group": level, "k": len(g), "n_studies": g["study"].nunique(), "estimate": np.nan, "se": np.nan, "ci_low": np.nan,
                         "ci_high": np.nan, "pi_low": np.nan, "pi_high": np.nan, "pval": np.nan})
            continue
        try:
            f = _fit(g, None, None, spec, notes)
        except MetaInputError as exc:
            notes.append(f"{col}={level}: {exc}")
            continue
        c = f.coefficients[0]
        rows.append({"group": level, "k": len(g), "n_studies": g["study"].nunique(), "estimate": c.estimate, "se": c.se, "ci_low": c.ci_low,
                     "ci_high": c.ci_high, "pi_low": f.pi_low, "pi_high": f.pi_high, "pval": c.pval})
    between = run_analysis(table, AnalysisSpec(**{**spec.__dict__, "mods": col})).fit
    return SubgroupResult(col, pd.DataFrame(rows), between, notes)


@dataclass
class DoseResponse:
    """Effect against a continuous moderator, linear + quadratic: does a moderate level help and an
    extreme one hurt? (an inverted U: negative quadratic term, vertex inside the data, positive peak)"""

    x: str
    fit: MetaResult
    grid: pd.DataFrame  # x, fitted, ci_low, ci_high
    vertex: float | None
    supported: bool
    verdict: str
    points: pd.DataFrame

    def to_frame(self) -> pd.DataFrame:
        return self.grid

    def summary(self) -> str:
        q = self.fit.coef(f"{self.x}^2")
        return f"dose-response on {self.x}: quadratic term {q.estimate:.3f} (p = {q.pval:.3g}); {self.verdict}"


def dose_response(table: EffectTable, x: str = "sparsity", spec: AnalysisSpec | None = None, n_grid: int = 60) -> DoseResponse:
    spec = spec or AnalysisSpec()
    an = run_analysis(table, AnalysisSpec(**{**spec.__dict__, "mods": f"{x} + {x}^2"}))
    fit = an.fit
    b = np.array([c.estimate for c in fit.coefficients])
    lo, hi = float(an.effects[x].min()), float(an.effects[x].max())
    grid = np.linspace(lo, hi, n_grid)
    G = np.column_stack([np.ones_like(grid), grid, grid ** 2])
    pred = G @ b
    se = np.sqrt(np.einsum("ij,jk,ik->i", G, fit.vcov, G))
    crit = stats.norm.isf((1 - spec.level) / 2) if fit.coefficients[0].df is None else stats.t.isf((1 - spec.level) / 2, fit.coefficients[0].df)
    b1, b2 = b[1], b[2]
    q = fit.coef(f"{x}^2")
    vertex = float(-b1 / (2 * b2)) if b2 != 0 else None
    peak = float(np.array([1, vertex, vertex ** 2]) @ b) if vertex is not None else None
    inside = vertex is not None and lo < vertex < hi
    supported = bool(b2 < 0 and q.pval < 0.05 and inside and peak is not None and peak > 0 and pred[-1] < peak)
    if supported:
        verdict = (f"supported: the effect peaks at {x} = {vertex:.3f} ({peak:+.2f}) and falls to {pred[-1]:+.2f} at {hi:.3f}")
    elif b2 < 0 and q.pval < 0.05 and inside:
        verdict = f"inverted U at {x} = {vertex:.3f}, but the peak effect ({peak:+.2f}) is not above zero: no level helps"
    else:
        verdict = "not supported: no significant inverted U within the observed range"
    grid_df = pd.DataFrame({x: grid, "fitted": pred, "ci_low": pred - crit * se, "ci_high": pred + crit * se})
    return DoseResponse(x, fit, grid_df, vertex, supported, verdict, an.effects[[x, "yi", "vi", "study"]].copy())


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


def study_estimate(df: pd.DataFrame, study: str, spec: AnalysisSpec | None = None) -> dict | None:
    """One study's pooled effect (its clusters as the random level), or its single effect."""
    spec = spec or AnalysisSpec()
    g = df[df["study"] == study]
    if len(g) == 0:
        return None
    if len(g) == 1:
        y, se = float(g["yi"].iloc[0]), float(np.sqrt(g["vi"].iloc[0]))
        z = stats.norm.isf((1 - spec.level) / 2)
        return {"k": 1, "estimate": y, "se": se, "ci_low": y - z * se, "ci_high": y + z * se, "model": "single effect"}
    try:
        fit = run_analysis(g.reset_index(drop=True), spec).fit
        model = "multilevel (clusters)"
    except MetaInputError:
        fit = rma_uni(g["yi"], g["vi"], method=spec.method if spec.method in ("REML", "ML") else "REML")
        model = "random effects (one cluster: effects treated as independent)"
    c = fit.coefficients[0]
    return {"k": len(g), "estimate": c.estimate, "se": c.se, "ci_low": c.ci_low, "ci_high": c.ci_high, "model": model}


def per_study(table: EffectTable | pd.DataFrame, spec: AnalysisSpec | None = None) -> pd.DataFrame:
    """Pooled effect of each study (the rows of a study-level forest plot)."""
    df = table.effects if isinstance(table, EffectTable) else table
    rows = []
    for s in sorted(df["study"].unique()):
        est = study_estimate(df, s, spec)
        rows.append({"study": s, **est})
    return pd.DataFrame(rows)
