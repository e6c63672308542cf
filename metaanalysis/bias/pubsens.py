"""Sensitivity of a pooled estimate to publication bias (Mathur & VanderWeele 2020).

Instead of estimating how strong selection was, ask how strong it would have to be to explain the
effect away. Suppose "affirmative" results (significant in the favoured direction: two-sided
p < .05 and an estimate of the favoured sign) are η times more likely to be published than
"nonaffirmative" ones. Weighting each nonaffirmative effect η times more than an affirmative one
undoes that selection. Three numbers follow:

- the corrected estimate for a chosen η (for example η = 2, 5);
- the worst case (η → ∞): the estimate from the nonaffirmative effects alone. If even this stays
  on the favoured side, no amount of selection of this kind can explain the effect away;
- the S-value: the η at which the corrected estimate (``svalue_estimate``) or its CI bound
  (``svalue_ci``) reaches q (default 0). Above 200 it is reported as "not possible" (the
  PublicationBias package's search limit).

The corrected estimate is the "robust" model of the PublicationBias package (``corrected_meta``
with ``model_type = "robust"``): robumeta's robust-variance estimate with user weights
(η or 1) / (vᵢ + τ̂²), τ̂² from a naive random-effects fit, clustered by study, with robumeta's
small-sample correction (``robu(..., userweights, small = TRUE)``; working covariance the
study-average sampling variance, Satterthwaite df). The cluster adjustment matrices are computed
in O(nⱼ) per cluster from a rank-2 update (an exact equivalent of robumeta's n×n eigen
decomposition), so a study with thousands of effects costs nothing. Dependent effects are handled
by the clustering; the weights still treat effects within a study as independent.

References
----------
- Mathur MB, VanderWeele TJ (2020). Sensitivity analysis for publication bias in meta-analyses.
  J R Stat Soc C 69:1091-1119.
- Hedges LV, Tipton E, Johnson MC (2010). Robust variance estimation in meta-regression with
  dependent effect size estimates. Res Synth Methods 1:39-65; Tipton E (2015) for the small-sample
  correction (robumeta).
- Reference values: ``tests/data/metafor/expected/bias_*.json`` (``mathur_vanderweele``), made by
  ``bias_reference.R`` with robumeta exactly as PublicationBias calls it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from scipy import optimize, stats

from ..models.results import clean
from ..models.uni import MetaInputError, check_inputs, rma_uni

__all__ = ["CorrectedEstimate", "PubBiasSensitivity", "corrected_estimate", "pubbias_sensitivity", "ETA_MAX"]

ETA_MAX = 200.0


@dataclass(frozen=True)
class CorrectedEstimate:
    """The estimate corrected for selection of strength ``eta`` (robust variance, clustered)."""

    eta: float | None  # None: the worst case (eta -> infinity)
    estimate: float
    se: float
    df: float
    ci_low: float
    ci_high: float
    pval: float
    k_affirmative: int
    k_nonaffirmative: int
    tau2_naive: float


@dataclass(frozen=True)
class PubBiasSensitivity:
    """Mathur & VanderWeele's sensitivity analysis, on the favoured sign's scale."""

    favor_positive: bool
    q: float
    uncorrected: CorrectedEstimate
    corrected: tuple[CorrectedEstimate, ...]
    worst_case: CorrectedEstimate | None
    svalue_estimate: float | None
    svalue_ci: float | None
    svalue_estimate_text: str
    svalue_ci_text: str
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return clean(asdict(self))

    def to_frame(self) -> pd.DataFrame:
        rows = [asdict(self.uncorrected) | {"analysis": "eta = 1 (no selection)"}]
        rows += [asdict(c) | {"analysis": f"eta = {c.eta:g}"} for c in self.corrected]
        if self.worst_case is not None:
            rows.append(asdict(self.worst_case) | {"analysis": "worst case (eta -> infinity)"})
        return pd.DataFrame(rows).set_index("analysis")

    def summary(self) -> str:
        sign = "" if self.favor_positive else " (signs flipped: the favoured direction is negative)"
        w = self.worst_case
        worst = (f"worst case (nonaffirmative effects only) {w.estimate:.4f} [{w.ci_low:.4f}, {w.ci_high:.4f}]" if w is not None
                 else "worst case not estimable (fewer than 2 nonaffirmative effects)")
        return (f"sensitivity to publication bias (Mathur & VanderWeele){sign}: uncorrected {self.uncorrected.estimate:.4f}; {worst}; "
                f"S-value for the estimate: {self.svalue_estimate_text}; for the CI: {self.svalue_ci_text}")


def _affirmative(y, v):
    p = 2 * stats.norm.sf(np.abs(y) / np.sqrt(v))
    return (p < 0.05) & (y > 0)


def _inv_sqrt_apply(c: float, U: np.ndarray, C: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """(c·I + U C U')^{-1/2} @ rhs, with eigenvalues below 1e-10 treated as 0 (robumeta's rule)."""
    Uu, s, _ = np.linalg.svd(U, full_matrices=False)
    Qb = Uu[:, s > 1e-12 * max(s.max(), 1e-300)]
    K = c * np.eye(Qb.shape[1]) + Qb.T @ U @ C @ U.T @ Qb
    ev, evec = np.linalg.eigh((K + K.T) / 2)
    inv = np.where(ev < 1e-10, 0.0, 1.0 / np.sqrt(np.maximum(ev, 1e-300)))
    proj = Qb.T @ rhs
    c_inv = 0.0 if c < 1e-10 else 1.0 / np.sqrt(c)
    return c_inv * (rhs - Qb @ proj) + Qb @ (evec @ (inv[:, None] * (evec.T @ proj) if proj.ndim == 2 else inv * (evec.T @ proj)))


def _robu_intercept(y, v, w, cluster, level=0.95) -> tuple[float, float, float]:
    """robumeta ``robu(y ~ 1, studynum = cluster, userweights = w, var.eff.size = v, small = TRUE)``:
    estimate, SE and Satterthwaite df of the intercept."""
    codes, _ = pd.factorize(pd.Series(cluster).astype(str))
    N = int(codes.max()) + 1
    Sw = float(w.sum())
    b = float(w @ y) / Sw
    e = y - b
    cbar = np.bincount(codes, weights=v, minlength=N) / np.bincount(codes, minlength=N)
    T = float(np.sum(w * w * cbar[codes]))
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(N + 1))
    meat = 0.0
    a_list = []
    for j in range(N):
        idx = order[bounds[j]: bounds[j + 1]]
        wj, c = w[idx], float(cbar[j])
        U = np.column_stack([np.ones(len(idx)), wj])
        C = np.array([[T / Sw ** 2, -c / Sw], [-c / Sw, 0.0]])
        Ae, Aw = (np.sqrt(c) * _inv_sqrt_apply(c, U, C, np.column_stack([e[idx], wj]))).T
        meat += float(wj @ Ae) ** 2
        a_list.append((idx, Aw / Sw))
    se = float(np.sqrt(meat) / Sw)
    # Satterthwaite df with robumeta's user-weight form: g_j = (I - H)_j' A_j W_j X_j Q
    beta_ = np.array([float(a.sum()) for _, a in a_list])
    gamma = np.array([float(w[idx] @ a) for idx, a in a_list])
    aa = np.array([float(a @ a) for _, a in a_list])
    G = np.diag(aa) - (np.outer(gamma, beta_) + np.outer(beta_, gamma)) / Sw + np.outer(beta_, beta_) * float(w @ w) / Sw ** 2
    df = float(np.trace(G) ** 2 / np.sum(G * G))
    return b, se, df


def corrected_estimate(yi, vi, cluster=None, eta: float | None = 1.0, *, favor_positive: bool = True, tau2: float | None = None,
                       level: float = 0.95) -> CorrectedEstimate:
    """PublicationBias ``corrected_meta(model_type = "robust")`` for selection ratio ``eta``;
    ``eta=None`` gives the worst case (nonaffirmative effects only). Effects are returned on the
    favoured sign's scale (multiplied by -1 when ``favor_positive`` is False)."""
    y, v, _, _ = check_inputs(yi, vi, min_k=2)
    y = y if favor_positive else -y
    cl = np.arange(len(y)) if cluster is None else np.asarray(pd.Series(cluster).astype(str))
    A = _affirmative(y, v)
    t2 = rma_uni(y, v, method="REML").tau2 if tau2 is None else float(tau2)
    if eta is None:
        keep = ~A
        if keep.sum() < 2 or len(pd.unique(cl[keep])) < 2:
            raise MetaInputError(f"the worst case needs nonaffirmative effects in at least 2 studies ({int(keep.sum())} effects)")
        ys, vs, cs, w = y[keep], v[keep], cl[keep], 1.0 / (v[keep] + t2)
    else:
        if eta < 1:
            raise MetaInputError("eta (how much likelier affirmative results are published) must be at least 1")
        ys, vs, cs, w = y, v, cl, np.where(A, 1.0, eta) / (v + t2)
    if len(pd.unique(cs)) < 2:
        raise MetaInputError("robust variance estimation needs at least 2 clusters")
    b, se, df = _robu_intercept(ys, vs, w, cs, level)
    crit = stats.t.isf((1 - level) / 2, df)
    return CorrectedEstimate(eta, b, se, df, b - crit * se, b + crit * se, float(2 * stats.t.sf(abs(b / se), df)), int(A.sum()),
                             int((~A).sum()), t2)


