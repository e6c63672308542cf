"""Verdicts: does a replication support, contradict, or leave open the claim it checks?

Decided per *arm* (one compression setting of the spec: family, kind and its options) and attack, never
pooled across arms, families or attacks: two compressions at one family and level give two estimates.
The effect at one level is the robust accuracy of the compressed model minus the dense one (percentage
points) under one attack, averaged over its epsilons within each seed, then over seeds. Its uncertainty
has two parts: the spread over seeds (training randomness, t interval with n - 1 df) and the test set's
own sampling error, which every seed shares because all seeds use the same images; the latter is the
variance of a paired difference of proportions from the discordant counts (McNemar; Agresti 2013,
*Categorical Data Analysis* §10.1), taken as fully correlated across seeds (conservative). Bouthillier
et al. 2021 ("Accounting for variance in machine learning benchmarks", MLSys) on why both count.

Per level: *up* is significant when the 95 % interval lies above zero, *down* below. *neutral* uses
two one-sided tests (TOST, Schuirmann 1987): equivalent when the 90 % interval lies within ±margin,
different when the 95 % interval lies wholly outside it. The margin is the claim's stated one (the
spec's ``neutral_margin``, default 2 pp), never widened by the standard error: a level whose 90 %
interval is wider than the margin band (2 × margin) cannot show equivalence and is *underpowered*,
which leaves a neutral claim inconclusive rather than making equivalence easier to claim on less data.

Per arm: *up* / *down* are supported when most levels are significant in the claimed direction and
none against it, contradicted in the mirror case; *neutral* is supported when every level is
equivalent and contradicted when any level clearly differs; *mixed* (inverted U: "moderate
compression helps, strong compression hurts") is order-aware: supported when some level helps, a more
strongly compressed level hurts, and no hurting level is milder than a helping one; contradicted when
the order is reversed (a U) or every level moves the same way.

Gradient masking can only inflate robust accuracy (Athalye et al. 2018, "Obfuscated gradients give a
false sense of security", ICML), so a level with rows flagged "possible gradient masking" is excluded
only where compression *raised* robust accuracy there (the gain may be the masking's); a flagged level
that lost robustness counts, with its flag shown. Every grid level appears in the verdict, used or
excluded with its reason (a level without result rows too). Clean-accuracy loss is printed beside each
level from the rows that level uses.

A claim's verdict is that of its compression family under the spec's first attack (the claim's), from
the arms the claim names (``claim.compressions``; default every arm of the family): when there are several they must agree, otherwise the verdict is inconclusive and says which arm
says what. Where a spec lists further attacks, each is also compared with the first *on the same
models* (:class:`AttackContrast`: robust accuracy under the other attack minus under the claim's,
paired per image): the PGD vs PGD++ or PGD vs EOT gap a claim about attack strength is about. Fewer
than two seeds, or a quick run, gives no verdict.
"""

from __future__ import annotations

import math
from enum import StrEnum

import pandas as pd
from pydantic import BaseModel, ConfigDict
from scipy import stats

from evidence.vocab import CompressionFamily, Direction

__all__ = ["VerdictValue", "LevelEffect", "FamilyVerdict", "AttackContrast", "ReplicationVerdict", "decide", "decide_family", "level_effect",
           "attack_contrasts", "underpowered", "EFFECT_COLUMNS", "CONTRAST_COLUMNS", "DEFAULT_MARGIN"]

EFFECT_COLUMNS = ["family", "arm", "attack", "level", "strength", "seed", "eps", "n_test", "robust_dense", "robust_compressed", "dense_only",
                  "compressed_only", "clean_dense", "clean_compressed", "masking"]
# one row per model (an arm's level, or "dense"), seed and epsilon: the other attack against the reference (the claim's) on that model
CONTRAST_COLUMNS = ["family", "arm", "level", "strength", "seed", "eps", "n_test", "reference", "attack", "correct_reference", "correct_attack",
                    "reference_only", "attack_only"]
