"""Planning a replication: how many test images and seeds a run needs.

Images (the paired design: dense and compressed model on the same images). Of the ``n`` images a
share ``psi`` is discordant (robust under one model only); a drop of ``delta`` (a proportion) means
``p10 = (psi + delta) / 2`` images robust under the dense model only and ``p01 = (psi - delta) / 2``.

- Detecting a drop: the one-sided exact McNemar test (the binomial test of the dense-only count among
  the discordant images, McNemar 1947), its power computed exactly and unconditionally by summing over
  the number of discordant images (Suissa & Shuster 1991, "The 2x2 matched-pairs trial: exact
  unconditional design and analysis", Biometrics 47:361-372, §2). statsmodels has no power function
  for the exact McNemar test, so it is summed here with scipy.
- Equivalence within ±M: two one-sided tests (Schuirmann 1987) on the paired difference with the
  variance ``psi - delta²`` (Liu, Hsueh, Hsieh & Chen 2002, "Tests for equivalence or
  non-inferiority for paired binary data", Stat Med 21:231-245, eq. 3), at true difference 0:
  ``n = (z_{1-alpha} + z_{1-beta/2})² psi / M²`` (Chow, Shao & Wang 2008, *Sample Size Calculations in
  Clinical Research*, §3.2.4).

Seeds: the per-seed robust gap varies across seeds with a standard deviation ``sigma`` measured in
the shipped replication release (same spec, level, attack and epsilon: the spread of the seeds'
gaps, pooled). Detecting a drop: the one-sided one-sample t-test, through statsmodels'
``TTestPower.solve_power``; equivalence: ``n = (z_{1-alpha} + z_{1-beta/2})² sigma² / M²`` (Chow et
al. 2008 §3.2.4, normal approximation), at least 2.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import binom, norm

__all__ = ["ReleaseSpread", "Plan", "release_spread", "mcnemar_power", "images_to_detect", "images_for_equivalence", "seeds_to_detect",
           "seeds_for_equivalence", "plan_claim", "detectable_drop"]


@dataclass(frozen=True)
class ReleaseSpread:
    """What the replication release measured for one catalogue claim."""

    claim: str
    discordant: float  # mean share of discordant images (psi)
    seed_sd: float  # pooled SD of the per-seed robust gap (proportion)
    n_groups: int  # (level, attack, eps) groups pooled
    n_seeds: int


def release_spread(claim: str) -> ReleaseSpread:
    """The discordant share and the seed spread of ``claim``'s rows in the shipped replication release."""
    from evidence import shipped_releases

    rel = next((r for r in shipped_releases() if r.kind == "replication" or r.name.startswith("replication")), None)
    if rel is None:
        raise LookupError("no replication release is shipped")
    df = pd.read_csv(rel.path / "results.csv")
    meta = df["replication_json"].map(lambda s: json.loads(s) if isinstance(s, str) and s else {})
    df = df.assign(spec=meta.map(lambda m: m.get("spec_id")), seed=meta.map(lambda m: m.get("seed")))
    df = df[(df["spec"] == claim) & df["n_robust_dense_only"].notna() & df["n_test"].notna()]
    if df.empty:
        known = sorted({m.get("spec_id") for m in meta if m.get("spec_id")})
        raise LookupError(f"claim {claim!r} has no rows in the release {rel.name}; known: {', '.join(known)}")
    df = df.assign(gap=(df["n_robust_correct_dense"] - df["n_robust_correct_compressed"]) / df["n_test"],
                   disc=(df["n_robust_dense_only"] + df["n_robust_compressed_only"]) / df["n_test"])
    groups = df.groupby(["compression_level", "attack", "epsilon"], dropna=False)["gap"]
    var = groups.var(ddof=1).dropna()
    dof = (groups.count() - 1).loc[var.index]
    sd = float(math.sqrt((var * dof).sum() / dof.sum())) if dof.sum() > 0 else float("nan")
    return ReleaseSpread(claim, float(df["disc"].mean()), sd, len(var), int(df["seed"].nunique()))


def _critical(d: np.ndarray, alpha: float) -> np.ndarray:
    """Smallest k with P(Bin(d, 1/2) >= k) <= alpha: the exact one-sided McNemar test rejects at b >= k
    (scipy's discrete isf is the smallest x with P(X > x) <= alpha)."""
    return binom.isf(alpha, d, 0.5) + 1