def pubbias_sensitivity(yi, vi, cluster=None, *, favor_positive: bool | None = None, q: float = 0.0, etas=(2.0, 5.0),
                        tau2: float | None = None, level: float = 0.95) -> PubBiasSensitivity:
    """Corrected estimates at ``etas``, the worst case and the S-values (PublicationBias ``svalue``).

    ``favor_positive=None`` takes the favoured direction from the sign of the uncorrected estimate."""
    y, v, _, _ = check_inputs(yi, vi, min_k=2)
    notes = []
    if favor_positive is None:
        base = corrected_estimate(y, v, cluster, 1.0, favor_positive=True, tau2=tau2, level=level)
        favor_positive = base.estimate >= 0
        notes.append(f"favoured direction taken from the uncorrected estimate ({'positive' if favor_positive else 'negative'})")
    unc = corrected_estimate(y, v, cluster, 1.0, favor_positive=favor_positive, tau2=tau2, level=level)
    t2 = unc.tau2_naive
    corr = tuple(corrected_estimate(y, v, cluster, float(e), favor_positive=favor_positive, tau2=t2, level=level) for e in etas)
    try:
        worst = corrected_estimate(y, v, cluster, None, favor_positive=favor_positive, tau2=t2, level=level)
    except MetaInputError as exc:
        worst = None
        notes.append(str(exc))

    def sval(attr: str) -> tuple[float | None, str]:
        f = lambda eta: getattr(corrected_estimate(y, v, cluster, eta, favor_positive=favor_positive, tau2=t2, level=level), attr) - q
        if f(1.0) <= 0:
            return None, f"not applicable: without any selection the {'estimate' if attr == 'estimate' else 'CI bound'} is already at or below q = {q:g}"
        if f(ETA_MAX) > 0:
            return None, f"not possible: even selection {ETA_MAX:g}-fold in favour of affirmative results does not bring it to q = {q:g}"
        root = optimize.brentq(f, 1.0, ETA_MAX, xtol=1e-12, rtol=1e-12)
        return float(root), f"{root:.2f} (affirmative results {root:.2f} times likelier to be published)"

    s_est, s_est_text = sval("estimate")
    s_ci, s_ci_text = sval("ci_low")
    return PubBiasSensitivity(favor_positive, q, unc, corr, worst, s_est, s_ci, s_est_text, s_ci_text, notes)
