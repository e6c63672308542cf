"""Verdicts: does a replication support, contradict, or leave open the claim it checks?

Decided per compression family and level, never pooled across them. The effect at one level is the
robust accuracy of the compressed model minus the dense one (percentage points) under the spec's
first attack, averaged over its epsilons within each seed, then over seeds. Its uncertainty has two
parts: the spread over seeds (training randomness, t interval with n - 1 df) and the test set's own
sampling error, which every seed shares because all seeds use the same images; the latter is the
variance of a paired difference of proportions from the discordant counts (McNemar; Agresti 2013,
*Categorical Data Analysis* §10.1), taken as fully correlated across seeds (conservative). Bouthillier
et al. 2021 ("Accounting for variance in machine learning benchmarks", MLSys) on why both count.

Per level: *up* is significant when the 95 % interval lies above zero, *down* below. *neutral* uses
two one-sided tests (TOST, Schuirmann 1987): equivalent when the 90 % interval lies within ±margin,
different when the 95 % interval lies wholly outside it; the margin is the spec's, widened to twice
the largest binomial standard error of one accuracy on the test set (a smaller difference the test
set cannot resolve). Per family: *up* / *down* are supported when most levels are significant in the
claimed direction and none against it, contradicted in the mirror case; *neutral* is supported when
every level is equivalent and contradicted when any level clearly differs; *mixed* (inverted U:
"moderate compression helps, strong compression hurts") is order-aware: supported when some level
helps, a more strongly compressed level hurts, and no hurting level is milder than a helping one;
contradicted when the order is reversed (a U) or every level moves the same way. Levels whose rows
were flagged "possible gradient masking" are excluded (the verdict says so). Fewer than two seeds,
or a quick run, gives no verdict. Clean-accuracy loss is reported beside every level.
"""

from __future__ import annotations

import math
from enum import StrEnum

import pandas as pd
from pydantic import BaseModel, ConfigDict
from scipy import stats

from evidence.vocab import CompressionFamily, Direction

__all__ = ["VerdictValue", "LevelEffect", "FamilyVerdict", "ReplicationVerdict", "decide", "decide_family", "level_effect", "equivalence_margin",
           "EFFECT_COLUMNS"]

EFFECT_COLUMNS = ["family", "level", "strength", "seed", "eps", "n_test", "robust_dense", "robust_compressed", "dense_only", "compressed_only",
                  "clean_dense", "clean_compressed", "masking"]


class VerdictValue(StrEnum):
    supports = "supports"
    contradicts = "contradicts"
    inconclusive = "inconclusive"


class LevelEffect(BaseModel):
    """The effect at one compression level (percentage points, compressed minus dense)."""

    model_config = ConfigDict(frozen=True)

    level: float | None
    strength: float  # ordering key: larger = more strongly compressed
    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    ci90_low: float | None = None
    ci90_high: float | None = None
    se_seeds: float | None = None
    se_test: float | None = None
    n_seeds: int
    clean_loss: float | None = None  # clean accuracy lost by compressing (pp, dense minus compressed)
    sign: int = 0  # +1 significantly up, -1 significantly down, 0 neither (95 % interval)
    equivalent: bool = False  # TOST within the margin (90 % interval)
    excluded: str = ""  # why the level has no estimate (gradient masking)


class FamilyVerdict(BaseModel):
    model_config = ConfigDict(frozen=True)

    family: CompressionFamily
    verdict: VerdictValue
    reason: str
    levels: list[LevelEffect]


class ReplicationVerdict(BaseModel):
    """A claim's verdict: the decision for its compression family, with every family's detail."""

    model_config = ConfigDict(frozen=True)

    study: str
    direction: Direction
    verdict: VerdictValue
    family: CompressionFamily | None
    reason: str
    n_seeds: int
    margin: float | None = None
    families: list[FamilyVerdict] = []
    excluded_rows: int = 0

    def summary_row(self) -> dict:
        return {"study": self.study, "direction": self.direction.value, "verdict": self.verdict.value,
                "family": self.family.value if self.family else "", "n_seeds": self.n_seeds, "reason": self.reason}

    def to_frame(self) -> pd.DataFrame:
        """One row per family and level: estimate, 95 % interval (pp), clean-accuracy loss, exclusion."""
        return pd.DataFrame([{"study": self.study, "family": f.family.value, "family_verdict": f.verdict.value, **lv.model_dump()}
                             for f in self.families for lv in f.levels])