def mcnemar_power(n: int, delta: float, psi: float, alpha: float = 0.05) -> float:
    """Exact unconditional power of the one-sided exact McNemar test on ``n`` pairs (Suissa & Shuster 1991)."""
    if not 0 < delta <= psi <= 1:
        raise ValueError(f"need 0 < drop {delta} <= discordant share {psi} <= 1")
    d = np.arange(n + 1)
    k = _critical(d, alpha)
    reject = binom.sf(k - 1, d, (psi + delta) / (2 * psi))
    return float((binom.pmf(d, n, psi) * reject).sum())


def images_to_detect(delta: float, psi: float, alpha: float = 0.05, power: float = 0.8, n_max: int = 200_000) -> int:
    """Smallest n (on a grid 1 % apart, then exact below it) with exact McNemar power >= ``power``."""
    psi = max(psi, delta)
    z = (norm.isf(alpha) * math.sqrt(psi) + norm.isf(1 - power) * math.sqrt(psi - delta ** 2)) ** 2 / delta ** 2  # Connor 1987, a start
    n = max(int(z * 0.8), 10)
    while mcnemar_power(n, delta, psi, alpha) < power:
        n = int(n * 1.02) + 1
        if n > n_max:
            raise ValueError(f"more than {n_max} images would be needed")
    lo = max(int(n / 1.02) - 1, 1)
    for m in range(lo, n + 1):  # exact power is not monotone in n (Chernick & Liu 2002): report the first n that reaches it
        if mcnemar_power(m, delta, psi, alpha) >= power:
            return m
    return n


def images_for_equivalence(margin: float, psi: float, alpha: float = 0.05, power: float = 0.8) -> int:
    return math.ceil((norm.isf(alpha) + norm.isf((1 - power) / 2)) ** 2 * psi / margin ** 2)


def seeds_to_detect(delta: float, sd: float, alpha: float = 0.05, power: float = 0.8) -> int:
    from statsmodels.stats.power import TTestPower

    return max(2, math.ceil(TTestPower().solve_power(effect_size=delta / sd, alpha=alpha, power=power, alternative="larger")))


def seeds_for_equivalence(margin: float, sd: float, alpha: float = 0.05, power: float = 0.8) -> int:
    return max(2, math.ceil((norm.isf(alpha) + norm.isf((1 - power) / 2)) ** 2 * sd ** 2 / margin ** 2))


def detectable_drop(n: int, seeds: int, psi: float, sd: float, alpha: float = 0.05, power: float = 0.8) -> tuple[float, float]:
    """The smallest drops (proportions) ``n`` images and ``seeds`` seeds detect with ``power``:
    (images, exact McNemar; seeds, the t-test)."""
    from statsmodels.stats.power import TTestPower

    grid = np.arange(0.0025, psi + 1e-12, 0.0025)
    by_images = next((float(g) for g in grid if mcnemar_power(n, g, psi, alpha) >= power), float("nan"))
    by_seeds = float(TTestPower().solve_power(nobs=seeds, alpha=alpha, power=power, alternative="larger") * sd) if seeds >= 2 else float("nan")
    return by_images, by_seeds


@dataclass(frozen=True)
class Plan:
    claim: str
    spread: ReleaseSpread
    alpha: float
    power: float
    detect_pp: float | None
    margin_pp: float | None
    images_detect: int | None
    seeds_detect: int | None
    images_equivalence: int | None
    seeds_equivalence: int | None

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return asdict(self)


def plan_claim(claim: str, *, detect_pp: float | None = 3.0, margin_pp: float | None = None, alpha: float = 0.05, power: float = 0.8) -> Plan:
    """Images and seeds for ``claim`` (a catalogue id) from the release's measured spread."""
    if not 0 < alpha < 0.5 or not 0.5 <= power < 1:
        raise ValueError(f"alpha {alpha} must lie in (0, 0.5) and power {power} in [0.5, 1)")
    s = release_spread(claim)
    dd = None if detect_pp is None else detect_pp / 100
    mm = None if margin_pp is None else margin_pp / 100
    return Plan(claim, s, alpha, power, detect_pp, margin_pp,
                images_to_detect(dd, s.discordant, alpha, power) if dd else None,
                seeds_to_detect(dd, s.seed_sd, alpha, power) if dd else None,
                images_for_equivalence(mm, s.discordant, alpha, power) if mm else None,
                seeds_for_equivalence(mm, s.seed_sd, alpha, power) if mm else None)
