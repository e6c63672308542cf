"""Cluster-robust (sandwich) inference for any fitted model, as metafor's ``robust()``.

- ``CR1`` (metafor's default): the sandwich with the small-sample factor J/(J-p), t tests with
  J - p degrees of freedom.
- ``CR0``: the plain sandwich, same degrees of freedom.
- ``CR2`` (``robust(fit, cluster, clubSandwich = TRUE)``): the bias-reduced linearisation of
  Bell & McCaffrey (2002) with the working model as target and inverse-variance weights W = Φ⁻¹,
  Satterthwaite degrees of freedom per coefficient (Tipton 2015; Pustejovsky & Tipton 2018).

Two forms of the CR2 adjustment Aⱼ, both solving Aⱼ(Φⱼ − XⱼMXⱼ')Aⱼ' = Φⱼ (target-unbiasedness):

- ``"cholesky"``: clubSandwich's form Aⱼ = Rⱼ'(Rⱼ(Φⱼ − XⱼMXⱼ')Rⱼ')^(-1/2)Rⱼ with Φⱼ = Rⱼ'Rⱼ
  (an nⱼ×nⱼ eigen-decomposition per cluster; equal to clubSandwich to 1e-6).
- ``"symmetric"``: Aⱼ = Φⱼ^(1/2)(I − Φⱼ^(-1/2)XⱼMXⱼ'Φⱼ^(-1/2))^(-1/2)Φⱼ^(-1/2), Bell & McCaffrey's
  symmetric root. With W = Φ⁻¹ everything reduces to p×p algebra per cluster: with
  Nⱼ = Xⱼ'WⱼXⱼ and Tⱼ = (I − MNⱼ)^(-1/2), Xⱼ'WⱼAⱼeⱼ = Tⱼ'Xⱼ'Wⱼeⱼ and Aⱼ'WⱼXⱼ = WⱼXⱼTⱼ, so only
  the O(k) nested solves V⁻¹X and V⁻¹e are needed. It is NOT numerically identical to the
  Cholesky form (the criterion has many solutions; the two differ in second-order small-sample
  terms): ``form="auto"`` uses the Cholesky form when every cluster has at most
  ``CHOLESKY_CR2_MAX`` effects and the symmetric form otherwise, and says so in the notes.

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

from .inference import coefficient_tests
from .multilevel import NestedCovariance, one_blas_thread
from .results import MetaResult
from .structure import Levels
from .uni import MetaInputError

__all__ = ["robust", "symmetric_cr2", "ROBUST_KINDS", "CR2_FORMS", "CHOLESKY_CR2_MAX", "LOW_DF_WARNING"]

ROBUST_KINDS = ("CR2", "CR1", "CR0")
CR2_FORMS = ("auto", "cholesky", "symmetric")
CHOLESKY_CR2_MAX = 1500  # largest cluster for clubSandwich's n×n form under form="auto"
LOW_DF_WARNING = 4.0  # Satterthwaite df below this: the t reference is unreliable (Tipton 2015)


def _covariance(fit: MetaResult, v: np.ndarray) -> NestedCovariance:
    if fit.covariance is not None:
        return fit.covariance
    if fit.model != "rma.uni":
        raise MetaInputError("the fit carries no marginal covariance: refit it with rma_mv")
    empty = Levels((), (), ())
    return NestedCovariance(v + (fit.tau2 or 0.0), empty).prepare([])


def _inv_sqrt_sym(G: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh((G + G.T) / 2)
    vals = np.where(vals > 1e-12 * max(vals.max(), 1e-300), vals, np.inf)
    return (vecs / np.sqrt(vals)) @ vecs.T


def _groupsum_outer(codes, J, A, B) -> np.ndarray:
    """Σ_{i in cluster j} A_i B_i' for every cluster: (J, p, q)."""
    out = np.empty((J, A.shape[1], B.shape[1]))
    for a in range(A.shape[1]):
        for b in range(B.shape[1]):
            out[:, a, b] = np.bincount(codes, weights=A[:, a] * B[:, b], minlength=J)
    return out


def symmetric_cr2(M, N, xwe):
    """p×p CR2 pieces per cluster: Tⱼ = (I − MNⱼ)^(-1/2) (principal root) and uⱼ = Tⱼ'Xⱼ'Wⱼeⱼ."""
    mv, mU = np.linalg.eigh(M)
    Mh, Mih = (mU * np.sqrt(mv)) @ mU.T, (mU / np.sqrt(mv)) @ mU.T
    S = np.eye(len(M))[None] - Mh[None] @ N @ Mh[None]  # I − M^½ Nⱼ M^½ (symmetric)
    sv, sU = np.linalg.eigh((S + np.swapaxes(S, 1, 2)) / 2)
    sv = np.where(sv > 1e-12, sv, np.inf)
    Sih = (sU / np.sqrt(sv)[:, None, :]) @ np.swapaxes(sU, 1, 2)
    T = Mh[None] @ Sih @ Mih[None]
    u = np.einsum("jba,jb->ja", T, xwe)
    return T, u


def robust(fit: MetaResult, yi, vi, X, cluster, *, kind: str = "CR2", level: float = 0.95, form: str = "auto") -> MetaResult:
    """Cluster-robust tests of a fitted model's coefficients (``kind`` = CR2, CR1 or CR0; ``form`` of CR2)."""
    # one cluster's n×n eigen-decomposition at a time: threaded LAPACK only adds contention on a busy machine
    with one_blas_thread():
        return _robust(fit, yi, vi, X, cluster, kind=kind, level=level, form=form)


