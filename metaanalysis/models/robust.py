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

Tests of several coefficients at once (the omnibus QM of a CR2 fit) are clubSandwich's HTZ test
(:mod:`metaanalysis.models.wald`, Tipton & Pustejovsky 2015) unless ``omnibus="naive-F"`` asks for
metafor's F(m, J − p). A CR2 result carries ``cr2`` (:class:`~metaanalysis.models.wald.CR2Pieces`)
and ``wald`` (the omnibus :class:`~metaanalysis.models.wald.WaldTest`); any other subset of
coefficients is tested with ``wald_test(result, ["a", "b"])``.

API::

    rb = robust(fit, yi, vi, X, cluster, kind="CR2", level=0.95, form="auto", omnibus="HTZ")
    rb.coefficients            # CR2 SE, Satterthwaite df, t tests and CIs per coefficient
    rb.wald                    # WaldTest of all moderators (HTZ): .f, .df_num, .df_denom, .p, .test
    wald_test(rb, names)       # the same for any subset (metaanalysis.models.wald)

References
----------
- Bell RM, McCaffrey DF (2002). Bias reduction in standard errors for linear regression with
  multi-stage samples. Survey Methodology 28:169-181.
- Tipton E (2015). Small sample adjustments for robust variance estimation with
  meta-regression. Psychol Methods 20:375-393.
- Pustejovsky JE, Tipton E (2018). Small-sample methods for cluster-robust variance estimation and
  hypothesis testing in fixed effects models. J Bus Econ Stat 36:672-683 (clubSandwich).
- Tipton E, Pustejovsky JE (2015). Small-sample adjustments for tests of moderators and model fit
  using robust variance estimation in meta-regression. J Educ Behav Stat 40:604-634 (HTZ).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from .inference import coefficient_tests, critical_value
from .multilevel import NestedCovariance, one_blas_thread
from .results import MetaResult
from .structure import Levels
from .uni import MetaInputError
from .wald import CR2Pieces, WaldTest, WaldTestKind, htz_test, naive_f_test

__all__ = ["robust", "symmetric_cr2", "ROBUST_KINDS", "CR2_FORMS", "CHOLESKY_CR2_MAX", "LOW_DF_WARNING", "robust_omnibus"]

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


def robust(fit: MetaResult, yi, vi, X, cluster, *, kind: str = "CR2", level: float = 0.95, form: str = "auto",
           omnibus: WaldTestKind | str = WaldTestKind.HTZ) -> MetaResult:
    """Cluster-robust tests of a fitted model's coefficients (``kind`` = CR2, CR1 or CR0; ``form`` of CR2;
    ``omnibus``: the CR2 test of all moderators, HTZ or naive-F)."""
    kind = kind.upper()
    if kind not in ROBUST_KINDS:
        raise MetaInputError(f"robust inference is one of {', '.join(ROBUST_KINDS)}")
    if form not in CR2_FORMS:
        raise MetaInputError(f"the CR2 form is one of {', '.join(CR2_FORMS)}")
    try:
        omnibus = WaldTestKind(omnibus)
    except ValueError:
        raise MetaInputError(f"the omnibus test is one of {', '.join(k.value for k in WaldTestKind)}, not {omnibus!r}") from None
    # one cluster's n×n eigen-decomposition at a time: threaded LAPACK only adds contention on a busy machine
    with one_blas_thread():
        setup = _setup(fit, yi, vi, X, cluster)
        notes: list[str] = []
        if kind == "CR2":
            u, K, L, form = _cr2_blocks(setup, form, notes)
        else:
            u, K, L, form = setup.xwe, None, None, None
        vcov = setup.M @ (u.T @ u) @ setup.M
        if kind == "CR1":
            vcov *= setup.J / (setup.J - setup.p)
        names = tuple(c.name for c in fit.coefficients)
        pieces = CR2Pieces(names, setup.beta, vcov, setup.M, K, L, setup.J) if kind == "CR2" else None
        dfs = (np.array([pieces.satterthwaite_df(np.eye(setup.p)[c]) for c in range(setup.p)]) if pieces is not None
               else np.full(setup.p, float(setup.J - setup.p)))
        out = _result(fit, setup, kind, vcov, dfs, level, notes)
        out.cr2 = pieces
        if form is not None:
            out.extra["cr2_form"] = form  # "cholesky" (clubSandwich's) or "symmetric" (the O(k) form for large clusters)
        robust_omnibus(out, setup.J, omnibus)
        _prediction(out, fit, level)
    return out


@dataclass
class _Setup:
    """The inputs of a robust fit, checked: residuals, V⁻¹X, V⁻¹e and the per-cluster sums."""

    y: np.ndarray
    X: np.ndarray
    codes: np.ndarray
    J: int
    cov: NestedCovariance
    beta: np.ndarray
    e: np.ndarray
    WX: np.ndarray
    N: np.ndarray  # (J, p, p) Nⱼ = Xⱼ'WⱼXⱼ
    M: np.ndarray  # (X'WX)⁻¹
    xwe: np.ndarray  # (J, p) Xⱼ'Wⱼeⱼ

    @property
    def p(self) -> int:
        return self.X.shape[1]


def _setup(fit: MetaResult, yi, vi, X, cluster) -> _Setup:
    y = np.asarray(yi, float)
    v = np.asarray(vi, float)
    X = np.ones((len(y), 1)) if X is None else np.asarray(X, float)
    if X.ndim == 1:
        X = X[:, None]
    p = X.shape[1]
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
    N = _groupsum_outer(codes, J, X, WX)
    M = np.linalg.inv(N.sum(axis=0))
    xwe = _groupsum_outer(codes, J, X, We[:, None])[:, :, 0]
    return _Setup(y, X, codes, J, cov, beta, e, WX, N, M, xwe)


