"""Wald inference shared by every model: coefficient tests, the omnibus test of moderators, the
residual heterogeneity statistic QE and metafor's "typical" sampling variance.

One declaration of these formulas, used by :mod:`metaanalysis.models.uni`, :mod:`metaanalysis.models.multilevel`
and :mod:`metaanalysis.models.robust`. Reference: Viechtbauer W (2010), metafor ``rma.uni`` / ``rma.mv``
(``print.rma``: z or t tests, QM as chi² or F, QE with common-effect weights).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from .results import Coefficient

__all__ = ["wls", "coefficient_tests", "critical_value", "omnibus_test", "residual_heterogeneity", "trace_p", "typical_variance"]


def wls(X: np.ndarray, y: np.ndarray, w: np.ndarray):
    """Weighted least squares: coefficients, (X'WX)^-1 and residuals (intercept-only fast path)."""
    if X.shape[1] == 1 and X[0, 0] == 1.0 and X.strides[0] == 0:  # intercept only (broadcast ones)
        sw = float(w.sum())
        b = float(w @ y) / sw
        return np.array([b]), np.array([[1.0 / sw]]), y - b
    Xw = X * w[:, None]
    M = np.linalg.inv(X.T @ Xw)
    b = M @ (Xw.T @ y)
    return b, M, y - X @ b


def trace_p(X, w, M) -> float:
    """tr(P) with P = W - W X (X'WX)^-1 X'W, W = diag(w)."""
    return float(np.sum(w) - np.sum(M * (X.T @ (X * (w * w)[:, None]))))


def critical_value(df, level: float = 0.95):
    """The two-sided critical value: z, or t with ``df`` (a scalar or one per coefficient)."""
    a = (1 - level) / 2
    return stats.norm.isf(a) if df is None else stats.t.isf(a, df)


def coefficient_tests(names, b, vb, df, level: float = 0.95):
    """Wald tests and intervals of every coefficient (z, or t with ``df``, a scalar or one per
    coefficient as metafor's ``dfs = "contain"``); returns the coefficients, SEs and critical values."""
    se = np.sqrt(np.diag(vb))
    stat = b / se
    dfs = None if df is None else np.broadcast_to(np.asarray(df, float), b.shape)
    pval = 2 * stats.norm.sf(np.abs(stat)) if dfs is None else 2 * stats.t.sf(np.abs(stat), dfs)
    crit = np.broadcast_to(critical_value(dfs, level), b.shape)
    coefs = [Coefficient(n, float(b[i]), float(se[i]), float(stat[i]), float(pval[i]), float(b[i] - crit[i] * se[i]),
                         float(b[i] + crit[i] * se[i]), None if dfs is None else float(dfs[i]))
             for i, n in enumerate(names)]
    return coefs, se, crit


def omnibus_test(b, vb, names, df):
    """QM: Wald test of all coefficients but the intercept, as chi² (``df=None``) or F(m, df).
    Returns (statistic, (m, df), p-value)."""
    p = len(b)
    idx = list(range(1, p)) if (p > 1 and names[0] == "intrcpt") else list(range(p))
    bb = b[idx]
    QM = float(bb @ np.linalg.solve(vb[np.ix_(idx, idx)], bb))
    m = len(idx)
    if df is None:
        return QM, (m, None), float(stats.chi2.sf(QM, m))
    return QM / m, (m, float(df)), float(stats.f.sf(QM / m, m, df))


def residual_heterogeneity(X, y, v):
    """QE with common-effect weights 1/v, and that fit's (X'WX)^-1."""
    w0 = 1.0 / v
    _, M0, r0 = wls(X, y, w0)
    return float(np.sum(w0 * r0 * r0)), M0


def typical_variance(X, v, M0) -> float:
    """metafor's typical sampling variance (k - p) / tr(P) under common-effect weights (for I²)."""
    k, p = X.shape
    return (k - p) / trace_p(X, 1.0 / v, M0)
