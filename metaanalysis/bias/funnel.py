"""Row-level publication-bias tests: Egger, Begg and trim-and-fill (funnel-plot asymmetry).

These treat every effect as an independent study. On this database's dependent effects (many per
study, often a complete grid) they are anti-conservative and answer a different question: the
methods for dependent effects are in :mod:`metaanalysis.bias.pubbias` (multilevel Egger with CR2 by
study, PET-PEESE and the selection model on study aggregates, Mathur & VanderWeele), and the CLI
shows the row-level tests only with ``--row-level`` and a warning. They are kept here, pinned to
metafor, for one-effect-per-study data such as ``crev meta run --input``.

References
----------
- Egger M, Davey Smith G, Schneider M, Minder C (1997). Bias in meta-analysis detected by a simple,
  graphical test. BMJ 315:629-634; metafor ``regtest`` (predictor = standard error; model "rma"
  adds it as a moderator of the fitted model, model "lm" is the weighted regression).
- Begg CB, Mazumdar M (1994). Operating characteristics of a rank correlation test for publication
  bias. Biometrics 50:1088-1101; metafor ``ranktest``.
- Duval S, Tweedie R (2000). Trim and fill. Biometrics 56:455-463; metafor ``trimfill`` (L0).
- Peters JL et al. (2008). Contour-enhanced meta-analysis funnel plots. J Clin Epidemiol 61:991-996.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ..models.results import MetaResult
from ..models.uni import check_inputs, rma_uni

__all__ = ["EggerResult", "egger_test", "RankTestResult", "rank_test", "TrimFillResult", "trim_and_fill"]


@dataclass(frozen=True)
class EggerResult:
    """Egger's regression test: the slope on the standard error and the limit estimate (se → 0)."""

    model: str
    method: str
    stat: float
    pval: float
    df: int | None
    limit_estimate: float
    limit_ci_low: float
    limit_ci_high: float

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([self.__dict__])

    def summary(self) -> str:
        kind = "t" if self.df else "z"
        return (f"Egger's regression test ({self.model}, {self.method}): {kind} = {self.stat:.4f}, p = {self.pval:.4g}; "
                f"limit estimate {self.limit_estimate:.4f} [{self.limit_ci_low:.4f}, {self.limit_ci_high:.4f}]")


def egger_test(yi, vi, *, method: str = "REML", model: str = "rma") -> EggerResult:
    """``regtest(fit, model = model, predictor = "sei")``. ``model="lm"`` is the classical weighted
    regression of Egger et al. (1997): a common-effect model with the Knapp-Hartung scale factor."""
    y, v, _, _ = check_inputs(yi, vi, min_k=3)
    X = np.column_stack([np.ones_like(y), np.sqrt(v)])
    if model == "lm":
        fit = rma_uni(y, v, X, ["intrcpt", "sei"], method="FE", knha=True)
        method = "lm"
    elif model == "rma":
        fit = rma_uni(y, v, X, ["intrcpt", "sei"], method=method)
    else:
        raise ValueError("model must be 'rma' or 'lm'")
    slope, icpt = fit.coef("sei"), fit.coef("intrcpt")
    return EggerResult(model, method, slope.stat, slope.pval, slope.df, icpt.estimate, icpt.ci_low, icpt.ci_high)


@dataclass(frozen=True)
class RankTestResult:
    tau: float
    pval: float


def rank_test(yi, vi) -> RankTestResult:
    """Begg's rank correlation between standardised effects and their variances (``ranktest``)."""
    y, v, _, _ = check_inputs(yi, vi, min_k=3)
    fe = rma_uni(y, v, method="FE")
    vb = fe.coefficients[0].se ** 2
    ystar = (y - fe.estimate) / np.sqrt(v - vb)
    res = stats.kendalltau(ystar, v, method="exact" if len(y) < 50 else "auto")
    return RankTestResult(float(res.statistic), float(res.pvalue))


@dataclass
class TrimFillResult:
    """Trim-and-fill (L0): the number of filled effects, their side, and the refit with them."""

    k0: int
    se_k0: float
    side: str
    filled_yi: np.ndarray
    filled_vi: np.ndarray
    fit: MetaResult
    original: MetaResult

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"yi": self.filled_yi, "vi": self.filled_vi})

    def summary(self) -> str:
        return (f"trim-and-fill (L0): {self.k0} effect(s) filled on the {self.side} side (SE {self.se_k0:.3f}); "
                f"estimate {self.original.estimate:.4f} -> {self.fit.estimate:.4f} "
                f"[{self.fit.coefficients[0].ci_low:.4f}, {self.fit.coefficients[0].ci_high:.4f}]")


def trim_and_fill(yi, vi, *, method: str = "REML", side: str | None = None, maxiter: int = 100) -> TrimFillResult:
    """Duval & Tweedie's trim-and-fill with the L0 estimator, as metafor's ``trimfill``."""
    y0, v0, _, _ = check_inputs(yi, vi, min_k=3)
    k = len(y0)
    original = rma_uni(y0, v0, method=method)
    if side is None:
        reg = rma_uni(y0, v0, np.column_stack([np.ones(k), np.sqrt(v0)]), ["intrcpt", "sei"], method=method)
        side = "right" if reg.coefficients[1].estimate < 0 else "left"
    if side not in ("left", "right"):
        raise ValueError("side must be 'left' or 'right'")
    y = -y0 if side == "right" else y0.copy()
    order = np.argsort(y, kind="stable")
    y, v = y[order], v0[order]
    k0, k0_prev, it, se_k0, beta = 0, -1, 0, 0.0, 0.0
    while k0 != k0_prev:
        k0_prev = k0
        it += 1
        if it > maxiter:
            raise RuntimeError("trim-and-fill did not converge")
        beta = rma_uni(y[: k - k0], v[: k - k0], method=method).estimate
        yc = y - beta
        ranks = stats.rankdata(np.abs(yc), method="ordinal")
        signed = np.sign(yc) * ranks
        Sr = float(np.sum(signed[signed > 0]))
        k0f = (4 * Sr - k * (k + 1)) / (2 * k - 1)
        var_sr = (k * (k + 1) * (2 * k + 1) + 10 * k0f ** 3 + 27 * k0f ** 2 + 17 * k0f - 18 * k * k0f ** 2 - 18 * k * k0f + 6 * k ** 2 * k0f) / 24
        se_k0 = max(0.0, 4 * np.sqrt(max(var_sr, 0.0)) / (2 * k - 1))
        k0 = int(round(max(0.0, k0f)))
    if k0 > 0:
        fill = 2 * beta - y[k - k0:]
        fill_v = v[k - k0:]
        if side == "right":
            fill = -fill
        fit = rma_uni(np.concatenate([y0, fill]), np.concatenate([v0, fill_v]), method=method)
    else:
        fill, fill_v, fit = np.array([]), np.array([]), original
    return TrimFillResult(k0, float(se_k0), side, fill, fill_v, fit, original)