DEFAULT_MARGIN = 2.0  # pp: the equivalence margin of a neutral claim that states none (the spec's neutral_margin default)


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
    clean_loss: float | None = None  # clean accuracy lost by compressing (pp, dense minus compressed), from the rows used
    sign: int = 0  # +1 significantly up, -1 significantly down, 0 neither (95 % interval)
    equivalent: bool = False  # TOST within the margin (90 % interval)
    underpowered: bool = False  # the 90 % interval is wider than the margin band: equivalence cannot be shown
    masking_flag: bool = False  # some rows flagged possible gradient masking (counted: compression did not raise robustness)
    excluded: str = ""  # why the level has no estimate (gradient masking with a gain, or no rows)


class FamilyVerdict(BaseModel):
    """One arm's verdict under one attack (the name is kept: one per family and arm)."""

    model_config = ConfigDict(frozen=True)

    family: CompressionFamily
    verdict: VerdictValue
    reason: str
    levels: list[LevelEffect]
    arm: str = ""
    attack: str = ""


class AttackContrast(BaseModel):
    """On the same models: robust accuracy under ``attack`` minus under ``reference`` (pp, paired per image).

    Positive: ``attack`` leaves more images correct than the claim's attack, i.e. it overstates robustness."""

    model_config = ConfigDict(frozen=True)

    arm: str
    family: CompressionFamily | None  # None: the dense model
    reference: str
    attack: str
    levels: list[LevelEffect]

    def text(self) -> str:
        parts = [_fmt(lv) for lv in self.levels]
        return f"{self.attack} minus {self.reference} on {self.arm}: " + "; ".join(parts)


class ReplicationVerdict(BaseModel):
    """A claim's verdict: the decision for its compression family, with every arm's and attack's detail."""

    model_config = ConfigDict(frozen=True)

    study: str
    direction: Direction
    verdict: VerdictValue
    family: CompressionFamily | None
    reason: str
    n_seeds: int
    margin: float | None = None
    attack: str = ""
    families: list[FamilyVerdict] = []
    contrasts: list[AttackContrast] = []
    excluded_rows: int = 0

    def summary_row(self) -> dict:
        return {"study": self.study, "direction": self.direction.value, "verdict": self.verdict.value,
                "family": self.family.value if self.family else "", "n_seeds": self.n_seeds, "reason": self.reason}

    def to_frame(self) -> pd.DataFrame:
        """One row per arm, attack and level: estimate, 95 % interval (pp), clean-accuracy loss, exclusion."""
        return pd.DataFrame([{"study": self.study, "family": f.family.value, "arm": f.arm, "attack": f.attack, "family_verdict": f.verdict.value,
                              **lv.model_dump()} for f in self.families for lv in f.levels])


def underpowered(ci90_low: float, ci90_high: float, margin: float) -> bool:
    """True when a 90 % interval is wider than ``2 · margin``: it cannot fit inside ±margin wherever it lies."""
    return ci90_high - ci90_low >= 2 * margin


