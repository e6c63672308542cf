"""Leave-one-out and influence diagnostics (metafor ``leave1out`` and ``influence``).

References
----------
- Viechtbauer W, Cheung MW-L (2010). Outlier and influence diagnostics for meta-analysis. Res Synth
  Methods 1:112-125; metafor ``leave1out`` and ``influence``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from .models.multilevel import rma_mv
from .models.uni import check_inputs, rma_uni

__all__ = ["leave_one_out", "influence"]


def leave_one_out(yi, vi, *, method: str = "REML", study=None, cluster=None, labels=None) -> pd.DataFrame:
    """Refit leaving out one effect at a time (``leave1out``), or, for the multilevel model
    (``study`` given), one study at a time."""
    y = np.asarray(yi, float)
    v = np.asarray(vi, float)
    rows = []
    if study is None:
        labels = [str(i + 1) for i in range(len(y))] if labels is None else list(labels)
        for i in range(len(y)):
            keep = np.arange(len(y)) != i
            f = rma_uni(y[keep], v[keep], method=method)
            c = f.coefficients[0]
            rows.append({"left_out": labels[i], "estimate": c.estimate, "se": c.se, "zval": c.stat, "pval": c.pval, "ci_low": c.ci_low,
                         "ci_high": c.ci_high, "Q": f.q, "Qp": f.q_pval, "tau2": f.tau2, "I2": f.i2, "H2": f.h2})
        return pd.DataFrame(rows)
    study = np.asarray(pd.Series(study).astype(str))
    cl = None if cluster is None else np.asarray(pd.Series(cluster).astype(str))
    for s in pd.unique(study):
        keep = study != s
        if len(pd.unique(study[keep])) < 2:
            continue
        f = rma_mv(y[keep], v[keep], study[keep], None if cl is None else cl[keep], method=method)
        c = f.coefficients[0]
        rows.append({"left_out": s, "estimate": c.estimate, "se": c.se, "zval": c.stat, "pval": c.pval, "ci_low": c.ci_low,
                     "ci_high": c.ci_high, "Q": f.q, "Qp": f.q_pval, **{f"sigma2_{k}": val for k, val in f.sigma2.items()}})
    return pd.DataFrame(rows)


def influence(yi, vi, *, method: str = "REML", labels=None) -> pd.DataFrame:
    """Influence diagnostics of an intercept-only random-effects model (metafor ``influence.rma.uni``;
    Viechtbauer & Cheung 2010, "Outlier and influence diagnostics for meta-analysis", Research
    Synthesis Methods 1:112-125): externally standardised residuals, DFFITS, Cook's distances, hat
    values, DFBETAS and tau² with each effect left out.

    ``influential`` is metafor's rule: an effect is influential when |DFFITS| > 3·sqrt(p/(k−p)), Cook's
    distance exceeds the median of chi²(p), its hat value exceeds 3p/k, or |DFBETAS| > 1 (p = 1 here)."""
    y, v, _, _ = check_inputs(yi, vi, min_k=3)
    k, p = len(y), 1
    full = rma_uni(y, v, method=method)
    w = 1.0 / (v + full.tau2)
    hat = w / w.sum()
    vb = full.coefficients[0].se ** 2
    rows = []
    for i in range(k):
        keep = np.arange(k) != i
        f = rma_uni(y[keep], v[keep], method=method)
        b_i, se_i = f.estimate, f.coefficients[0].se
        rstudent = (y[i] - b_i) / np.sqrt(v[i] + f.tau2 + se_i ** 2)
        dffits = (full.estimate - b_i) / np.sqrt(hat[i] * (f.tau2 + v[i]))
        cooks = (full.estimate - b_i) ** 2 / vb
        rows.append({"label": labels[i] if labels is not None else str(i + 1), "rstudent": rstudent, "dffits": dffits, "cooks_distance": cooks,
                     # DFBETAS scales by the variance of the estimate under the left-out fit's tau² over all k effects (metafor)
                     "hat": hat[i], "weight_pct": 100 * hat[i], "dfbetas": (full.estimate - b_i) * np.sqrt(np.sum(1.0 / (v + f.tau2))),
                     "tau2_deleted": f.tau2,
                     "estimate_deleted": b_i})
    df = pd.DataFrame(rows)
    df["influential"] = ((df["dffits"].abs() > 3 * np.sqrt(p / (k - p))) | (df["cooks_distance"] > stats.chi2.ppf(0.5, p))
                         | (df["hat"] > 3 * p / k) | (df["dfbetas"].abs() > 1))
    return df
