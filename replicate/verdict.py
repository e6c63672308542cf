"""Verdicts: does a replication support, contradict, or leave open the claim it checks?

The effect is the robust accuracy of the compressed model minus the dense one (percentage points)
under the spec's first attack, averaged over compression levels and epsilons within each seed; the
seeds are the replicates, and a t interval over them (n - 1 df) is the uncertainty. For a claim of
direction *up* the run supports it when the whole 95 % interval lies above zero and contradicts it
when it lies below; *down* is the mirror; *neutral* is supported when the interval lies within
±margin and contradicted when it lies wholly outside; *mixed* (for example "moderate sparsity
helps, over-sparsity hurts") is supported when one level's interval lies above zero and another's
below, contradicted when all levels with a clear sign share it. Fewer than two seeds, or a quick
run, gives no verdict.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["Verdict", "decide", "SUPPORTS", "CONTRADICTS", "INCONCLUSIVE"]

SUPPORTS, CONTRADICTS, INCONCLUSIVE = "supports", "contradicts", "inconclusive"


@dataclass
class Verdict:
    study: str
    direction: str
    verdict: str
    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    n_seeds: int
    reason: str
    per_level: list[dict] = field(default_factory=list)


def _ci(values: np.ndarray):
    n = len(values)
    m = float(values.mean())
    if n < 2:
        return m, None, None
    half = float(stats.t.isf(0.025, n - 1) * values.std(ddof=1) / np.sqrt(n))
    return m, m - half, m + half


def decide(effects: pd.DataFrame, study: str, direction: str, *, margin: float = 2.0, quick: bool = False) -> Verdict:
    """``effects``: one row per (seed, level, eps) with columns seed, level, effect."""
    if quick:
        return Verdict(study, direction, INCONCLUSIVE, None, None, None, 0, "quick run: never counts toward a verdict")
    if effects.empty:
        return Verdict(study, direction, INCONCLUSIVE, None, None, None, 0, "no effects")
    per_seed = effects.groupby("seed")["effect"].mean().to_numpy()
    m, lo, hi = _ci(per_seed)
    levels = []
    for lvl, g in effects.groupby("level", dropna=False):
        lm, llo, lhi = _ci(g.groupby("seed")["effect"].mean().to_numpy())
        levels.append({"level": lvl, "estimate": lm, "ci_low": llo, "ci_high": lhi})
    n = len(per_seed)
    if lo is None:
        return Verdict(study, direction, INCONCLUSIVE, m, None, None, n, "one seed: no interval", levels)
    if direction == "up":
        v = SUPPORTS if lo > 0 else CONTRADICTS if hi < 0 else INCONCLUSIVE
    elif direction == "down":
        v = SUPPORTS if hi < 0 else CONTRADICTS if lo > 0 else INCONCLUSIVE
    elif direction == "neutral":
        v = SUPPORTS if (lo > -margin and hi < margin) else CONTRADICTS if (lo > margin or hi < -margin) else INCONCLUSIVE
    else:  # mixed
        pos = [lv for lv in levels if lv["ci_low"] is not None and lv["ci_low"] > 0]
        neg = [lv for lv in levels if lv["ci_high"] is not None and lv["ci_high"] < 0]
        v = SUPPORTS if pos and neg else CONTRADICTS if (pos or neg) and not (pos and neg) and len(pos) + len(neg) == len(levels) else INCONCLUSIVE
    reason = f"mean effect {m:+.2f} pp, 95% CI [{lo:+.2f}, {hi:+.2f}] over {n} seeds (claim: {direction})"
    return Verdict(study, direction, v, m, lo, hi, n, reason, levels)
