"""Common-effect, random-effects and mixed-effects meta-regression models (metafor's ``rma.uni``).

Every quantity is computed in O(k·p²) from weighted cross-products; no k×k matrix is formed, so a
model with a million effects fits in a second or two.

References
----------
- Viechtbauer W (2010). Conducting meta-analyses in R with the metafor package. J Stat Softw 36(3).
  The definitions of QE, QM, I², H², R² and the prediction interval follow ``metafor::rma.uni``.
- DerSimonian R, Laird N (1986). Meta-analysis in clinical trials. Control Clin Trials 7:177-188 (DL).
- Hedges LV (1983). A random effects model for effect sizes. Psychol Bull 93:388-395 (HE).
- Sidik K, Jonkman JN (2005). Simple heterogeneity variance estimation for meta-analysis. JRSS C 54:367-384 (SJ).
- Paule RC, Mandel J (1982). Consensus values and weighting factors. J Res NBS 87:377-385 (PM);
  Morris CN (1983) for the empirical Bayes (EB) estimator, whose estimating equation is PM's.
- Viechtbauer W (2005). Bias and efficiency of meta-analytic variance estimators in the random-effects
  model. J Educ Behav Stat 30:261-293 (ML, REML by Fisher scoring).
- Viechtbauer W (2021). Median-unbiased estimators for the amount of heterogeneity (PMM).
- Knapp G, Hartung J (2003). Improved tests for a random effects meta-regression with a single
  covariate. Stat Med 22:2693-2710 (Knapp-Hartung adjustment).
- Viechtbauer W (2007). Confidence intervals for the amount of heterogeneity in meta-analysis.
  Stat Med 26:37-52 (Q-profile interval, ``confint.rma.uni``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

from .inference import coefficient_tests, omnibus_test, residual_heterogeneity, trace_p, typical_variance, wls
from .results import MetaResult

__all__ = ["METHODS", "TAU2_ESTIMATORS", "rma_uni", "tau2_estimate", "q_profile_ci", "TauCI", "check_inputs", "MetaInputError"]

_TOL = 1e-12


class MetaInputError(ValueError):
    """Inputs a model cannot be fitted to (a message a user can act on)."""


def check_inputs(yi, vi, X=None, names=None, min_k: int = 2):
    yi = np.asarray(yi, dtype=float)
    vi = np.asarray(vi, dtype=float)
    if yi.ndim != 1 or vi.shape != yi.shape:
        raise MetaInputError("yi and vi must be vectors of the same length")
    if len(yi) < min_k:
        raise MetaInputError(f"need at least {min_k} effects, got {len(yi)}")
    if not np.all(np.isfinite(yi)):
        raise MetaInputError("yi holds missing or non-finite values")
    if not np.all(np.isfinite(vi)) or np.any(vi <= 0):
        raise MetaInputError("vi must be positive and finite for every effect")
    if X is None:
        X = np.broadcast_to(1.0, (len(yi), 1))  # a read-only column of ones: the intercept-only fast path
        names = ["intrcpt"]
    X = np.asarray(X, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    if X.shape[0] != len(yi):
        raise MetaInputError("the moderator matrix must have one row per effect")
    if not np.all(np.isfinite(X)):
        raise MetaInputError("moderators hold missing or non-finite values")
    if names is None:
        names = [f"x{i}" for i in range(X.shape[1])]
    if X.shape[1] > 1 and np.linalg.matrix_rank(X) < X.shape[1]:
        raise MetaInputError("the moderators are collinear (the model matrix is not of full rank)")
    if len(yi) <= X.shape[1]:
        raise MetaInputError(f"{X.shape[1]} coefficients need more than {X.shape[1]} effects")
    return yi, vi, X, list(names)


def _fisher(y, v, X, reml: bool, tau2: float) -> float:
    """ML / REML by Fisher scoring (as metafor), projected onto tau² >= 0, iterated to 1e-12."""
    k, p = X.shape
    for _ in range(10_000):
        w = 1.0 / (v + tau2)
        b, M, r = wls(X, y, w)
        Py = w * r
        ypPPy = float(Py @ Py)
        if reml:
            A = M @ (X.T @ (X * (w * w)[:, None]))  # (X'WX)^-1 X'W²X
            B = M @ (X.T @ (X * (w ** 3)[:, None]))
            trP = float(np.sum(w) - np.trace(A))
            trPP = float(np.sum(w * w) - 2 * np.trace(B) + np.sum(A * A.T))
            adj = (ypPPy - trP) / trPP
        else:
            adj = (ypPPy - float(np.sum(w))) / float(np.sum(w * w))
        step = adj
        new = tau2 + step
        while new < 0 and abs(step) > _TOL:  # step halving at the boundary, as metafor
            step /= 2
            new = tau2 + step
        new = max(0.0, new)
        if abs(new - tau2) <= _TOL * max(1.0, tau2):
            return new
        tau2 = new
    raise RuntimeError("Fisher scoring did not converge")  # pragma: no cover


def _q(X, y, w) -> float:
    _, _, r = wls(X, y, w)
    return float(np.sum(w * r * r))


def _root_q(y, v, X, target: float) -> float:
    """The tau² at which the generalised Q statistic equals ``target`` (0 if Q(0) <= target)."""
    f = lambda t: _q(X, y, 1.0 / (v + t)) - target  # noqa: E731 - decreasing in t
    if f(0.0) <= 0:
        return 0.0
    hi = max(1.0, float(np.var(y)) * 10)
    while f(hi) > 0:
        hi *= 10
    return optimize.brentq(f, 0.0, hi, xtol=1e-15, rtol=4 * np.finfo(float).eps, maxiter=500)


def _tau2_fixed(y, v, X) -> float:
    """FE / EE: no heterogeneity."""
    return 0.0


def _tau2_dl(y, v, X) -> float:
    """DerSimonian & Laird (1986): method of moments with inverse-variance weights."""
    k, p = X.shape
    w = 1.0 / v
    b, M, r = wls(X, y, w)
    Q = float(np.sum(w * r * r))
    return max(0.0, (Q - (k - p)) / trace_p(X, w, M))


def _tau2_he(y, v, X) -> float:
    """Hedges (1983): method of moments with unit weights."""
    k, p = X.shape
    b, M, r = wls(X, y, np.ones_like(y))
    rss = float(r @ r)
    trPV = float(np.sum(v) - np.sum(M * (X.T @ (X * v[:, None]))))
    return max(0.0, (rss - trPV) / (k - p))


def _tau2_sj(y, v, X) -> float:
    """Sidik & Jonkman (2005): initial estimate from the OLS residuals (= var(y)(k-1)/k without moderators)."""
    k, p = X.shape
    _, _, r0 = wls(X, y, np.ones_like(y))
    tau2_0 = float(r0 @ r0) / k
    w = 1.0 / (v + tau2_0)
    _, _, r = wls(X, y, w)
    return tau2_0 * float(np.sum(w * r * r)) / (k - p)


def _tau2_likelihood(reml: bool):
    def estimate(y, v, X) -> float:
        k, p = X.shape
        start = _tau2_he(y, v, X) if k > p else 0.0
        return _fisher(y, v, X, reml, max(start, 0.0))

    estimate.__doc__ = f"{'REML' if reml else 'ML'} by Fisher scoring from the HE estimate (Viechtbauer 2005)."
    return estimate


def _tau2_pm(y, v, X) -> float:
    """Paule & Mandel (1982) / empirical Bayes (Morris 1983): generalised Q equals its df."""
    k, p = X.shape
    return _root_q(y, v, X, k - p)


def _tau2_pmm(y, v, X) -> float:
    """Median-unbiased Paule-Mandel (Viechtbauer 2021): generalised Q equals the median of chi²(k - p)."""
    k, p = X.shape
    return _root_q(y, v, X, float(stats.chi2.ppf(0.5, k - p)))


# The tau² estimator registry: the only dispatch of rma.uni's ``method`` (a new estimator joins here).
TAU2_ESTIMATORS = {"FE": _tau2_fixed, "EE": _tau2_fixed, "DL": _tau2_dl, "HE": _tau2_he, "SJ": _tau2_sj, "ML": _tau2_likelihood(False),
                   "REML": _tau2_likelihood(True), "PM": _tau2_pm, "EB": _tau2_pm, "PMM": _tau2_pmm}
METHODS = tuple(TAU2_ESTIMATORS)


def tau2_estimate(y, v, X, method: str) -> float:
    """tau² by ``method``, through :data:`TAU2_ESTIMATORS` (see the module docstring for references)."""
    try:
        estimator = TAU2_ESTIMATORS[method]
    except KeyError:
        raise MetaInputError(f"unknown method {method!r}; use one of {', '.join(METHODS)}") from None
    return estimator(y, v, X)


def rma_uni(yi, vi, X=None, names=None, *, method: str = "REML", knha: bool = False, level: float = 0.95, tau2: float | None = None) -> MetaResult:
    """Fit ``rma(yi, vi, mods = X, method = method, test = "knha" if knha else "z")``.

    ``X`` holds the moderators *with* the intercept column (see :mod:`metaanalysis.models.design`);
    without it the model is intercept-only. ``tau2`` fixes the heterogeneity instead of estimating it.
    """
    method = method.upper()
    if method not in METHODS:
        raise MetaInputError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
    y, v, X, names = check_inputs(yi, vi, X, names)
    k, p = X.shape
    t2 = tau2_estimate(y, v, X, method) if tau2 is None else float(tau2)
    w = 1.0 / (v + t2)
    b, vb, r = wls(X, y, w)
    df = None
    if knha:
        s2w = float(np.sum(w * r * r)) / (k - p)
        vb = vb * s2w
        df = k - p
    coefs, se, crit = coefficient_tests(names, b, vb, df, level)
    crit = float(crit[0])
    # heterogeneity (always from the common-effect weights)
    QE, M0 = residual_heterogeneity(X, y, v)
    QEp = float(stats.chi2.sf(QE, k - p))
    if method in ("FE", "EE"):
        I2 = max(0.0, 100 * (QE - (k - p)) / QE) if QE > 0 else 0.0
        H2 = QE / (k - p)
    else:
        vt = typical_variance(X, v, M0)
        I2 = 100 * t2 / (vt + t2)
        H2 = t2 / vt + 1
    res = MetaResult(
        model="rma.uni", method=method, test="knha" if knha else "z", k=k, coefficients=coefs, vcov=vb, tau2=t2,
        q=QE, q_df=k - p, q_pval=QEp, i2=I2, h2=H2,
    )
    res.qm, res.qm_df, res.qm_pval = omnibus_test(b, vb, names, df)
    if p == 1 and method not in ("FE", "EE"):
        res.pred_se = float(se[0])
        half = crit * math.sqrt(t2 + se[0] ** 2)
        res.pi_low, res.pi_high = float(b[0] - half), float(b[0] + half)
    if p > 1 and names[0] == "intrcpt" and method not in ("FE", "EE") and tau2 is None:
        t2_0 = tau2_estimate(y, v, np.ones((k, 1)), method)
        res.r2 = max(0.0, 100 * (t2_0 - t2) / t2_0) if t2_0 > 0 else 0.0
    return res


@dataclass(frozen=True)
class TauCI:
    """Q-profile confidence intervals for tau², tau, I² and H² (``confint.rma.uni``)."""

    tau2: tuple[float, float, float]
    tau: tuple[float, float, float]
    i2: tuple[float, float, float]
    h2: tuple[float, float, float]

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame([self.tau2, self.tau, self.i2, self.h2], index=["tau^2", "tau", "I^2(%)", "H^2"], columns=["estimate", "ci_low", "ci_high"])


def q_profile_ci(yi, vi, X=None, *, method: str = "REML", level: float = 0.95) -> TauCI:
    """Q-profile CI for tau² (Viechtbauer 2007): the tau² values where the generalised Q statistic
    equals the chi²(k-p) quantiles; I² and H² bounds follow from tau² with the typical variance."""
    y, v, X, _ = check_inputs(yi, vi, X)
    k, p = X.shape
    est = tau2_estimate(y, v, X, method)
    a = (1 - level) / 2
    lb = _root_q(y, v, X, float(stats.chi2.isf(a, k - p)))
    ub = _root_q(y, v, X, float(stats.chi2.ppf(a, k - p)))
    w0 = 1.0 / v
    _, M0, _ = wls(X, y, w0)
    vt = (k - p) / trace_p(X, w0, M0)
    i2 = lambda t: 100 * t / (vt + t)  # noqa: E731
    h2 = lambda t: t / vt + 1  # noqa: E731
    return TauCI((est, lb, ub), (math.sqrt(est), math.sqrt(lb), math.sqrt(ub)), (i2(est), i2(lb), i2(ub)), (h2(est), h2(lb), h2(ub)))
