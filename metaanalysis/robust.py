"""Cluster-robust (sandwich) inference for any fitted model, as metafor's ``robust()``.

- ``CR1`` (metafor's default): the sandwich with the small-sample factor J/(J-p), t tests with
  J - p degrees of freedom.
- ``CR0``: the plain sandwich, same degrees of freedom.
- ``CR2`` (``robust(fit, cluster, clubSandwich = TRUE)``): the bias-reduced linearisation of
  Bell & McCaffrey (2002) with the working model as target, and Satterthwaite degrees of freedom per
  coefficient (Tipton 2015; Pustejovsky & Tipton 2018). With inverse-variance weights (W = Φ⁻¹),
  the Satterthwaite Gram matrix reduces to diag(uⱼ'Φⱼuⱼ) − Q'MQ, computed without k×J matrices.

References
----------
- Bell RM, McCaffrey DF (2002). Bias reduction in standard errors for linear regression with
  multi-stage samples. Survey Methodology 28:169-181.
- Tipton E (2015). Small sample adjustments for robust variance estimation with
  meta-regression. Psychol Methods 20:375-393.
- Pustejovsky JE, Tipton E (2018). Small-sample methods for cluster-robust variance estimation and
  hypothesis testing in fixed effects models. J Bus Econ Stat 36:672-683 (clubSandwich).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from .results import Coefficient, MetaResult
from .uni import MetaInputError

__all__ = ["robust", "MAX_CR2_CLUSTER"]

MAX_CR2_CLUSTER = 3000  # CR2 takes a matrix square root of each cluster's n×n block


def _blocks(fit: MetaResult, yi, vi, X, cluster_codes: np.ndarray, n_clusters: int):
    """Per robust cluster: row indices and the model's marginal covariance block Φⱼ."""
    order = np.argsort(cluster_codes, kind="stable")
    bounds = np.searchsorted(cluster_codes[order], np.arange(n_clusters + 1))
    mv = fit.extra.get("_fit")
    out = []
    for j in range(n_clusters):
        idx = order[bounds[j]: bounds[j + 1]]
        if fit.model == "rma.uni":
            phi = np.diag(np.asarray(vi)[idx] + (fit.tau2 or 0.0))
        else:
            lv = mv["levels"]
            s = lv.study[idx]
            phi = np.diag(mv["v"][idx]) + mv["s1"] * (s[:, None] == s[None, :])
            if lv.cluster is not None:
                c = lv.cluster[idx]
                phi = phi + mv["s2"] * (c[:, None] == c[None, :])
        out.append((idx, phi))
    return out


