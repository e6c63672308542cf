"""Analyses over an effect table: pooled models, meta-regression, subgroups, dose-response and the
rigour sensitivity analysis.

The default model for evidence from the database is the multilevel model study / cluster / effect
(``rma.mv(random = ~ 1 | study/cluster/es)``, REML): effects within clusters (one model or run)
within studies, with an effect level so that spread within a cluster is not called sampling error
(Van den Noortgate et al. 2013). Inference on it uses the studies: cluster-robust CR2 by study
(Pustejovsky & Tipton 2018) whenever there are at least 2 studies, otherwise t tests with metafor's
``dfs = "contain"``; a z test is used only when asked for explicitly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

from .design import ALIASES, design_matrix
from .effects import EffectMeasure, EffectTable, binomial_variance
from .multilevel import DEFAULT_RANDOM, MULTILEVEL_METHODS, parse_random, random_structure, rma_mv
from .results import MetaResult, clean
from .robust import ROBUST_KINDS
from .robust import robust as robust_fit
from .uni import MetaInputError, rma_uni

__all__ = ["AnalysisSpec", "Analysis", "run_analysis", "StudyEstimate", "study_estimate", "per_study", "SubgroupResult", "subgroups",
           "DoseResponse", "dose_response", "Sensitivity", "rigour_sensitivity", "CorrelationSensitivity", "correlation_sensitivity", "RHO_SWEEP",
           "RigourModerators", "rigour_moderators"]

RHO_SWEEP = (0.0, 0.5, 0.8, 0.9)

ModelKind = Literal["multilevel", "random", "common"]
@dataclass(frozen=True)
class AnalysisSpec:
    """What to fit. ``model="multilevel"`` is ``rma.mv(random = ~ 1 | <random>)`` (default
    study/cluster/es); ``"random"`` is ``rma.uni`` (treats effects as independent: only for one
    effect per study); ``"common"`` the common-effect model.

    ``robust="auto"`` (default): CR2 by ``robust_cluster`` (the study) for a multilevel model with at
    least 2 studies, none otherwise; ``None`` turns it off. ``test``: ``"auto"`` is t with
    ``dfs = "contain"`` for the multilevel model (z for the others unless ``knha``); ``"z"`` and
    ``"t"`` force it. ``knha`` on a multilevel model means t with ``dfs = "contain"``."""

    model: ModelKind = "multilevel"
    method: str = "REML"
    mods: str | None = None
    knha: bool = False
    robust: str | None = "auto"  # "auto" | "CR2" | "CR1" | "CR0" | None
    robust_cluster: str = "study"
    level: float = 0.95
    random: tuple[str, ...] | str | None = None
    test: str = "auto"  # "auto" | "z" | "t"
    component_tests: bool = True
    profile_ci: bool = False  # profile-likelihood CI of each σ² (metafor confint on rma.mv): slower

    def __post_init__(self):
        if self.model not in ("multilevel", "random", "common"):
            raise MetaInputError("model must be multilevel, random or common")
        if self.model == "multilevel" and self.method.upper() not in MULTILEVEL_METHODS:
            raise MetaInputError(f"the multilevel model is fitted by {' or '.join(MULTILEVEL_METHODS)}")
        if self.robust is not None and self.robust != "auto" and self.robust.upper() not in ROBUST_KINDS:
            raise MetaInputError(f"robust must be auto, none or one of {', '.join(ROBUST_KINDS)}")
        if self.test not in ("auto", "z", "t"):
            raise MetaInputError("test must be auto, z or t")
        object.__setattr__(self, "random", parse_random(self.random))

    def replace(self, **kw) -> "AnalysisSpec":
        return AnalysisSpec(**{**self.__dict__, **kw})


@dataclass
class Analysis:
    fit: MetaResult
    spec: AnalysisSpec
    effects: pd.DataFrame  # the effects that entered the model
    excluded: pd.DataFrame  # rows that could not give an effect, or lacked a moderator
    notes: list[str] = field(default_factory=list)

    @property
    def n_studies(self) -> int:
        return int(self.effects["study"].nunique())

    def to_frame(self) -> pd.DataFrame:
        return self.fit.to_frame()

    def to_dict(self) -> dict:
        d = self.fit.to_dict()
        d["n_studies"] = self.n_studies
        d["n_excluded"] = int(len(self.excluded))
        d["notes"] = list(dict.fromkeys(self.notes + self.fit.notes))
        return clean(d)

    def summary(self) -> str:
        return "\n".join([self.fit.summary(), *(f"note: {n}" for n in self.notes if n not in self.fit.notes)])


def _fit(df: pd.DataFrame, X, names, spec: AnalysisSpec, notes: list[str]) -> MetaResult:
    y, v = df["yi"].to_numpy(float), df["vi"].to_numpy(float)
    p = 1 if X is None else np.asarray(X).shape[1]
    n_study = int(df["study"].nunique()) if "study" in df else 0
    if spec.model == "multilevel":
        df, levels, lnotes = random_structure(df, spec.random)
        notes.extend(lnotes)
        robust_kind = spec.robust
        if robust_kind == "auto":
            robust_kind = "CR2" if (spec.robust_cluster in df and df[spec.robust_cluster].nunique() >= 2) else None
        J = df[spec.robust_cluster].nunique() if robust_kind and spec.robust_cluster in df else 0
        if robust_kind and J <= p:
            notes.append(f"{J} {spec.robust_cluster} cluster(s) for {p} coefficient(s): no cluster-robust inference; t tests with dfs = 'contain'")
            robust_kind = None
        test = spec.test if spec.test != "auto" else "t"
        if spec.knha:
            test = "t"
        if robust_kind:
            test = "z"  # replaced by the cluster-robust tests below
        fit = rma_mv(y, v, X=X, names=names, random=[df[c] for c in levels], random_names=list(levels), method=spec.method, test=test,
                     dfs="contain", level=spec.level, component_tests=spec.component_tests, profile_ci=spec.profile_ci)
        if spec.test == "z" and not robust_kind:
            notes.append("z tests on a multilevel model ignore how few studies there are (asked for explicitly)")
    else:
        method = "FE" if spec.model == "common" else spec.method
        if spec.model == "random" and df["study"].duplicated().any():
            notes.append("WARNING: several effects per study treated as independent (use the multilevel model)")
        fit = rma_uni(y, v, X, names, method=method, knha=spec.knha or spec.test == "t", level=spec.level)
        robust_kind = None if spec.robust == "auto" else spec.robust
    if robust_kind:
        col = spec.robust_cluster
        if col not in df:
            raise MetaInputError(f"no column {col!r} for robust clusters")
        fit = robust_fit(fit, y, v, X, df[col], kind=robust_kind, level=spec.level)
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
    between = run_analysis(table, spec.replace(mods=col)).fit
    return SubgroupResult(col, pd.DataFrame(rows), between, notes)


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


@dataclass(frozen=True)
class StudyEstimate:
    """One study's pooled effect: its clusters and effects as the random levels (CR2 is not
    possible inside one study, so t tests with ``dfs = "contain"``), or its single effect (z)."""

    study: str
    k: int
    estimate: float
    se: float
    ci_low: float
    ci_high: float
    model: str
    df: float | None = None

    def __getitem__(self, key: str):  # mapping access, kept while callers move to attributes
        return getattr(self, key)

    def to_dict(self) -> dict:
        return clean(asdict(self))


def study_estimate(df: pd.DataFrame, study: str, spec: AnalysisSpec | None = None) -> StudyEstimate | None:
    """One study's pooled effect (its clusters and effects as the random levels), or its single effect."""
    spec = spec or AnalysisSpec()
    g = df[df["study"] == study]
    if len(g) == 0:
        return None
    if len(g) == 1:
        y, se = float(g["yi"].iloc[0]), float(np.sqrt(g["vi"].iloc[0]))
        z = stats.norm.isf((1 - spec.level) / 2)
        return StudyEstimate(str(study), 1, y, se, y - z * se, y + z * se, "single effect")
    model = "multilevel (clusters and effects within the study)"
    try:
        fit = run_analysis(g.reset_index(drop=True), spec.replace(model="multilevel", mods=None)).fit
    except MetaInputError:
        fit = rma_uni(g["yi"], g["vi"], method=spec.method if spec.method in MULTILEVEL_METHODS else "REML", knha=True)
        model = "random effects over the study's effects (Knapp-Hartung)"
    c = fit.coefficients[0]
    return StudyEstimate(str(study), len(g), c.estimate, c.se, c.ci_low, c.ci_high, model, c.df)


def per_study(table: EffectTable | pd.DataFrame, spec: AnalysisSpec | None = None) -> pd.DataFrame:
    """Pooled effect of each study (the rows of a study-level forest plot)."""
    df = table.effects if isinstance(table, EffectTable) else table
    rows = []
    for s in sorted(df["study"].unique()):
        rows.append(study_estimate(df, s, spec).to_dict())
    return pd.DataFrame(rows)


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
