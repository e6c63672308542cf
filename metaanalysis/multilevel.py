"""Three-level (and two-level) models: effects within clusters within studies.

``rma_mv(yi, vi, study, cluster)`` fits metafor's ``rma.mv(yi, vi, random = ~ 1 | study/cluster)``
by REML (or ML). The marginal covariance V = diag(vi) + σ²₁ (same study) + σ²₂ (same cluster) is
block-diagonal with nested compound-symmetric blocks, so V⁻¹u, log|V| and the REML score are
computed in O(k·p) by two nested Sherman–Morrison steps (clusters, then studies); no k×k matrix is
formed. The variance components are found with L-BFGS-B on the exact REML (ML) objective and its
analytic gradient.

References
----------
- Konstantopoulos S (2011). Fixed effects and variance components estimation in three-level
  meta-analysis. Res Synth Methods 2:61-76.
- Van den Noortgate W, López-López JA, Marín-Martínez F, Sánchez-Meca J (2013). Three-level
  meta-analysis of dependent effect sizes. Behav Res Methods 45:576-594.
- Viechtbauer W (2010), metafor: ``rma.mv`` (QE, the prediction interval est ± z·sqrt(SE² + Σσ²)).
- Cheung MW-L (2014). Modeling dependent effect sizes with three-level meta-analyses. Psychol
  Methods 19:211-229 (the multilevel I² reported here: Σσ² / (Σσ² + typical sampling variance)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, stats

from .results import MetaResult
from .uni import MetaInputError, _coefficients, _omnibus, _qe, _trace_P, check_inputs

__all__ = ["rma_mv", "Levels", "encode_levels"]


@dataclass(frozen=True)
class Levels:
    """Integer codes of the nested grouping: study per effect, cluster-within-study per effect."""

    study: np.ndarray
    cluster: np.ndarray | None
    n_study: int
    n_cluster: int
    cluster_study: np.ndarray | None  # the study of each cluster


def encode_levels(study, cluster=None) -> Levels:
    s_codes, s_uni = pd.factorize(pd.Series(study).astype(str), sort=True)
    if cluster is None:
        return Levels(s_codes, None, len(s_uni), 0, None)
    pair = pd.Series(study).astype(str) + "\x1f" + pd.Series(cluster).astype(str)
    c_codes, c_uni = pd.factorize(pair, sort=True)
    cs = np.zeros(len(c_uni), dtype=int)
    cs[c_codes] = s_codes
    return Levels(s_codes, c_codes, len(s_uni), len(c_uni), cs)


class _Structure:
    """V = D + s1·(same study) + s2·(same cluster): products with V⁻¹ and log|V| in O(k)."""

    def __init__(self, v: np.ndarray, lv: Levels):
        self.v, self.lv = v, lv
        self.inv_v = 1.0 / v

    def _sum(self, codes, n, x):
        if x.ndim == 1:
            return np.bincount(codes, weights=x, minlength=n)
        return np.stack([np.bincount(codes, weights=x[:, j], minlength=n) for j in range(x.shape[1])], axis=1)

    def prepare(self, s1: float, s2: float):
        lv, iv = self.lv, self.inv_v
        if lv.cluster is not None:
            a = np.bincount(lv.cluster, weights=iv, minlength=lv.n_cluster)
            gamma = s2 / (1.0 + s2 * a)
            h = iv / (1.0 + s2 * a[lv.cluster])
            logdet_c = float(np.sum(np.log1p(s2 * a)))
        else:
            a = gamma = None
            h = iv
            logdet_c = 0.0
        b = np.bincount(lv.study, weights=h, minlength=lv.n_study)
        delta = s1 / (1.0 + s1 * b)
        self.state = (s1, s2, a, gamma, h, b, delta)
        self.logdet = float(np.sum(np.log(self.v))) + logdet_c + float(np.sum(np.log1p(s1 * b)))

    def solve(self, U: np.ndarray) -> np.ndarray:
        """V⁻¹U for U of shape (k,) or (k, m)."""
        s1, s2, a, gamma, h, b, delta = self.state
        lv, iv = self.lv, self.inv_v
        col = (lambda x: x[:, None]) if U.ndim == 2 else (lambda x: x)
        AU = U * col(iv)
        if lv.cluster is not None:
            AU = AU - col(iv) * col(gamma[lv.cluster]) * self._sum(lv.cluster, lv.n_cluster, U * col(iv))[lv.cluster]
        t = self._sum(lv.study, lv.n_study, U * col(h))
        return AU - col(h) * col(delta[lv.study]) * t[lv.study]

    def group_quad(self, which: str) -> np.ndarray:
        """1_g' V⁻¹ 1_g for every group g of a level ("study" or "cluster")."""
        s1, s2, a, gamma, h, b, delta = self.state
        if which == "study":
            return b / (1.0 + s1 * b)
        e = np.bincount(self.lv.cluster, weights=h, minlength=self.lv.n_cluster)
        return e - delta[self.lv.cluster_study] * e * e