def level_effect(rows: pd.DataFrame, level: float | None, strength: float, margin: float) -> LevelEffect:
    """Estimate and intervals at one level from rows (one per seed and epsilon) with :data:`EFFECT_COLUMNS` (counts).

    The level is excluded when rows are flagged for possible gradient masking *and* compression raised
    robust accuracy over the flagged rows (masking can only inflate it); otherwise every row counts."""
    if rows.empty:
        return LevelEffect(level=level, strength=strength, estimate=None, ci_low=None, ci_high=None, n_seeds=0,
                           excluded="no result rows (its cells failed or gave no outcome for this attack)")
    flagged = rows[rows["masking"].astype(bool)]
    if len(flagged) and int(flagged["robust_compressed"].sum()) > int(flagged["robust_dense"].sum()):
        gain = float(((flagged["robust_compressed"] - flagged["robust_dense"]) / flagged["n_test"] * 100).mean())
        return LevelEffect(level=level, strength=strength, estimate=None, ci_low=None, ci_high=None, n_seeds=0, masking_flag=True,
                           excluded=f"{len(flagged)} of {len(rows)} row(s) flagged possible gradient masking where compression raised robust "
                                    f"accuracy ({_pp(gain)} pp): the gain may be the masking's")
    ok, flag = rows, bool(len(flagged))
    clean_loss = float(((ok["clean_dense"] - ok["clean_compressed"]) / ok["n_test"] * 100).mean())
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
                           se_test=math.sqrt(var_test), masking_flag=flag)
    se_seeds = float(per_seed["effect"].std(ddof=1) / math.sqrt(k))
    se = math.sqrt(se_seeds ** 2 + var_test)
    t95, t90 = float(stats.t.isf(0.025, k - 1)), float(stats.t.isf(0.05, k - 1))
    lo, hi = m - t95 * se, m + t95 * se
    lo90, hi90 = m - t90 * se, m + t90 * se
    sign = 1 if lo > 0 else -1 if hi < 0 else 0
    return LevelEffect(level=level, strength=strength, estimate=m, ci_low=lo, ci_high=hi, ci90_low=lo90, ci90_high=hi90, se_seeds=se_seeds,
                       se_test=math.sqrt(var_test), n_seeds=k, clean_loss=clean_loss, sign=sign, equivalent=lo90 > -margin and hi90 < margin,
                       underpowered=underpowered(lo90, hi90, margin), masking_flag=flag)


def _pp(x: float, signed: bool = True) -> str:
    """One decimal, never "-0.0" (a value that rounds to zero has no sign)."""
    v = round(float(x), 1) + 0.0  # + 0.0 turns -0.0 into 0.0
    return f"{v:+.1f}" if signed else f"{v:.1f}"


def _fmt(lv: LevelEffect) -> str:
    lvl = "default" if lv.level is None else f"{lv.level:g}"
    if lv.excluded:
        return f"{lvl}: excluded ({lv.excluded})"
    flag = " [flagged possible gradient masking; counted: robustness not raised]" if lv.masking_flag else ""
    if lv.ci_low is None:
        return f"{lvl}: {_pp(lv.estimate)} pp (one seed){flag}"
    cl = f", clean loss {_pp(lv.clean_loss, signed=False)} pp" if lv.clean_loss is not None else ""
    up = ", underpowered" if lv.underpowered else ""
    return f"{lvl}: {_pp(lv.estimate)} pp [{_pp(lv.ci_low)}, {_pp(lv.ci_high)}]{cl}{up}{flag}"


