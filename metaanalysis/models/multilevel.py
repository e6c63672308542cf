"""Multilevel models with any number of nested random effects: metafor's
``rma.mv(yi, vi, mods, random = ~ 1 | a/b/c, method = "REML" | "ML")``.

The random structure is data: a list of grouping columns, outer to inner (``study/cluster/es``).
The marginal covariance V = diag(vi) + Σ_l σ²_l Z_l Z_l' is block-diagonal with nested
compound-symmetric blocks, so V⁻¹U, log|V| and the exact REML (ML) objective with its analytic
gradient are computed in O(k·L·p) by one Sherman–Morrison–Woodbury step per level, innermost first
(:class:`NestedCovariance`); no k×k matrix is formed. The gradient of log|V| (tr V⁻¹Z_lZ_l') is the
reverse-mode derivative of that recursion. Variance components are found with L-BFGS-B on the
exact objective. Each component is tested by a likelihood-ratio test against the model without it
(σ²_l fixed at 0, metafor's ``anova(full, reduced)``: χ²(1), conservative on the boundary).

References
----------
- Konstantopoulos S (2011). Fixed effects and variance components estimation in three-level
  meta-analysis. Res Synth Methods 2:61-76.
- Van den Noortgate W, López-López JA, Marín-Martínez F, Sánchez-Meca J (2013). Three-level
  meta-analysis of dependent effect sizes. Behav Res Methods 45:576-594.
- Viechtbauer W (2010), metafor: ``rma.mv`` (QE; the prediction interval est ± q·sqrt(SE² + Σσ²);
  ``dfs = "contain"``: per coefficient, the fewest levels of a random factor within whose groups
  the coefficient's column is constant, minus p).
- Cheung MW-L (2014). Modeling dependent effect sizes with three-level meta-analyses. Psychol
  Methods 19:211-229 (the multilevel I²: Σσ² / (Σσ² + typical sampling variance)).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import optimize, stats
from threadpoolctl import ThreadpoolController

from .inference import coefficient_tests, omnibus_test, residual_heterogeneity, typical_variance
from .results import ComponentTest, MetaResult
from .structure import Levels, encode_levels
from .uni import MetaInputError, check_inputs

__all__ = ["MULTILEVEL_METHODS", "NestedCovariance", "rma_mv", "contain_df", "one_blas_thread"]

MULTILEVEL_METHODS = ("REML", "ML")  # the one declaration: a multilevel model is fitted by REML or ML
DFS = ("residual", "contain")
_BLAS: list[ThreadpoolController] = []  # found once: scanning the loaded libraries costs ~5 ms a fit


def one_blas_thread():
    """Limit BLAS to one thread (a context manager), with the library scan done once per process."""
    if not _BLAS:
        _BLAS.append(ThreadpoolController())
    return _BLAS[0].limit(limits=1, user_api="blas")


class NestedCovariance:
    """V = diag(v) + Σ_l σ²_l Z_l Z_l' for nested levels: V⁻¹U, log|V| and d log|V| / dσ²_l in O(k·L).

    Rows are kept internally in nested order (every group contiguous at every level), so sums over
    groups are ``np.add.reduceat`` and expansions ``np.repeat``."""

    def __init__(self, v: np.ndarray, levels: Levels):
        self.v, self.levels = np.asarray(v, float), levels
        self.sigma2 = np.zeros(len(levels))
        if len(levels):
            self._order = np.argsort(levels.codes[-1], kind="stable")
            self._starts, self._sizes = [], []
            for codes, n in zip(levels.codes, levels.counts):
                sc = codes[self._order]
                starts = np.flatnonzero(np.r_[True, sc[1:] != sc[:-1]])
                if len(starts) != n:
                    raise MetaInputError("the random levels are not nested (a group spans groups of an outer level)")
                self._starts.append(starts)
                self._sizes.append(np.diff(np.r_[starts, len(sc)]))
            # level l's groups as runs of level l+1's groups: sums move outward in group space
            self._up = []
            for l in range(len(levels) - 1):
                sc = levels.codes[l][self._order][self._starts[l + 1]]
                self._up.append(np.flatnonzero(np.r_[True, sc[1:] != sc[:-1]]))
        else:
            self._order = np.arange(len(self.v))
        self._unit = [len(sz) == len(self.v) for sz in getattr(self, "_sizes", [])]  # levels with one row per group
        self._identity = bool(np.all(self._order[1:] > self._order[:-1]))
        self._vs = self.v if self._identity else self.v[self._order]

    def _sum(self, l: int, x: np.ndarray) -> np.ndarray:
        if self._unit[l]:  # one row per group (the effect level): the sums are the rows
            return x
        return np.add.reduceat(x, self._starts[l], axis=0)

    def _rep(self, l: int, g: np.ndarray) -> np.ndarray:
        if self._unit[l]:
            return g
        return np.repeat(g, self._sizes[l], axis=0)

    def prepare(self, sigma2) -> "NestedCovariance":
        """Set the variance components (outer to inner) and factor V: one Woodbury step per level."""
        L = len(self.levels)
        self.sigma2 = np.asarray(sigma2, float)
        h = 1.0 / self._vs
        self._h, self._q, self._a = [None] * L, [None] * L, [None] * L
        logdet = float(np.sum(np.log(self._vs)))
        for l in reversed(range(L)):
            q = self._sum(l, h)  # 1_g' A_{l+1}^-1 1_g
            a = 1.0 + self.sigma2[l] * q
            self._h[l], self._q[l], self._a[l] = h, q, a
            logdet += float(np.sum(np.log(a)))
            h = h / self._rep(l, a)
        self.logdet = logdet
        return self

    def solve(self, U: np.ndarray) -> np.ndarray:
        """V⁻¹U for U of shape (k,) or (k, m).

        Level by level, innermost first: A_l⁻¹U = A_{l+1}⁻¹U − h_l·γ_l[Z_l'A_{l+1}⁻¹U]. The group sums
        Z_l'A_{l+1}⁻¹U are formed in group space (Σ_g h_m = q_m), so the rows are summed once."""
        U = np.asarray(U, float)
        two = U.ndim == 2
        W0 = (U if self._identity else U[self._order]) / (self._vs[:, None] if two else self._vs)
        L = len(self.levels)
        if L == 0:
            return W0 if self._identity else self._unsort(W0)
        S = self.all_group_sums_sorted(W0)
        W = W0
        D = None  # Σ over inner levels of the group sums already taken out, at the current level
        for l in reversed(range(L)):
            t = S[l] if D is None else S[l] - D
            gamma = self.sigma2[l] / self._a[l]
            c = gamma[:, None] * t if two else gamma * t
            E = (self._q[l][:, None] * c if two else self._q[l] * c) + (0 if D is None else D)
            if l > 0:
                D = np.add.reduceat(E, self._up[l - 1], axis=0)
            if np.any(gamma):
                corr = self._rep(l, c)
                W = W - (self._h[l][:, None] * corr if two else self._h[l] * corr)
        return W if self._identity else self._unsort(W)

    def _unsort(self, W: np.ndarray) -> np.ndarray:
        out = np.empty_like(W)
        out[self._order] = W
        return out

    def all_group_sums_sorted(self, x: np.ndarray) -> list[np.ndarray]:
        L = len(self.levels)
        out = [None] * L
        out[-1] = self._sum(L - 1, x)
        for l in reversed(range(L - 1)):
            out[l] = np.add.reduceat(out[l + 1], self._up[l], axis=0)
        return out

    def logdet_gradient(self) -> np.ndarray:
        """d log|V| / dσ²_l = tr(V⁻¹ Z_l Z_l') for every level (reverse mode through :meth:`prepare`)."""
        L = len(self.levels)
        grad = np.zeros(L)
        hbar = None
        for l in range(L):  # reverse of the forward order (inner to outer)
            h_in, q, a = self._h[l], self._q[l], self._a[l]
            abar = 1.0 / a if hbar is None else 1.0 / a - self._sum(l, hbar * h_in) / (a * a)
            grad[l] = float(abar @ q)
            if l < L - 1:
                hb = self._rep(l, abar * self.sigma2[l])
                hbar = hb if hbar is None else hbar / self._rep(l, a) + hb
        return grad

    def all_group_sums(self, x: np.ndarray) -> list[np.ndarray]:
        """Σ over the rows of every group, for every level (outer to inner): one pass over the rows
        (a level with one row per group gives the rows themselves, not a copy)."""
        x = np.asarray(x, float)
        return self.all_group_sums_sorted(x if self._identity else x[self._order])

    def group_sums(self, l: int, x: np.ndarray) -> np.ndarray:
        """Σ over the rows of every group of level l (groups in code order)."""
        x = np.asarray(x, float)
        return self._sum(l, x if self._identity else x[self._order])

    def block(self, idx: np.ndarray) -> np.ndarray:
        """The dense block V[idx, idx] (for clubSandwich's exact CR2 on small clusters)."""
        out = np.diag(self.v[idx])
        for l, s2 in enumerate(self.sigma2):
            if s2 > 0:
                c = self.levels.codes[l][idx]
                out = out + s2 * (c[:, None] == c[None, :])
        return out


def _objective(theta, st: NestedCovariance, X, y, reml: bool, scale: float, Xy: np.ndarray | None = None):
    st.prepare(theta * scale)
    S = st.solve(np.column_stack([X, y]) if Xy is None else Xy)
    VX, Vy = S[:, :-1], S[:, -1]
    XtVX = X.T @ VX
    if XtVX.shape == (1, 1):  # one coefficient: the same numbers as inv / slogdet, without LAPACK's call overhead
        M = np.array([[1.0 / XtVX[0, 0]]])
        logdet_x = math.log(abs(XtVX[0, 0]))
    else:
        M = np.linalg.inv(XtVX)
        logdet_x = float(np.linalg.slogdet(XtVX)[1])
    beta = M @ (X.T @ Vy)
    Py = Vy - VX @ beta
    rVr = float((y - X @ beta) @ Py)
    f = st.logdet + rVr + (logdet_x if reml else 0.0)
    grad = st.logdet_gradient()
    sums = st.all_group_sums(np.column_stack([Py, VX]) if reml else Py)
    for l in range(len(st.levels)):
        G = sums[l]
        gy = G[:, 0] if reml else G
        g = grad[l] - float(gy @ gy)
        if reml:
            gX = G[:, 1:]
            g -= float(np.sum((gX @ M) * gX))
        grad[l] = g * scale
    return f, grad, (beta, M, rVr, logdet_x)


def _optimise(st: NestedCovariance, X, y, reml: bool, scale: float, free: np.ndarray, fixed: np.ndarray | None = None,
              start: np.ndarray | None = None):
    """Minimise −2 log L (REML or ML, up to a constant) over the free components; the others keep
    ``fixed`` (default 0), in units of ``scale``. ``start``: the first starting point of the free
    components (default 0.3 each), e.g. a related fit's optimum (leave-one-out refits)."""
    L = len(st.levels)
    n_free = int(free.sum())
    base = np.zeros(L) if fixed is None else np.asarray(fixed, float)
    if n_free == 0:
        return base.copy(), True

    Xy = np.column_stack([X, y])

    def fun(t):
        full = base.copy()
        full[free] = t
        f, g, _ = _objective(full, st, X, y, reml, scale, Xy)
        return f, g[free]

    # L-BFGS-B calls BLAS on tiny matrices: threaded BLAS only adds contention there (30x on a busy machine)
    with one_blas_thread():
        best = _minimise(fun, [np.full(n_free, 0.3) if start is None else np.maximum(np.asarray(start, float), 0.0)], n_free)
        if n_free > 1 and np.any(best.x <= 1e-10) and len(y) <= 50_000:
            # a component at its bound: also start from each component alone, keep the best optimum
            others = _minimise(fun, [np.where(np.arange(n_free) == i, 1.0, 0.05) for i in range(n_free)], n_free)
            best = others if others.fun < best.fun else best
    theta = base.copy()
    theta[free] = best.x
    return theta, bool(best.success)


def _minimise(fun, starts, n_free):
    best = None
    for s0 in starts:
        res = optimize.minimize(fun, s0, jac=True, method="L-BFGS-B", bounds=[(0, None)] * n_free,
                                options={"ftol": 1e-15, "gtol": 1e-11, "maxiter": 3000})
        if best is None or res.fun < best.fun:
            best = res
    return best


def contain_df(X: np.ndarray, levels: Levels) -> np.ndarray:
    """metafor's ``dfs = "contain"``: for each column of X, the fewest groups among the levels whose
    groups hold a single value of that column (k if none), minus p."""
    k, p = X.shape
    out = np.full(p, k, dtype=float)
    for j in range(p):
        xj = pd.factorize(X[:, j])[0]
        for codes, n in zip(levels.codes, levels.counts):
            if (pd.Series(xj).groupby(codes).nunique() == 1).all():
                out[j] = min(out[j], n)
    return out - p


def rma_mv(yi, vi, study=None, cluster=None, X=None, names=None, *, random: Sequence | None = None, random_names: Sequence[str] | None = None,
           method: str = "REML", test: str = "z", dfs: str = "residual", level: float = 0.95, component_tests: bool = False,
           profile_ci: bool = False, start: dict[str, float] | None = None) -> MetaResult:
    """Fit ``rma.mv(yi, vi, mods = X, random = ~ 1 | a/b/..., method = method, test = test, dfs = dfs)``.

    The nested grouping is ``random`` (columns, outer to inner) named ``random_names``; the shorthand
    ``study, cluster`` is ``~ 1 | study/cluster`` (``cluster=None``: ``~ 1 | study``). ``test="t"``
    uses t tests with ``dfs`` degrees of freedom: ``"residual"`` (k − p) or ``"contain"`` (see
    :func:`contain_df`). ``component_tests`` adds the likelihood-ratio test of every σ²;
    ``profile_ci`` the profile-likelihood CI of every σ² (metafor's ``confint`` on ``rma.mv``).
    ``start``: starting values of the σ² by component name (a related fit's ``sigma2``; components
    it lacks start at the default), which saves iterations in leave-one-out and subset refits; the
    optimum is the same to the optimiser's tolerance.
    """
    method = method.upper()
    if method not in MULTILEVEL_METHODS:
        raise MetaInputError(f"the multilevel model is fitted by {' or '.join(MULTILEVEL_METHODS)}, not {method}")
    if test not in ("z", "t") or dfs not in DFS:
        raise MetaInputError("test is z or t, and dfs residual or contain")
    if random is None:
        if study is None:
            raise MetaInputError("give the random structure: random=[columns, outer to inner] (or study, cluster)")
        random = [study] if cluster is None else [study, cluster]
        random_names = random_names or (["study"] if cluster is None else ["study", "cluster"])
        labels = ["study", "study/cluster"][: len(random)]
    else:
        random_names = list(random_names or [f"level{i + 1}" for i in range(len(random))])
        labels = None
    y, v, X, names = check_inputs(yi, vi, X, names)
    k, p = X.shape
    lv = encode_levels(list(random), list(random_names))
    if labels:
        lv = Levels(tuple(labels), lv.codes, lv.counts)
    # fit on the rows in nested order (every group contiguous), keep the covariance in the caller's order
    order = np.argsort(lv.codes[-1], kind="stable")
    lv_sorted = Levels(lv.names, tuple(c[order] for c in lv.codes), lv.counts)
    st = NestedCovariance(v[order], lv_sorted)
    X_in, y_in = X, y
    X, y = np.ascontiguousarray(X[order]), y[order]
    reml = method == "REML"
    scale = max(float(np.var(y)), 1e-12)
    free = np.ones(len(lv), dtype=bool)
    theta0 = None if start is None else np.array([start.get(n, 0.3 * scale) / scale for n in lv.names])
    theta, converged = _optimise(st, X, y, reml, scale, free, start=theta0)
    f, _, (beta, M, rVr, logdet_x) = _objective(theta, st, X, y, reml, scale)
    sig = theta * scale
    const = (k - p) * math.log(2 * math.pi) - float(np.linalg.slogdet(X.T @ X)[1]) if reml else k * math.log(2 * math.pi)
    loglik = -0.5 * (const + f)
    df = None
    if test == "t":
        df = contain_df(X_in, lv) if dfs == "contain" else np.full(p, float(k - p))
        if np.any(df < 1):
            raise MetaInputError(f"dfs = {dfs!r} leaves fewer than 1 degree of freedom for a coefficient (levels: {dict(zip(lv.names, lv.counts))})")
    coefs, se, crit = coefficient_tests(names, beta, M, df, level)
    QE, M0 = residual_heterogeneity(X_in, y_in, v)
    vt = typical_variance(X, v, M0)
    sigma2 = {n: float(s) for n, s in zip(lv.names, sig)}
    total = float(sum(sig))
    notes = []
    if test == "t":
        notes.append(f"t tests with dfs = {dfs!r}: df = {', '.join(f'{d:g}' for d in df)}")
    out = MetaResult(
        model="rma.mv", method=method, test=test, k=k, coefficients=coefs, vcov=M, tau2=None, sigma2=sigma2,
        n_levels=dict(zip(lv.names, lv.counts)), q=QE, q_df=k - p, q_pval=float(stats.chi2.sf(QE, k - p)),
        i2=100 * total / (total + vt), h2=total / vt + 1, notes=notes,
        extra={"logLik": loglik, "converged": converged, "typical_vi": vt},
    )
    out.qm, out.qm_df, out.qm_pval = omnibus_test(beta, M, names, None if df is None else float(np.min(df[1:] if p > 1 else df)))
    if p == 1:
        out.pred_se = float(se[0])
        half = float(crit[0]) * math.sqrt(total + se[0] ** 2)
        out.pi_low, out.pi_high = float(beta[0] - half), float(beta[0] + half)
    if component_tests:
        out.component_tests = _component_tests(st, X, y, reml, scale, theta, f, lv)
    if profile_ci:
        out.sigma2_ci = _profile_ci(st, X, y, reml, scale, theta, f, lv, level)
    out.covariance = NestedCovariance(v, lv).prepare(sig)
    return out


def _profile_ci(st, X, y, reml, scale, theta, f_full, lv, level) -> dict[str, tuple[float, float]]:
    """Profile-likelihood CI of each σ²: where −2 log L, minimised over the other components, rises
    by the χ²(1) quantile above its minimum (metafor ``confint.rma.mv``, ``type = "profile"``)."""
    crit = float(stats.chi2.ppf(level, 1))
    out = {}
    for l in range(len(lv)):
        free = np.ones(len(lv), dtype=bool)
        free[l] = False

        def g(val):
            fixed = theta.copy()
            fixed[l] = val
            th, _ = _optimise(st, X, y, reml, scale, free, fixed)
            return _objective(th, st, X, y, reml, scale)[0] - f_full - crit

        lo = 0.0 if g(0.0) <= 0 else optimize.brentq(g, 0.0, theta[l], xtol=1e-10, rtol=1e-10)
        hi_b = max(theta[l], 1e-3) * 2
        while g(hi_b) < 0:
            hi_b *= 2
            if hi_b > 1e8:
                break
        hi = optimize.brentq(g, theta[l], hi_b, xtol=1e-10, rtol=1e-10)
        out[lv.names[l]] = (float(lo * scale), float(hi * scale))
    return out


def _component_tests(st, X, y, reml, scale, theta, f_full, lv) -> list[ComponentTest]:
    """Likelihood-ratio test of each σ² against the model with it fixed at 0 (χ²(1), as metafor's anova)."""
    tests = []
    for l in range(len(lv)):
        free = np.ones(len(lv), dtype=bool)
        free[l] = False
        th0, _ = _optimise(st, X, y, reml, scale, free)
        f0 = _objective(th0, st, X, y, reml, scale)[0]
        lrt = max(0.0, f0 - f_full)
        tests.append(ComponentTest(lv.names[l], float(theta[l] * scale), lv.counts[l], lrt, float(stats.chi2.sf(lrt, 1))))
    return tests
