"""The Vevea–Hedges step-function selection model, fitted by maximum likelihood.

Publication may depend on a result's one-sided p-value: an effect with p < .025 (significant in the
favoured direction) may be more likely to be reported than one without. The step-function model
gives each p-value interval a relative publication probability δⱼ (δ₁ = 1 for the first
interval) and fits the random-effects model (μ, τ²) jointly with δ by maximum likelihood:

    L = Π_i  w(p_i) φ((y_i − μ_i)/s_i) / s_i  /  A_i,     s_i² = v_i + τ²,
    A_i = Σ_j δⱼ P(p_i falls in interval j | μ_i, s_i),

so the estimate of μ is corrected for the selection the δ describe. With ``steps = (0.025,)`` this
is the three-parameter selection model (3PSM: μ, τ², δ₂). The likelihood-ratio test compares it
with the random-effects model without selection (all δ = 1) fitted by ML. Standard errors come
from the inverse Hessian of the log-likelihood (numerical derivative of the analytic gradient), as
metafor's ``selmodel`` does with ``numDeriv``.

The model assumes independent effects: on dependent effects it is fitted to study-level aggregates
(see :mod:`metaanalysis.bias.funnel`).

References
----------
- Vevea JL, Hedges LV (1995). A general linear model for estimating effect size in the presence of
  publication bias. Psychometrika 60:419-435.
- Hedges LV (1992). Modeling publication selection effects in meta-analysis. Stat Sci 7:246-255.
- metafor ``selmodel(fit, type = "stepfun", steps = .025)`` (Viechtbauer W, metafor 3.x); the
  reference values are in ``tests/data/metafor/expected/bias_*.json`` (script ``bias_reference.R``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from scipy import optimize, stats

from ..models.results import clean
from ..models.uni import MetaInputError, check_inputs, rma_uni

__all__ = ["SelectionModelResult", "step_selection_model", "DELTA_MAX"]

DELTA_MAX = 100.0  # metafor's default upper bound of delta for the step function


@dataclass(frozen=True)
class SelectionModelResult:
    """A fitted step-function selection model (field names follow metafor's ``selmodel``)."""

    steps: tuple[float, ...]  # upper p-value bounds of the intervals, ending with 1
    alternative: str  # "greater" | "less": the direction in which one-sided p-values are taken
    k: int
    k_per_interval: tuple[int, ...]
    beta: float
    se: float
    zval: float
    pval: float
    ci_low: float
    ci_high: float
    tau2: float
    se_tau2: float | None
    delta: tuple[float, ...]
    se_delta: tuple[float | None, ...]
    lrt: float
    lrt_df: int
    lrt_pval: float
    loglik: float
    loglik_unadjusted: float
    beta_unadjusted: float
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return clean(asdict(self))

    def to_frame(self) -> pd.DataFrame:
        rows = [{"parameter": "mu (adjusted)", "estimate": self.beta, "se": self.se, "ci_low": self.ci_low, "ci_high": self.ci_high,
                 "pval": self.pval}, {"parameter": "tau2", "estimate": self.tau2, "se": self.se_tau2}]
        lo = 0.0
        for j, (d, s, up) in enumerate(zip(self.delta, self.se_delta, self.steps)):
            rows.append({"parameter": f"delta[{lo:g} < p <= {up:g}]", "estimate": d, "se": s, "k": self.k_per_interval[j]})
            lo = up
        return pd.DataFrame(rows)

    def summary(self) -> str:
        d = ", ".join(f"{x:.3f}" for x in self.delta[1:])
        return (f"step-function selection model (steps {', '.join(f'{s:g}' for s in self.steps[:-1])}; one-sided p, {self.alternative}; "
                f"k = {self.k}, per interval {list(self.k_per_interval)}): adjusted estimate {self.beta:.4f} "
                f"[{self.ci_low:.4f}, {self.ci_high:.4f}] (unadjusted ML {self.beta_unadjusted:.4f}); delta = {d}; "
                f"LRT({self.lrt_df}) = {self.lrt:.3f}, p = {self.lrt_pval:.3g}")


class _StepLik:
    """Log-likelihood of the step-function model and its analytic gradient."""

    def __init__(self, y, v, X, steps, alternative):
        self.y, self.v, self.X = y, v, X
        self.sv = np.sqrt(v)
        self.sign = 1.0 if alternative == "greater" else -1.0
        # one-sided p-values and their interval; cut points on the z scale for each upper bound
        z = self.sign * y / self.sv
        p = stats.norm.sf(z)
        self.group = np.searchsorted(np.asarray(steps), p, side="left")  # interval index with p <= step
        self.cuts = stats.norm.isf(np.asarray(steps[:-1]))  # p < s_j  <=>  z > cut_j
        self.n_int = len(steps)
        self.counts = np.bincount(self.group, minlength=self.n_int)

    def _cdf_parts(self, mu, s):
        """P(p <= s_j) for each inner bound j (k × J-1) and its derivatives in mu and tau2."""
        # z = sign*y/sv > cut  <=>  sign*y > sv*cut ; sign*y ~ N(sign*mu, s^2)
        u = (self.sv[:, None] * self.cuts[None, :] - self.sign * mu[:, None]) / s[:, None]
        P = stats.norm.sf(u)
        dens = stats.norm.pdf(u)
        dP_dmu = dens * self.sign / s[:, None]
        dP_dtau2 = dens * u / (2 * s[:, None] ** 2)
        return P, dP_dmu, dP_dtau2

    def value_grad(self, theta):
        p = self.X.shape[1]
        beta, tau2 = theta[:p], theta[p]
        delta = np.concatenate([[1.0], theta[p + 1:]])
        mu = self.X @ beta
        s2 = self.v + tau2
        s = np.sqrt(s2)
        r = (self.y - mu) / s
        P, dPm, dPt = self._cdf_parts(mu, s)
        # interval probabilities: q_0 = P(p <= s_1), q_j = P(p <= s_{j+1}) - P(p <= s_j), last = 1 - P(p <= s_{J-1})
        Pc = np.column_stack([np.zeros(len(mu)), P, np.ones(len(mu))])
        q = np.diff(Pc, axis=1)
        A = q @ delta
        ll = float(np.sum(np.log(delta[self.group])) + np.sum(-0.5 * math.log(2 * math.pi) - np.log(s) - 0.5 * r * r) - np.sum(np.log(A)))
        # dA/dP_j = delta_j - delta_{j+1}
        dd = delta[:-1] - delta[1:]
        dA_mu = dPm @ dd
        dA_t = dPt @ dd
        g_beta = self.X.T @ (r / s - dA_mu / A)
        g_tau2 = float(np.sum(-0.5 / s2 + 0.5 * r * r / s2 - dA_t / A))
        g_delta = self.counts[1:] / delta[1:] - (q[:, 1:] / A[:, None]).sum(axis=0)
        return ll, np.concatenate([g_beta, [g_tau2], g_delta])


def _hessian(fun_grad, theta, free):
    """Central differences of the analytic gradient over the free parameters (symmetrised)."""
    n = len(theta)
    H = np.full((n, n), np.nan)
    idx = np.flatnonzero(free)
    Hf = np.zeros((len(idx), len(idx)))
    for a, i in enumerate(idx):
        h = 1e-5 * max(1.0, abs(theta[i]))
        tp, tm = theta.copy(), theta.copy()
        tp[i] += h
        tm[i] -= h
        Hf[:, a] = (fun_grad(tp)[1][idx] - fun_grad(tm)[1][idx]) / (2 * h)
    Hf = (Hf + Hf.T) / 2
    H[np.ix_(idx, idx)] = Hf
    return H, idx, Hf


def step_selection_model(yi, vi, X=None, *, steps=(0.025,), alternative: str = "greater", level: float = 0.95,
                         delta_max: float = DELTA_MAX) -> SelectionModelResult:
    """Fit metafor's ``selmodel(rma(yi, vi, method = "ML"), type = "stepfun", steps = steps, alternative = ...)``.

    ``alternative`` is the direction the literature favours: one-sided p-values are taken for
    effects above zero ("greater", metafor's default) or below it ("less").
    """
    if alternative not in ("greater", "less"):
        raise MetaInputError("alternative must be 'greater' or 'less'")
    y, v, X, _ = check_inputs(yi, vi, X, None, min_k=3)
    X = np.array(X, dtype=float)  # writable copy (the intercept-only input is a broadcast view)
    steps = tuple(sorted(float(s) for s in steps if 0 < float(s) < 1)) + (1.0,)
    lik = _StepLik(y, v, X, steps, alternative)
    notes = []
    empty = [j for j in range(lik.n_int) if lik.counts[j] == 0]
    if empty:
        raise MetaInputError(
            "the selection model cannot be estimated: no effect has a one-sided p-value in "
            + ", ".join(f"interval {j + 1}" for j in empty) + f" (effects per interval: {lik.counts.tolist()})"
        )
    p = X.shape[1]
    ml = rma_uni(y, v, X, [f"x{i}" for i in range(p)], method="ML")
    b0 = np.array([c.estimate for c in ml.coefficients])
    ll0 = -0.5 * float(np.sum(np.log(2 * np.pi * (v + ml.tau2)) + (y - X @ b0) ** 2 / (v + ml.tau2)))

    def neg(theta):
        ll, g = lik.value_grad(theta)
        return -ll, -g

    bounds = [(None, None)] * p + [(0.0, None)] + [(1e-8, delta_max)] * (lik.n_int - 1)
    best = None
    for d0 in (1.0, 0.5, 2.0):
        start = np.concatenate([b0, [max(ml.tau2, 1e-4)], np.full(lik.n_int - 1, d0)])
        res = optimize.minimize(neg, start, jac=True, method="L-BFGS-B", bounds=bounds,
                                options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 5000, "maxcor": 30})
        if best is None or res.fun < best.fun:
            best = res
    theta = best.x
    ll = -best.fun
    tau_free = theta[p] > 1e-10
    delta_free = (theta[p + 1:] > 1e-6) & (theta[p + 1:] < delta_max * (1 - 1e-6))
    if not tau_free:
        notes.append("tau2 is estimated at 0 (its bound): its standard error is not given")
    if not delta_free.all():
        notes.append("a delta is estimated at its bound: its standard error is not given; treat the fit with caution")
    free = np.concatenate([np.ones(p, bool), [tau_free], delta_free])
    _, idx, Hf = _hessian(lik.value_grad, theta, free)
    vc = np.full((len(theta), len(theta)), np.nan)
    vc[np.ix_(idx, idx)] = np.linalg.inv(-Hf)
    se_all = np.sqrt(np.diag(vc))
    beta, se = float(theta[0]), float(se_all[0])
    crit = stats.norm.isf((1 - level) / 2)
    z = beta / se
    lrt = max(0.0, 2 * (ll - ll0))
    df = lik.n_int - 1
    return SelectionModelResult(
        steps=steps, alternative=alternative, k=len(y), k_per_interval=tuple(int(c) for c in lik.counts), beta=beta, se=se,
        zval=float(z), pval=float(2 * stats.norm.sf(abs(z))), ci_low=beta - crit * se, ci_high=beta + crit * se, tau2=float(theta[p]),
        se_tau2=float(se_all[p]) if tau_free else None, delta=(1.0, *map(float, theta[p + 1:])),
        se_delta=(None, *[float(s) if f else None for s, f in zip(se_all[p + 1:], delta_free)]), lrt=float(lrt), lrt_df=df,
        lrt_pval=float(stats.chi2.sf(lrt, df)), loglik=float(ll), loglik_unadjusted=ll0, beta_unadjusted=float(b0[0]), notes=notes,
    )