def equivalence_margin(stated: float, n_test: int) -> float:
    """``max(stated, 2 · 100 · sqrt(0.25 / n_test))`` percentage points."""
    return max(stated, 2 * 100 * math.sqrt(0.25 / max(n_test, 1)))


def level_effect(rows: pd.DataFrame, level: float | None, strength: float, margin: float) -> LevelEffect:
    """Estimate and intervals at one level from rows (one per seed and epsilon) with EFFECT_COLUMNS."""
    ok = rows[~rows["masking"].astype(bool)]
    clean_loss = float(((rows["clean_dense"] - rows["clean_compressed"]) / rows["n_test"] * 100).mean()) if len(rows) else None
    if ok.empty:
        return LevelEffect(level=level, strength=strength, estimate=None, ci_low=None, ci_high=None, n_seeds=0, clean_loss=clean_loss,
                           excluded=f"all {len(rows)} row(s) flagged possible gradient masking")
    n = ok["n_test"].astype(float)
    ok = ok.assign(effect=(ok["robust_compressed"] - ok["robust_dense"]) / n * 100,
                   # variance of a paired difference of proportions, in pp^2 (Agresti 2013 §10.1)
                   var_test=((ok["dense_only"] + ok["compressed_only"]) - (ok["compressed_only"] - ok["dense_only"]) ** 2 / n) / n ** 2 * 1e4)
    per_seed = ok.groupby("seed").agg(effect=("effect", "mean"), var_test=("var_test", "mean"))
    k = len(per_seed)
    m = float(per_seed["effect"].mean())
    var_test = float(per_seed["var_test"].mean())  # shared images: fully correlated across seeds (conservative)
    if k < 2:
        return LevelEffect(level=level, strength=strength, estimate=m, ci_low=None, ci_high=None, n_seeds=k, clean_loss=clean_loss,
                           se_test=math.sqrt(var_test))
    se_seeds = float(per_seed["effect"].std(ddof=1) / math.sqrt(k))
    se = math.sqrt(se_seeds ** 2 + var_test)
    t95, t90 = float(stats.t.isf(0.025, k - 1)), float(stats.t.isf(0.05, k - 1))
    lo, hi = m - t95 * se, m + t95 * se
    lo90, hi90 = m - t90 * se, m + t90 * se
    sign = 1 if lo > 0 else -1 if hi < 0 else 0
    return LevelEffect(level=level, strength=strength, estimate=m, ci_low=lo, ci_high=hi, ci90_low=lo90, ci90_high=hi90, se_seeds=se_seeds,
                       se_test=math.sqrt(var_test), n_seeds=k, clean_loss=clean_loss, sign=sign, equivalent=lo90 > -margin and hi90 < margin)


def _pp(x: float, signed: bool = True) -> str:
    """One decimal, never "-0.0" (a value that rounds to zero has no sign)."""
    v = round(float(x), 1) + 0.0  # + 0.0 turns -0.0 into 0.0
    return f"{v:+.1f}" if signed else f"{v:.1f}"


def _fmt(lv: LevelEffect) -> str:
    lvl = "default" if lv.level is None else f"{lv.level:g}"
    if lv.excluded:
        return f"{lvl}: excluded ({lv.excluded})"
    if lv.ci_low is None:
        return f"{lvl}: {_pp(lv.estimate)} pp (one seed)"
    cl = f", clean loss {_pp(lv.clean_loss, signed=False)} pp" if lv.clean_loss is not None else ""
    return f"{lvl}: {_pp(lv.estimate)} pp [{_pp(lv.ci_low)}, {_pp(lv.ci_high)}]{cl}"