def _robust(fit: MetaResult, yi, vi, X, cluster, *, kind: str, level: float, form: str) -> MetaResult:
    kind = kind.upper()
    if kind not in ROBUST_KINDS:
        raise MetaInputError(f"robust inference is one of {', '.join(ROBUST_KINDS)}")
    if form not in CR2_FORMS:
        raise MetaInputError(f"the CR2 form is one of {', '.join(CR2_FORMS)}")
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
    cov = _covariance(fit, v)
    if len(cov.levels):
        outer = cov.levels.codes[0]
        if (pd.Series(codes).groupby(outer).nunique() > 1).any():
            raise MetaInputError(f"each group of the outermost random level ({cov.levels.names[0]}) must lie within one robust cluster")
    beta = np.array([c.estimate for c in fit.coefficients])
    e = y - X @ beta
    WX = cov.solve(X)  # V⁻¹X is block-diagonal by cluster: rows of cluster j give WⱼXⱼ
    We = cov.solve(e)
    N = _groupsum_outer(codes, J, X, WX)  # Nⱼ = Xⱼ'WⱼXⱼ
    M = np.linalg.inv(N.sum(axis=0))
    xwe = _groupsum_outer(codes, J, X, We[:, None])[:, :, 0]  # Xⱼ'Wⱼeⱼ
    sizes = np.bincount(codes, minlength=J)
    notes = []
    if kind == "CR2":
        use_chol = form == "cholesky" or (form == "auto" and sizes.max() <= CHOLESKY_CR2_MAX)
        if use_chol:
            order = np.argsort(codes, kind="stable")
            bounds = np.searchsorted(codes[order], np.arange(J + 1))
            T_list, u = [], np.empty((J, p))
            for j in range(J):
                idx = order[bounds[j]: bounds[j + 1]]
                phi = cov.block(idx)
                R = np.linalg.cholesky(phi).T  # Φ = R'R, R upper (R's chol)
                G = R @ (phi - X[idx] @ M @ X[idx].T) @ R.T
                A = R.T @ _inv_sqrt_sym(G) @ R
                AWX = A.T @ WX[idx]  # Aⱼ'WⱼXⱼ
                u[j] = AWX.T @ e[idx]
                T_list.append(AWX)
            notes.append("CR2 in clubSandwich's Cholesky form")
        else:
            T, u = symmetric_cr2(M, N, xwe)
            notes.append(f"CR2 in Bell & McCaffrey's symmetric-root form (p×p per cluster; largest cluster {sizes.max()} effects), "
                         "not clubSandwich's Cholesky form: same unbiasedness condition, small-sample terms differ slightly")
    else:
        u = xwe
    meat = u.T @ u
    vcov = M @ meat @ M
    if kind == "CR1":
        vcov *= J / (J - p)
    if kind == "CR2":
        dfs = np.empty(p)
        for c in range(p):
            mc = M[:, c]
            if use_chol:
                diag = np.empty(J)
                Q = np.empty((p, J))
                for j in range(J):
                    idx = order[bounds[j]: bounds[j + 1]]
                    uu = T_list[j] @ mc  # Aⱼ'WⱼXⱼ M_c
                    diag[j] = uu @ cov.block(idx) @ uu
                    Q[:, j] = X[idx].T @ uu
            else:
                Tm = T @ mc  # (J, p): Tⱼ M_c
                diag = np.einsum("ja,jab,jb->j", Tm, N, Tm)  # M_c'Tⱼ'NⱼTⱼM_c
                Q = np.einsum("jab,jb->aj", N, Tm)  # NⱼTⱼM_c
            gram = np.diag(diag) - Q.T @ M @ Q
            dfs[c] = float(np.trace(gram) ** 2 / np.sum(gram * gram))
    else:
        dfs = np.full(p, float(J - p))
    names = [c.name for c in fit.coefficients]
    coefs, se, crit = coefficient_tests(names, beta, vcov, dfs, level)
    notes.insert(0, f"cluster-robust {kind} inference over {J} clusters" + (" (Satterthwaite df)" if kind == "CR2" else f" (df = {J - p})"))
    low = [c.name for c in coefs if c.df is not None and c.df < LOW_DF_WARNING]
    if kind == "CR2" and low:
        notes.append(f"WARNING: Satterthwaite df below {LOW_DF_WARNING:g} for {', '.join(low)}: the CR2 t test is unreliable "
                     "(Tipton 2015); read the interval as indicative")
    out = MetaResult(
        model=fit.model, method=fit.method, test=kind, k=fit.k, coefficients=coefs, vcov=vcov, tau2=fit.tau2, sigma2=fit.sigma2,
        n_levels=fit.n_levels, q=fit.q, q_df=fit.q_df, q_pval=fit.q_pval, i2=fit.i2, h2=fit.h2, r2=fit.r2, n_clusters=J,
        notes=list(fit.notes) + notes, extra=dict(fit.extra), component_tests=list(fit.component_tests), covariance=fit.covariance,
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
        half = float(crit[0]) * np.sqrt(total + se[0] ** 2)
        out.pi_low, out.pi_high, out.pred_se = float(beta[0] - half), float(beta[0] + half), float(se[0])
    return out