def _cr2_blocks(s: _Setup, form: str, notes: list[str]):
    """The CR2-adjusted score uⱼ = Eⱼeⱼ of each cluster and the p×p pieces Kⱼ = EⱼΦⱼEⱼ', Lⱼ = Xⱼ'Eⱼ'
    (Eⱼ = Xⱼ'WⱼAⱼ), in clubSandwich's Cholesky form or the O(k) symmetric-root form."""
    sizes = np.bincount(s.codes, minlength=s.J)
    if form == "cholesky" or (form == "auto" and sizes.max() <= CHOLESKY_CR2_MAX):
        order = np.argsort(s.codes, kind="stable")
        bounds = np.searchsorted(s.codes[order], np.arange(s.J + 1))
        u, K, L = np.empty((s.J, s.p)), np.empty((s.J, s.p, s.p)), np.empty((s.J, s.p, s.p))
        for j in range(s.J):
            idx = order[bounds[j]: bounds[j + 1]]
            phi = s.cov.block(idx)
            R = np.linalg.cholesky(phi).T  # Φ = R'R, R upper (R's chol)
            G = R @ (phi - s.X[idx] @ s.M @ s.X[idx].T) @ R.T
            A = R.T @ _inv_sqrt_sym(G) @ R
            AWX = A.T @ s.WX[idx]  # Aⱼ'WⱼXⱼ = Eⱼ'
            u[j] = AWX.T @ s.e[idx]
            K[j] = AWX.T @ phi @ AWX
            L[j] = s.X[idx].T @ AWX
        notes.append("CR2 in clubSandwich's Cholesky form")
        return u, K, L, "cholesky"
    T, u = symmetric_cr2(s.M, s.N, s.xwe)
    notes.append(f"CR2 in Bell & McCaffrey's symmetric-root form (p×p per cluster; largest cluster {sizes.max()} effects), "
                 "not clubSandwich's Cholesky form: same unbiasedness condition, small-sample terms differ slightly")
    TT = np.swapaxes(T, 1, 2)
    return u, TT @ s.N @ T, s.N @ T, "symmetric"


def _result(fit: MetaResult, s: _Setup, kind: str, vcov, dfs, level: float, notes: list[str]) -> MetaResult:
    names = [c.name for c in fit.coefficients]
    coefs, _, _ = coefficient_tests(names, s.beta, vcov, dfs, level)
    notes.insert(0, f"cluster-robust {kind} inference over {s.J} clusters" + (" (Satterthwaite df)" if kind == "CR2" else f" (df = {s.J - s.p})"))
    low = [c.name for c in coefs if c.df is not None and c.df < LOW_DF_WARNING]
    if kind == "CR2" and low:
        notes.append(f"WARNING: Satterthwaite df below {LOW_DF_WARNING:g} for {', '.join(low)}: the CR2 t test is unreliable "
                     "(Tipton 2015); read the interval as indicative")
    return MetaResult(
        model=fit.model, method=fit.method, test=kind, k=fit.k, coefficients=coefs, vcov=vcov, tau2=fit.tau2, sigma2=fit.sigma2,
        n_levels=fit.n_levels, q=fit.q, q_df=fit.q_df, q_pval=fit.q_pval, i2=fit.i2, h2=fit.h2, r2=fit.r2, n_clusters=s.J,
        notes=list(fit.notes) + notes, extra=dict(fit.extra), component_tests=list(fit.component_tests), covariance=fit.covariance,
    )


def robust_omnibus(out: MetaResult, J: int, omnibus: WaldTestKind | str = WaldTestKind.HTZ) -> WaldTest:
    """Set ``out``'s QM (``qm``, ``qm_df``, ``qm_pval``, ``wald``) to the robust test of all moderators:
    HTZ (or naive F on request) for a CR2 fit, F(m, J − p) for CR0/CR1 as metafor's ``robust()``."""
    names = [c.name for c in out.coefficients]
    p = len(names)
    idx = list(range(1, p)) if (p > 1 and names[0] == "intrcpt") else list(range(p))
    if out.cr2 is not None:
        test = htz_test(out.cr2, idx) if WaldTestKind(omnibus) == WaldTestKind.HTZ else naive_f_test(out.cr2, idx)
        if test.test == WaldTestKind.naive_F and len(idx) > 1:
            out.notes.append("QM uses the naive F(m, J - p) test (asked for): it over-rejects with few or unbalanced clusters; "
                             "clubSandwich's HTZ test is the default")
    else:
        beta = np.array([c.estimate for c in out.coefficients])
        bb = beta[idx]
        Q = float(bb @ np.linalg.solve(out.vcov[np.ix_(idx, idx)], bb))
        m, df2 = len(idx), float(J - p)
        test = WaldTest(WaldTestKind.naive_F, tuple(names[i] for i in idx), Q / m, m, df2, float(stats.f.sf(Q / m, m, df2)), Q)
    out.wald = test
    out.qm, out.qm_df, out.qm_pval = test.f, (test.df_num, test.df_denom), test.p
    return test


def _prediction(out: MetaResult, fit: MetaResult, level: float) -> None:
    """The prediction interval of an intercept-only fit with the robust SE and t critical value."""
    if fit.pi_low is None or out.p != 1:
        return
    c = out.coefficients[0]
    crit = critical_value(c.df, level)
    total = (fit.tau2 or 0.0) + sum(fit.sigma2.values())
    half = float(crit) * np.sqrt(total + c.se ** 2)
    out.pi_low, out.pi_high, out.pred_se = float(c.estimate - half), float(c.estimate + half), float(c.se)