def _inv_sqrt_sym(G: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh((G + G.T) / 2)
    vals = np.where(vals > 1e-12 * max(vals.max(), 1e-300), vals, np.inf)
    return (vecs / np.sqrt(vals)) @ vecs.T


def robust(fit: MetaResult, yi, vi, X, cluster, *, kind: str = "CR2", level: float = 0.95, names=None) -> MetaResult:
    """Cluster-robust tests of a fitted model's coefficients (``kind`` = CR2, CR1 or CR0)."""
    kind = kind.upper()
    if kind not in ("CR0", "CR1", "CR2"):
        raise MetaInputError("robust inference is CR0, CR1 or CR2")
    y = np.asarray(yi, float)
    v = np.asarray(vi, float)
    X = np.ones((len(y), 1)) if X is None else np.asarray(X, float)
    if X.ndim == 1:
        X = X[:, None]
    k, p = X.shape
    codes, uniques = pd.factorize(pd.Series(cluster).astype(str), sort=True)
    J = len(uniques)
    if J <= p:
        raise MetaInputError(f"cluster-robust inference needs more clusters ({J}) than coefficients ({p})")
    if fit.model == "rma.mv":
        study = fit.extra["_fit"]["levels"].study
        per_study = pd.Series(codes).groupby(study).nunique()
        if (per_study > 1).any():
            raise MetaInputError("each study must lie within one robust cluster (use the study or a coarser grouping)")
    blocks = _blocks(fit, y, v, X, codes, J)
    if kind == "CR2":
        big = max(len(idx) for idx, _ in blocks)
        if big > MAX_CR2_CLUSTER:
            raise MetaInputError(
                f"CR2 needs the inverse square root of each cluster's covariance block; the largest cluster has {big} effects "
                f"(limit {MAX_CR2_CLUSTER}). Use CR1, or the three-level model, for clusters this large."
            )
    beta = np.array([c.estimate for c in fit.coefficients])
    e = y - X @ beta
    # bread M = (X'WX)^-1 with the model's weights W = Φ⁻¹ (block-diagonal by cluster)
    WX_blocks, XtWX = [], np.zeros((p, p))
    for idx, phi in blocks:
        WXj = np.linalg.solve(phi, X[idx])
        WX_blocks.append(WXj)
        XtWX += X[idx].T @ WXj
    M = np.linalg.inv(XtWX)
    meat = np.zeros((p, p))
    U_list, Q = [], np.zeros((p, J))
    for j, ((idx, phi), WXj) in enumerate(zip(blocks, WX_blocks)):
        ej = e[idx]
        if kind == "CR2":
            R = np.linalg.cholesky(phi).T  # Φ = R'R
            IH = np.eye(len(idx)) - X[idx] @ M @ WXj.T  # I - X_j M X_j' W_j
            G = R @ IH @ phi @ R.T
            A = R.T @ _inv_sqrt_sym(G) @ R
            vj = WXj.T @ (A @ ej)  # X_j' W_j A_j e_j
            U_list.append((idx, phi, A.T @ WXj))  # A_j' W_j X_j (n_j × p)
        else:
            vj = WXj.T @ ej
        meat += np.outer(vj, vj)
    vcov = M @ meat @ M
    if kind == "CR1":
        vcov *= J / (J - p)
    se = np.sqrt(np.diag(vcov))
    if kind == "CR2":
        dfs = []
        for c in range(p):
            Mc = M[:, c]
            diag = np.zeros(J)
            for j, (idx, phi, AWX) in enumerate(U_list):
                u = AWX @ Mc
                diag[j] = u @ phi @ u
                Q[:, j] = X[idx].T @ u
            gram = np.diag(diag) - Q.T @ M @ Q
            dfs.append(float(np.trace(gram) ** 2 / np.sum(gram * gram)))
        dfs = np.array(dfs)
    else:
        dfs = np.full(p, float(J - p))
    stat = beta / se
    pval = 2 * stats.t.sf(np.abs(stat), dfs)
    crit = stats.t.isf((1 - level) / 2, dfs)
    names = [c.name for c in fit.coefficients]
    coefs = [Coefficient(n, float(beta[i]), float(se[i]), float(stat[i]), float(pval[i]), float(beta[i] - crit[i] * se[i]),
                         float(beta[i] + crit[i] * se[i]), float(dfs[i])) for i, n in enumerate(names)]
    out = MetaResult(
        model=fit.model, method=fit.method, test=kind, k=fit.k, coefficients=coefs, vcov=vcov, tau2=fit.tau2, sigma2=fit.sigma2,
        n_levels=fit.n_levels, q=fit.q, q_df=fit.q_df, q_pval=fit.q_pval, i2=fit.i2, h2=fit.h2, r2=fit.r2, n_clusters=J,
        notes=list(fit.notes) + [f"cluster-robust {kind} inference over {J} clusters" + (" (Satterthwaite df)" if kind == "CR2" else f" (df = {J - p})")],
        extra=dict(fit.extra),
    )
    idx = list(range(1, p)) if (p > 1 and names[0] == "intrcpt") else list(range(p))
    bb = beta[idx]
    m = len(idx)
    wald = float(bb @ np.linalg.solve(vcov[np.ix_(idx, idx)], bb))
    if kind == "CR2" and m == 1:
        df2 = float(dfs[idx[0]])
    else:
        df2 = float(J - p)
        if kind == "CR2":
            out.notes.append("QM with several moderators uses the F test with J - p denominator df, not clubSandwich's HTZ test")
    out.qm, out.qm_df, out.qm_pval = wald / m, (m, df2), float(stats.f.sf(wald / m, m, df2))
    if fit.pi_low is not None and p == 1:
        total = (fit.tau2 or 0.0) + sum(fit.sigma2.values())
        half = crit[0] * np.sqrt(total + se[0] ** 2)
        out.pi_low, out.pi_high, out.pred_se = float(beta[0] - half), float(beta[0] + half), float(se[0])
    return out