def decide_family(levels: list[LevelEffect], direction: Direction, margin: float) -> tuple[VerdictValue, str]:
    """One arm's verdict from its levels (see the module docstring for each rule); the reason lists every level."""
    direction = Direction(direction)
    ordered = sorted(levels, key=lambda lv: lv.strength)
    usable = [lv for lv in ordered if not lv.excluded and lv.ci_low is not None]
    detail = "; ".join(_fmt(lv) for lv in ordered)
    if not usable:
        return VerdictValue.inconclusive, f"no level with two or more seeds that counts ({detail})"
    pos = [lv for lv in usable if lv.sign > 0]
    neg = [lv for lv in usable if lv.sign < 0]
    half = len(usable) / 2
    if direction in (Direction.up, Direction.down):
        want, against = (pos, neg) if direction == Direction.up else (neg, pos)
        if len(want) > half and not against:
            return VerdictValue.supports, f"significant in the claimed direction at {len(want)} of {len(usable)} levels, none against ({detail})"
        if len(against) > half and not want:
            return VerdictValue.contradicts, f"significant against the claim at {len(against)} of {len(usable)} levels, none for it ({detail})"
        return VerdictValue.inconclusive, f"{len(want)} level(s) for, {len(against)} against, of {len(usable)} ({detail})"
    if direction == Direction.neutral:
        differ = [lv for lv in usable if lv.ci_low > margin or lv.ci_high < -margin]
        if differ:
            return VerdictValue.contradicts, f"{len(differ)} level(s) differ by more than the ±{margin:.1f} pp margin ({detail})"
        if all(lv.equivalent for lv in usable):
            return VerdictValue.supports, f"every level equivalent within ±{margin:.1f} pp (TOST, 90 % intervals) ({detail})"
        weak = [lv for lv in usable if lv.underpowered and not lv.equivalent]
        if weak:
            return VerdictValue.inconclusive, (f"underpowered: {len(weak)} level(s) have a 90 % interval wider than the ±{margin:.1f} pp margin, "
                                               f"so equivalence cannot be shown with this test set and these seeds ({detail})")
        return VerdictValue.inconclusive, f"not all levels shown equivalent within ±{margin:.1f} pp ({detail})"
    # mixed: inverted U over compression strength
    if pos and neg:
        if max(lv.strength for lv in pos) < min(lv.strength for lv in neg):
            return VerdictValue.supports, f"helps at milder levels, hurts at stronger ones, in that order ({detail})"
        if max(lv.strength for lv in neg) < min(lv.strength for lv in pos):
            return VerdictValue.contradicts, f"the reverse order: hurts at milder levels, helps at stronger ones ({detail})"
        return VerdictValue.inconclusive, f"helping and hurting levels interleave ({detail})"
    if len(usable) >= 2 and (len(pos) == len(usable) or len(neg) == len(usable)):
        return VerdictValue.contradicts, f"every level moves the same way: no inverted U ({detail})"
    return VerdictValue.inconclusive, f"no level both helps and hurts in order ({detail})"


def _levels(g: pd.DataFrame, margin: float, grid: list[tuple[float | None, float]] | None) -> list[LevelEffect]:
    found = {(None if pd.isna(lvl) else float(lvl)): lg for lvl, lg in g.groupby("level", dropna=False, sort=False)}
    out = [level_effect(lg, lvl, float(lg["strength"].iloc[0]), margin) for lvl, lg in found.items()]
    out += [level_effect(g.iloc[0:0], lvl, strength, margin) for lvl, strength in grid or [] if lvl not in found]
    return sorted(out, key=lambda lv: lv.strength)


def _with_defaults(effects: pd.DataFrame) -> pd.DataFrame:
    eff = effects.copy()
    if "arm" not in eff:
        eff["arm"] = eff["family"]
    if "attack" not in eff:
        eff["attack"] = ""
    eff["arm"] = eff["arm"].fillna(eff["family"])
    eff["attack"] = eff["attack"].fillna("")
    return eff


def attack_contrasts(contrasts: pd.DataFrame, margin: float = DEFAULT_MARGIN) -> list[AttackContrast]:
    """Per model arm and other attack: the paired difference to the claim's attack at each level (:data:`CONTRAST_COLUMNS`)."""
    if contrasts is None or contrasts.empty:
        return []
    out = []
    as_effects = contrasts.rename(columns={"correct_reference": "robust_dense", "correct_attack": "robust_compressed",
                                           "reference_only": "dense_only", "attack_only": "compressed_only"})
    as_effects = as_effects.assign(masking=False, clean_dense=0, clean_compressed=0)
    for (arm, ref, atk), g in as_effects.groupby(["arm", "reference", "attack"], sort=False, dropna=False):
        levels = [lv.model_copy(update={"clean_loss": None}) for lv in _levels(g, margin, None)]
        fam = g["family"].iloc[0]
        out.append(AttackContrast(arm=str(arm), family=None if pd.isna(fam) or fam == "" else CompressionFamily(fam), reference=str(ref),
                                  attack=str(atk), levels=levels))
    return out


