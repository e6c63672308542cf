"""Analyses over an effect table: pooled models, meta-regression, subgroups and per-study estimates
(dose-response: :mod:`metaanalysis.dose`; sensitivity analyses: :mod:`metaanalysis.sensitivity`).

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

from .models.design import ALIASES, Design, design_matrix
from .effects import EffectTable
from .models.multilevel import MULTILEVEL_METHODS, rma_mv
from .models.results import MetaResult, clean
from .models.robust import ROBUST_KINDS
from .models.robust import robust as robust_fit
from .models.structure import parse_random, random_structure
from .models.uni import MetaInputError, rma_uni
from .models.wald import WaldTestKind

__all__ = ["AnalysisSpec", "Analysis", "run_analysis", "StudyEstimate", "study_estimate", "per_study", "SubgroupResult", "subgroups"]

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
    omnibus: str = "HTZ"  # the CR2 test of several moderators: "HTZ" (clubSandwich) or "naive-F" (F(m, J - p), on request)

    def __post_init__(self):
        if self.model not in ("multilevel", "random", "common"):
            raise MetaInputError("model must be multilevel, random or common")
        if self.model == "multilevel" and self.method.upper() not in MULTILEVEL_METHODS:
            raise MetaInputError(f"the multilevel model is fitted by {' or '.join(MULTILEVEL_METHODS)}")
        if self.robust is not None and self.robust != "auto" and self.robust.upper() not in ROBUST_KINDS:
            raise MetaInputError(f"robust must be auto, none or one of {', '.join(ROBUST_KINDS)}")
        if self.test not in ("auto", "z", "t"):
            raise MetaInputError("test must be auto, z or t")
        if self.omnibus not in tuple(k.value for k in WaldTestKind):
            raise MetaInputError(f"omnibus must be one of {', '.join(k.value for k in WaldTestKind)}, not {self.omnibus!r}")
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
    design: Design | None = None  # the model matrix and how each moderator was coded (for the R script)

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


def _fit(df: pd.DataFrame, X, names, spec: AnalysisSpec, notes: list[str], start: dict[str, float] | None = None) -> MetaResult:
    y, v = df["yi"].to_numpy(float), df["vi"].to_numpy(float)
    p = 1 if X is None else np.asarray(X).shape[1]
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
                     dfs="contain", level=spec.level, component_tests=spec.component_tests, profile_ci=spec.profile_ci, start=start)
        fit.extra["random_columns"] = list(levels)  # the levels that were fitted, outer to inner (for the R script)
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
        fit = robust_fit(fit, y, v, X, df[col], kind=robust_kind, level=spec.level, omnibus=spec.omnibus)
        fit.extra["robust_cluster"] = col
    return fit


def run_analysis(table: EffectTable | pd.DataFrame, spec: AnalysisSpec | None = None, *, start: dict[str, float] | None = None) -> Analysis:
    """Fit ``spec`` to the effects; rows lacking a moderator are reported in ``excluded``. ``start``:
    starting σ² of a multilevel fit by component name (a related fit's ``sigma2``, see :func:`rma_mv`)."""
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
    fit = _fit(used, design.X, design.names, spec, notes, start)
    return Analysis(fit, spec, used, excluded, notes, design)


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
        return (self.groups.to_string(index=False, float_format=lambda x: f"{x:.3f}")
                + f"\ntest of subgroup differences ({self.by}): {q.omnibus_label()} = {q.qm:.3f}, p = {q.qm_pval:.4g}")


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