def decide_family(levels: list[LevelEffect], direction: Direction, margin: float) -> tuple[VerdictValue, str]:
    """The family's verdict from its levels (see the module docstring for each rule)."""
    usable = sorted([lv for lv in levels if not lv.excluded and lv.ci_low is not None], key=lambda lv: lv.strength)
    excluded = [lv for lv in levels if lv.excluded]
    note = f"; {len(excluded)} level(s) excluded for possible gradient masking" if excluded else ""
    if not usable:
        return VerdictValue.inconclusive, "no level with two or more seeds free of gradient-masking flags" + note
    detail = "; ".join(_fmt(lv) for lv in usable)
    pos = [lv for lv in usable if lv.sign > 0]
    neg = [lv for lv in usable if lv.sign < 0]
    half = len(usable) / 2
    if direction == Direction.up or direction == Direction.down:
        want, against = (pos, neg) if direction == Direction.up else (neg, pos)
        if len(want) > half and not against:
            return VerdictValue.supports, f"significant in the claimed direction at {len(want)} of {len(usable)} levels, none against ({detail}){note}"
        if len(against) > half and not want:
            return VerdictValue.contradicts, f"significant against the claim at {len(against)} of {len(usable)} levels, none for it ({detail}){note}"
        return VerdictValue.inconclusive, f"{len(want)} level(s) for, {len(against)} against, of {len(usable)} ({detail}){note}"
    if direction == Direction.neutral:
        differ = [lv for lv in usable if lv.ci_low > margin or lv.ci_high < -margin]
        if differ:
            return VerdictValue.contradicts, f"{len(differ)} level(s) differ by more than the ±{margin:.1f} pp margin ({detail}){note}"
        if all(lv.equivalent for lv in usable):
            return VerdictValue.supports, f"every level equivalent within ±{margin:.1f} pp (TOST, 90 % intervals) ({detail}){note}"
        return VerdictValue.inconclusive, f"not all levels shown equivalent within ±{margin:.1f} pp ({detail}){note}"
    # mixed: inverted U over compression strength
    if pos and neg:
        if max(lv.strength for lv in pos) < min(lv.strength for lv in neg):
            return VerdictValue.supports, f"helps at milder levels, hurts at stronger ones, in that order ({detail}){note}"
        if max(lv.strength for lv in neg) < min(lv.strength for lv in pos):
            return VerdictValue.contradicts, f"the reverse order: hurts at milder levels, helps at stronger ones ({detail}){note}"
        return VerdictValue.inconclusive, f"helping and hurting levels interleave ({detail}){note}"
    if len(usable) >= 2 and (len(pos) == len(usable) or len(neg) == len(usable)):
        return VerdictValue.contradicts, f"every level moves the same way: no inverted U ({detail}){note}"
    return VerdictValue.inconclusive, f"no level both helps and hurts in order ({detail}){note}"


def decide(effects: pd.DataFrame, study: str, direction: Direction | str, *, margin: float = 2.0, quick: bool = False,
           family: CompressionFamily | str | None = None) -> ReplicationVerdict:
    """``effects``: one row per (family, level, seed, eps) with :data:`EFFECT_COLUMNS` (counts).

    The verdict is that of ``family`` (default: the first family in ``effects``); every family's is listed."""
    direction = Direction(direction)
    if quick:
        return ReplicationVerdict(study=study, direction=direction, verdict=VerdictValue.inconclusive, family=None, n_seeds=0,
                       reason="quick run: never counts toward a verdict")
    if effects.empty:
        return ReplicationVerdict(study=study, direction=direction, verdict=VerdictValue.inconclusive, family=None, n_seeds=0, reason="no effects")
    n_test = int(effects["n_test"].max())
    eff_margin = equivalence_margin(margin, n_test)
    fams = []
    for fam, g in effects.groupby("family", sort=False):
        levels = [level_effect(lg, None if pd.isna(lvl) else float(lvl), float(lg["strength"].iloc[0]), eff_margin)
                  for lvl, lg in g.groupby("level", dropna=False, sort=False)]
        v, why = decide_family(levels, direction, eff_margin)
        fams.append(FamilyVerdict(family=CompressionFamily(fam), verdict=v, reason=why, levels=sorted(levels, key=lambda lv: lv.strength)))
    main = next((f for f in fams if family is not None and f.family == CompressionFamily(family)), fams[0])
    n_seeds = int(effects["seed"].nunique())
    excluded = int(effects["masking"].astype(bool).sum())
    if n_seeds < 2:
        return ReplicationVerdict(study=study, direction=direction, verdict=VerdictValue.inconclusive, family=main.family, n_seeds=n_seeds, margin=eff_margin,
                       reason="one seed: no interval", families=fams, excluded_rows=excluded)
    margin_note = f" (equivalence margin ±{eff_margin:.1f} pp for {n_test} test images)" if direction == Direction.neutral else ""
    return ReplicationVerdict(study=study, direction=direction, verdict=main.verdict, family=main.family, n_seeds=n_seeds, margin=eff_margin,
                   reason=f"{main.family.value}: {main.reason}; {n_seeds} seeds{margin_note}", families=fams, excluded_rows=excluded)