def decide(effects: pd.DataFrame, study: str, direction: Direction | str, *, margin: float = DEFAULT_MARGIN, quick: bool = False,
           family: CompressionFamily | str | None = None, attack: str | None = None, arms: list[str] | None = None, grid: dict[str, list[tuple[float | None, float]]] | None = None,
           contrasts: pd.DataFrame | None = None) -> ReplicationVerdict:
    """``effects``: one row per (arm, attack, level, seed, eps) with :data:`EFFECT_COLUMNS` (counts; ``arm`` and ``attack`` optional).

    The verdict is that of ``family`` (default: the first family in ``effects``) under ``attack`` (default: the
    first attack in ``effects``), its arms (or only ``arms``, the methods the claim names) required to agree;
    every arm under every attack is listed.
    ``grid``: per arm, the (level, strength) pairs it was run at, so a level without rows is listed as excluded. ``contrasts``:
    :data:`CONTRAST_COLUMNS` rows, the other attacks against the claim's on the same models."""
    direction = Direction(direction)
    if quick:
        return ReplicationVerdict(study=study, direction=direction, verdict=VerdictValue.inconclusive, family=None, n_seeds=0,
                                  reason="quick run: never counts toward a verdict")
    if effects.empty:
        return ReplicationVerdict(study=study, direction=direction, verdict=VerdictValue.inconclusive, family=None, n_seeds=0, reason="no effects")
    eff = _with_defaults(effects)
    attack = eff["attack"].iloc[0] if attack is None else attack
    fams = []
    for (arm, atk), g in eff.groupby(["arm", "attack"], sort=False):
        levels = _levels(g, margin, (grid or {}).get(arm))
        v, why = decide_family(levels, direction, margin)
        fams.append(FamilyVerdict(family=CompressionFamily(g["family"].iloc[0]), verdict=v, reason=why, levels=levels, arm=str(arm), attack=str(atk)))
    fam = CompressionFamily(family) if family is not None else CompressionFamily(eff["family"].iloc[0])
    main = [f for f in fams if f.family == fam and f.attack == attack and (arms is None or f.arm in arms)] or [fams[0]]
    contrast_list = attack_contrasts(contrasts, margin) if contrasts is not None else []
    used = eff[eff["arm"].isin([f.arm for f in main]) & (eff["attack"] == attack)]
    n_seeds = int(used["seed"].nunique())
    excluded = sum(1 for f in main for lv in f.levels if lv.excluded)
    common = dict(study=study, direction=direction, family=main[0].family, margin=margin, attack=str(attack), families=fams,
                  contrasts=contrast_list, excluded_rows=int(used[used["masking"].astype(bool)].shape[0]))
    if n_seeds < 2:
        return ReplicationVerdict(verdict=VerdictValue.inconclusive, n_seeds=n_seeds, reason="one seed: no interval", **common)
    if len({f.verdict for f in main}) == 1:
        verdict = main[0].verdict
        body = "; ".join(f"{f.arm}: {f.reason}" for f in main) if len(main) > 1 else main[0].reason
        reason = f"{main[0].family.value}" + (f" ({len(main)} arms agree)" if len(main) > 1 else "") + f": {body}"
    else:
        verdict = VerdictValue.inconclusive
        reason = (f"{main[0].family.value}: its compressions disagree (" + "; ".join(f"{f.arm}: {f.verdict.value}" for f in main) + "), no pooling: "
                  + " | ".join(f"{f.arm}: {f.reason}" for f in main))
    if excluded:
        reason += f"; {excluded} level(s) excluded (reasons listed)"
    att = f" under {attack}" if attack else ""
    margin_note = f" (equivalence margin ±{margin:.1f} pp, the claim's)" if direction == Direction.neutral else ""
    con = "".join(f"; contrast {c.text()}" for c in contrast_list)
    return ReplicationVerdict(verdict=verdict, n_seeds=n_seeds, reason=f"{reason}{att}; {n_seeds} seeds{margin_note}{con}", **common)
