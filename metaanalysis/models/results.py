"""Typed result objects shared by every model: coefficients, heterogeneity and their renderings."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["Coefficient", "ComponentTest", "MetaResult", "clean"]


def clean(v: Any) -> Any:
    """JSON-safe: numpy scalars to Python, NaN/inf to None."""
    if isinstance(v, dict):
        return {k: clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [clean(x) for x in v]
    if isinstance(v, np.ndarray):
        return [clean(x) for x in v.tolist()]
    if isinstance(v, (np.floating, float)):
        f = float(v)
        return None if math.isnan(f) or math.isinf(f) else f
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


@dataclass(frozen=True)
class Coefficient:
    name: str
    estimate: float
    se: float
    stat: float  # z, or t under Knapp-Hartung / robust inference
    pval: float
    ci_low: float
    ci_high: float
    df: float | None = None


@dataclass(frozen=True)
class ComponentTest:
    """Likelihood-ratio test of one variance component against the model without it (σ² fixed at 0;
    metafor's ``anova(full, reduced)``, χ²(1) p-value, conservative because σ² = 0 is on the boundary)."""

    name: str
    sigma2: float
    n_levels: int
    lrt: float
    pval: float


@dataclass
class MetaResult:
    """A fitted meta-analytic model (rma.uni, rma.mv, or either with cluster-robust inference).

    Field names follow metafor where it has one: ``tau2`` (between-study variance of rma.uni),
    ``sigma2`` (variance components of rma.mv, outer level first), ``q``/``q_pval`` (QE),
    ``qm``/``qm_pval`` (omnibus test of moderators), ``i2``/``h2`` (metafor's definitions),
    ``r2`` (pseudo-R², share of tau² explained, percent).
    """

    model: str  # "rma.uni" | "rma.mv"
    method: str
    test: str  # "z" | "knha" | "t" | "CR2" | "CR1"
    k: int
    coefficients: list[Coefficient]
    vcov: np.ndarray
    tau2: float | None = None
    sigma2: dict[str, float] = field(default_factory=dict)
    n_levels: dict[str, int] = field(default_factory=dict)
    q: float | None = None
    q_df: int | None = None
    q_pval: float | None = None
    i2: float | None = None
    h2: float | None = None
    qm: float | None = None
    qm_df: tuple[float, float | None] | None = None
    qm_pval: float | None = None
    r2: float | None = None
    pi_low: float | None = None
    pi_high: float | None = None
    pred_se: float | None = None
    n_clusters: int | None = None
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    component_tests: list[ComponentTest] = field(default_factory=list)
    sigma2_ci: dict[str, tuple[float, float]] = field(default_factory=dict)  # profile-likelihood CI of each σ²
    covariance: Any = field(default=None, repr=False)  # the fitted marginal covariance (multilevel.NestedCovariance), for robust()
    wald: Any = None  # the omnibus test of a robust fit as a typed wald.WaldTest (HTZ for CR2 by default)
    cr2: Any = field(default=None, repr=False)  # a CR2 fit's wald.CR2Pieces, for wald_test() of any coefficients

    # ------------------------------------------------------------------ accessors
    @property
    def p(self) -> int:
        return len(self.coefficients)

    @property
    def intercept_only(self) -> bool:
        return self.p == 1 and self.coefficients[0].name == "intrcpt"

    def coef(self, name: str) -> Coefficient:
        for c in self.coefficients:
            if c.name == name:
                return c
        raise KeyError(f"no coefficient {name!r} (have {', '.join(c.name for c in self.coefficients)})")

    def omnibus_label(self) -> str:
        """How QM is referred to its distribution: ``"HTZ F(2, 3.36)"``, ``"F(2, 18)"`` or ``"chi2(2)"``."""
        if self.qm_df is None:
            return "QM"
        m, df2 = self.qm_df
        if df2 is None:
            return f"chi2({m:g})"
        name = f"{self.wald.test.value} " if self.wald is not None and self.wald.test.value == "HTZ" else ""
        return f"{name}F({m:g}, {df2:.3g})"

    @property
    def estimate(self) -> float:
        return self.coefficients[0].estimate

    # ------------------------------------------------------------------ renderings
    def to_frame(self) -> pd.DataFrame:
        """One row per coefficient: estimate, se, statistic, p-value, CI, df."""
        return pd.DataFrame([asdict(c) for c in self.coefficients]).set_index("name")

    def to_dict(self) -> dict:
        """The JSON shape of ``crev meta run --json`` (key names fixed by the CLI contract)."""
        c0 = self.coefficients[0]
        out: dict[str, Any] = {
            "model": self.model,
            "method": self.method,
            "test": self.test,
            "k": self.k,
            "estimate": c0.estimate,
            "se": c0.se,
            "ci_low": c0.ci_low,
            "ci_high": c0.ci_high,
            "pval": c0.pval,
            "tau2": self.tau2,
            "i2": self.i2,
            "h2": self.h2,
            "q": self.q,
            "q_pval": self.q_pval,
            "pi_low": self.pi_low,
            "pi_high": self.pi_high,
        }
        if self.sigma2:
            out["sigma2"] = list(self.sigma2.values())
            out["sigma2_levels"] = {name: self.n_levels.get(name) for name in self.sigma2}
        if self.component_tests:
            out["component_tests"] = [asdict(t) for t in self.component_tests]
        if self.sigma2_ci:
            out["sigma2_ci"] = {name: list(ci) for name, ci in self.sigma2_ci.items()}
        if not self.intercept_only:
            out["coefficients"] = [
                {"name": c.name, "estimate": c.estimate, "se": c.se, "pval": c.pval, "ci_low": c.ci_low, "ci_high": c.ci_high, "df": c.df}
                for c in self.coefficients
            ]
            out["qm"], out["qm_pval"], out["r2"] = self.qm, self.qm_pval, self.r2
            out["qm_df"] = list(self.qm_df) if self.qm_df else None
            if self.wald is not None:
                out["qm_test"] = self.wald.test.value
        if self.n_clusters is not None:
            out["n_clusters"] = self.n_clusters
        if c0.df is not None:
            out["df"] = c0.df
        if self.notes:
            out["notes"] = self.notes
        return clean(out)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    def summary(self) -> str:
        """A plain-text summary in the spirit of metafor's print method."""
        lines = [f"{'Multilevel' if self.model == 'rma.mv' else 'Random-effects' if self.method not in ('FE', 'EE') else 'Common-effect'} "
                 f"model (k = {self.k}; method: {self.method}; test: {self.test})"]
        if self.tau2 is not None and self.method not in ("FE", "EE"):
            lines.append(f"tau^2 = {self.tau2:.4f} (tau = {math.sqrt(max(self.tau2, 0)):.4f})")
        tests = {t.name: t for t in self.component_tests}
        for name, s2 in self.sigma2.items():
            t = tests.get(name)
            lrt = f"; LRT vs without it = {t.lrt:.2f}, p = {t.pval:.3g}" if t else ""
            if name in self.sigma2_ci:
                lrt += f"; 95% profile CI [{self.sigma2_ci[name][0]:.4f}, {self.sigma2_ci[name][1]:.4f}]"
            lines.append(f"sigma^2 [{name}] = {s2:.4f} (levels: {self.n_levels.get(name, '?')}{lrt})")
        if self.i2 is not None:
            lines.append(f"I^2 = {self.i2:.2f}%   H^2 = {self.h2:.2f}")
        if self.q is not None:
            lines.append(f"Q({self.q_df}) = {self.q:.4f}, p = {self.q_pval:.4g}")
        if not self.intercept_only and self.qm is not None:
            df = self.qm_df
            name = f"{self.wald.test.value}; " if self.wald is not None else ""
            lines.append(f"QM ({name}df = {df[0]:g}{'' if df[1] is None else f', {df[1]:.2f}'}) = {self.qm:.4f}, p = {self.qm_pval:.4g}"
                         + (f"; R^2 = {self.r2:.2f}%" if self.r2 is not None else ""))
        lines.append(self.to_frame().to_string(float_format=lambda x: f"{x:.4f}"))
        if self.pi_low is not None:
            lines.append(f"95% prediction interval: [{self.pi_low:.4f}, {self.pi_high:.4f}]")
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)