def _objective(params, st: _Structure, X, y, reml: bool, scale: float):
    s1, s2 = params * scale
    st.prepare(s1, s2 if st.lv.cluster is not None else 0.0)
    VX = st.solve(X)
    Vy = st.solve(y)
    XtVX = X.T @ VX
    M = np.linalg.inv(XtVX)
    beta = M @ (X.T @ Vy)
    Py = Vy - VX @ beta
    r = y - X @ beta
    rVr = float(r @ Py)
    sign, logdet_x = np.linalg.slogdet(XtVX)
    f = st.logdet + rVr + (logdet_x if reml else 0.0)
    grads = []
    for which in ("study", "cluster"):
        if which == "cluster" and st.lv.cluster is None:
            grads.append(0.0)
            continue
        codes, n = (st.lv.study, st.lv.n_study) if which == "study" else (st.lv.cluster, st.lv.n_cluster)
        quad = st.group_quad(which)
        gy = np.bincount(codes, weights=Py, minlength=n)
        tr = float(np.sum(quad))
        if reml:
            gX = st._sum(codes, n, VX)  # 1_g' V⁻¹ X
            tr -= float(np.sum((gX @ M) * gX))
        grads.append((tr - float(gy @ gy)) * scale)
    return f, np.array(grads), (beta, M, rVr, logdet_x)


def rma_mv(yi, vi, study, cluster=None, X=None, names=None, *, method: str = "REML", test: str = "z", level: float = 0.95) -> MetaResult:
    """Fit ``rma.mv(yi, vi, mods = X, random = ~ 1 | study/cluster, method = method)``.

    With ``cluster=None`` the model is ``random = ~ 1 | study`` (two levels). ``test="t"`` uses
    t tests with k - p degrees of freedom, as metafor's ``test = "t"``.
    """
    method = method.upper()
    if method not in ("REML", "ML"):
        raise MetaInputError("the multilevel model is fitted by REML or ML")
    y, v, X, names = check_inputs(yi, vi, X, names)
    k, p = X.shape
    lv = encode_levels(study, cluster)
    st = _Structure(v, lv)
    reml = method == "REML"
    scale = max(float(np.var(y)), 1e-12)
    n_par = 2 if cluster is not None else 1

    def fun(theta):
        full = np.array([theta[0], theta[1] if n_par == 2 else 0.0])
        f, g, _ = _objective(full, st, X, y, reml, scale)
        return f, g[:n_par]

    best = None
    for start in ([0.3, 0.3], [1.0, 0.05], [0.05, 1.0]):
        res = optimize.minimize(fun, np.array(start[:n_par]), jac=True, method="L-BFGS-B", bounds=[(0, None)] * n_par,
                                options={"ftol": 1e-15, "gtol": 1e-11, "maxiter": 2000})
        if best is None or res.fun < best.fun:
            best = res
    theta = np.array([best.x[0], best.x[1] if n_par == 2 else 0.0])
    f, g, (beta, M, rVr, logdet_x) = _objective(theta, st, X, y, reml, scale)
    s1, s2 = theta * scale
    df = k - p if test == "t" else None
    vb = M
    coefs, se, crit = _coefficients(names, beta, vb, df, level)
    QE, M0 = _qe(X, y, v)
    vt = (k - p) / _trace_P(X, 1.0 / v, M0)
    sigma2 = {"study": float(s1)}
    n_levels = {"study": lv.n_study}
    if cluster is not None:
        sigma2["study/cluster"] = float(s2)
        n_levels["study/cluster"] = lv.n_cluster
    total = sum(sigma2.values())
    loglik = -0.5 * ((k - p) * math.log(2 * math.pi) - float(np.linalg.slogdet(X.T @ X)[1]) + st.logdet + logdet_x + rVr) if reml \
        else -0.5 * (k * math.log(2 * math.pi) + st.logdet + rVr)
    out = MetaResult(
        model="rma.mv", method=method, test=test, k=k, coefficients=coefs, vcov=vb, tau2=None, sigma2=sigma2, n_levels=n_levels,
        q=QE, q_df=k - p, q_pval=float(stats.chi2.sf(QE, k - p)), i2=100 * total / (total + vt), h2=total / vt + 1,
        extra={"logLik": loglik, "converged": bool(best.success), "typical_vi": vt},
    )
    _omnibus(out, beta, vb, names, df, k, p)
    if p == 1:
        out.pred_se = float(se[0])
        half = crit * math.sqrt(total + se[0] ** 2)
        out.pi_low, out.pi_high = float(beta[0] - half), float(beta[0] + half)
    # the marginal variance blocks, kept for cluster-robust inference
    out.extra["_fit"] = {"y": y, "v": v, "X": X, "levels": lv, "s1": float(s1), "s2": float(s2)}
    return out
