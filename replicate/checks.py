"""Evaluation-rigour checks run on every evaluated model (Carlini et al. 2019, "On Evaluating
Adversarial Robustness", arXiv:1902.06705, §5 checklist; Athalye, Carlini & Wagner 2018,
"Obfuscated gradients give a false sense of security", ICML).

Each check is one small class behind :class:`Check`; :data:`CHECKS` is the registry. A check reads
a model's :class:`Measurements` (per-image correctness of every attack on the same images) and
returns an outcome, or ``None`` where its measurements are absent. Comparisons are paired: two
attacks on the same images differ only by their discordant images, tested with the exact binomial
(McNemar) test, one-sided at ``ALPHA`` (McNemar 1947; Agresti 2013, *Categorical Data Analysis*
§10.1). An outcome that cannot discriminate (the large-epsilon check when random noise alone already
reaches chance: saturation) is reported as not informative and never passes. A failed informative
check marks the result "possible gradient masking".
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np
from pydantic import BaseModel, ConfigDict
from scipy.stats import binomtest

from .attacks import AttackName, AttackSpec

__all__ = ["Measurements", "CheckOutcome", "Check", "CHECKS", "run_checks", "LARGE_EPS", "ALPHA", "SWEEP_MIN_GAIN_PP", "paired_less", "Paired"]

LARGE_EPS = 0.5  # Linf on the [0, 1] scale: enough to turn any image into any other (mid-grey)
ALPHA = 0.01  # one-sided level of every paired comparison (many checks run per model)
CONSISTENCY_MIN = 0.5  # median gradient cosine below this: shattered gradients
# The step/restart sweep flags a variant only when it is significantly stronger AND at least this many
# percentage points stronger. A few points from more steps or restarts is ordinary PGD convergence on a
# sound model (Madry et al. 2018, ICLR, Tables 1-2: 100 steps and 20 restarts lower robust accuracy by
# 1-4 pp on their adversarially trained MNIST and CIFAR-10 models); masked models are off by tens of
# points (Athalye et al. 2018). 5 pp is also about 2.5 binomial SEs of a paired difference at 50 %
# accuracy on 250 images, so test-set noise alone does not reach it.
SWEEP_MIN_GAIN_PP = 5.0


@dataclass(frozen=True)
class Paired:
    """Paired comparison of A and B on the same images: ``a_only`` images A gets right and B wrong."""

    n: int
    correct_a: int
    correct_b: int
    a_only: int
    b_only: int
    p_value: float  # one-sided exact binomial: is A's accuracy above B's?

    @property
    def a_pct(self) -> float:
        return 100.0 * self.correct_a / self.n

    @property
    def b_pct(self) -> float:
        return 100.0 * self.correct_b / self.n

    def text(self, a: str, b: str) -> str:
        return (f"{a} {self.correct_a}/{self.n} vs {b} {self.correct_b}/{self.n} correct; discordant {self.a_only} vs {self.b_only}, "
                f"exact one-sided p = {self.p_value:.2g}")


def paired_less(a: np.ndarray, b: np.ndarray) -> Paired:
    """Exact McNemar test that A is more accurate than B on the same images (one-sided)."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    ao, bo = int((a & ~b).sum()), int((~a & b).sum())
    p = 1.0 if ao + bo == 0 else float(binomtest(ao, ao + bo, 0.5, alternative="greater").pvalue)
    return Paired(len(a), int(a.sum()), int(b.sum()), ao, bo, p)


@dataclass
class Measurements:
    """Per-image correctness of one model under each attack setting, all on the same images."""

    n_classes: int
    clean: np.ndarray
    vectors: dict[tuple, np.ndarray] = field(default_factory=dict)  # AttackSpec.key -> bool per image
    specs: dict[tuple, AttackSpec] = field(default_factory=dict)
    reference: dict[str, AttackSpec] = field(default_factory=dict)  # "linf"/"l2" -> the spec's reported PGD setting
    grad_mean_abs: float | None = None
    grad_zero_fraction: float | None = None
    grad_consistency: float | None = None
    non_differentiable: bool = False

    @property
    def n(self) -> int:
        return len(self.clean)

    @property
    def chance(self) -> float:
        return 100.0 / self.n_classes

    def add(self, spec: AttackSpec, vec) -> None:
        self.vectors[spec.key] = np.asarray(vec, bool)
        self.specs[spec.key] = spec

    def find(self, name: AttackName, eps: float | None = None, **match) -> list[tuple[AttackSpec, np.ndarray]]:
        out = []
        for k, s in self.specs.items():
            if s.name != name or (eps is not None and (s.eps is None or abs(s.eps - eps) > 1e-9)):
                continue
            if all(getattr(s, a) == v for a, v in match.items()):
                out.append((s, self.vectors[k]))
        return out

    def vector(self, spec: AttackSpec) -> np.ndarray | None:
        return self.vectors.get(spec.key)


class CheckOutcome(BaseModel):
    """One check's result; ``informative = False`` when it could not discriminate (never a pass)."""

    model_config = ConfigDict(frozen=True)

    name: str
    passed: bool
    detail: str
    informative: bool = True


class Check(ABC):
    name: str = ""
    description: str = ""

    @abstractmethod
    def evaluate(self, m: Measurements) -> CheckOutcome | None: ...

    def _out(self, passed: bool, detail: str, informative: bool = True) -> CheckOutcome:
        return CheckOutcome(name=self.name, passed=passed and informative, detail=detail, informative=informative)


def _ref(m: Measurements, norm: str) -> tuple[AttackSpec, np.ndarray] | None:
    spec = m.reference.get(norm)
    if spec is None or m.vector(spec) is None:
        return None
    return spec, m.vector(spec)


class ChanceAtLargeEpsilon(Check):
    name = "chance_at_large_epsilon"
    description = "white-box PGD reaches chance at Linf eps 0.5 where random noise does not (else: saturated, not informative)"

    def evaluate(self, m):
        pgd = m.find(AttackName.pgd, LARGE_EPS)
        if not pgd:
            return None
        acc = 100.0 * pgd[0][1].mean()
        limit = m.chance + 300 * np.sqrt(m.chance / 100 * (1 - m.chance / 100) / m.n)  # chance + 3 binomial SE
        noise = m.find(AttackName.noise, LARGE_EPS)
        if noise:
            nacc = 100.0 * noise[0][1].mean()
            if nacc <= limit:
                return self._out(False, f"random noise at eps {LARGE_EPS} already gives {nacc:.1f}% (<= {limit:.1f}%): saturated, "
                                        "cannot tell a working attack from a broken one", informative=False)
        return self._out(acc <= limit, f"PGD accuracy at eps {LARGE_EPS}: {acc:.1f}% (chance {m.chance:.1f}%, limit {limit:.1f}%)"
                         + (f"; random noise {100.0 * noise[0][1].mean():.1f}%" if noise else ""))


class IterativeBeatsSingleStep(Check):
    name = "iterative_beats_single_step"
    description = "PGD is not significantly less effective than FGSM at the same epsilon (paired)"

    def evaluate(self, m):
        ref = _ref(m, "linf")
        fg = m.find(AttackName.fgsm, ref[0].eps) if ref else []
        if not fg:
            return None
        p = paired_less(ref[1], fg[0][1])
        return self._out(p.p_value >= ALPHA, f"eps {ref[0].eps:g}: " + p.text("PGD", "FGSM"))


class StrongerSettingsNoBetter(Check):
    """The step-size and restart sweep: more steps, half and double the step size, more restarts.

    A variant fails the check when it is significantly stronger (exact paired test, ``ALPHA``) and
    stronger by at least ``SWEEP_MIN_GAIN_PP``: significance alone would flag the ordinary 2-4 pp
    that restarts buy on an adversarially trained model as gradient masking."""

    def __init__(self, norm: str, name: AttackName):
        self.norm, self.attack = norm, name
        self.name = f"pgd_{norm}_converged_under_step_and_restart_sweep"
        self.description = (f"no PGD ({norm}) variant with more steps, another step size or more restarts is significantly (paired, "
                            f"p < {ALPHA:g}) and materially (>= {SWEEP_MIN_GAIN_PP:g} pp) stronger")

    def evaluate(self, m):
        ref = _ref(m, self.norm)
        if ref is None:
            return None
        spec, vec = ref
        variants = [(s, v) for s, v in m.find(self.attack, spec.eps) if s.key != spec.key]
        if not variants:
            return None
        tests = [(s, paired_less(vec, v)) for s, v in variants]
        bad = [(s, p) for s, p in tests if p.p_value < ALPHA and p.a_pct - p.b_pct >= SWEEP_MIN_GAIN_PP]
        shown = bad or tests
        return self._out(not bad, "; ".join(f"{s.steps} steps, step {s.step_size:.3g}, {s.restarts} restart(s): "
                                            + p.text("reported", "variant") + f", {p.a_pct - p.b_pct:+.1f} pp" for s, p in shown)
                         + f" (flags a variant at least {SWEEP_MIN_GAIN_PP:g} pp stronger with p < {ALPHA:g})")


class NotWeakerThan(Check):
    """The reported white-box attack is not significantly less effective than ``other`` (paired)."""

    def __init__(self, name: str, norm: str, other: AttackName, what: str, applies_nd: bool = True):
        self.name, self.norm, self.other, self.what, self.applies_nd = name, norm, other, what, applies_nd
        self.description = f"the white-box attack ({norm}) is not significantly weaker than {what}"

    def evaluate(self, m):
        ref = _ref(m, self.norm)
        if ref is None or (m.non_differentiable and not self.applies_nd):
            return None
        others = m.find(self.other, ref[0].eps)
        if not others:
            return None
        p = paired_less(ref[1], others[0][1])
        return self._out(p.p_value >= ALPHA, f"eps {ref[0].eps:g}: " + p.text("white-box", self.what))


class MonotoneInEpsilon(Check):
    def __init__(self, norm: str, attack: AttackName):
        self.norm, self.attack = norm, attack
        self.name = f"accuracy_does_not_rise_with_epsilon_{norm}"
        self.description = f"{attack.value} accuracy is not significantly higher at a larger epsilon (paired)"

    def evaluate(self, m):
        ref = m.reference.get(self.norm)
        if ref is None:
            return None
        curve = sorted(((s.eps, v) for s, v in m.find(self.attack, steps=ref.steps, restarts=ref.restarts)
                        if s.eps is not None and abs(s.step_size - 2.5 * s.eps / s.steps) < 1e-9), key=lambda t: t[0])
        if len(curve) < 2:
            return None
        tests = [(e1, e2, paired_less(v2, v1)) for (e1, v1), (e2, v2) in zip(curve, curve[1:])]
        bad = [(e1, e2, p) for e1, e2, p in tests if p.p_value < ALPHA]
        return self._out(not bad, "; ".join(f"eps {e1:g} -> {e2:g}: " + p.text(f"eps {e2:g}", f"eps {e1:g}") for e1, e2, p in (bad or tests)))


class NoVanishingGradients(Check):
    name = "no_vanishing_input_gradients"
    description = "input gradients are neither zero nor vanishing"

    def evaluate(self, m):
        if m.grad_mean_abs is None:
            return None
        ok = m.grad_mean_abs > 1e-8 and (m.grad_zero_fraction or 0) < 0.5
        return self._out(ok, f"mean |dL/dx| = {m.grad_mean_abs:.3g}, zero share {100 * (m.grad_zero_fraction or 0):.1f}%")


class ConsistentGradients(Check):
    name = "input_gradients_are_consistent"
    description = f"input gradients at nearby points agree (median cosine >= {CONSISTENCY_MIN}); shattered gradients do not"

    def evaluate(self, m):
        if m.grad_mean_abs is None:
            return None
        c = m.grad_consistency
        if c is None:
            return self._out(False, "no usable input gradient to compare")
        return self._out(c >= CONSISTENCY_MIN, f"median cosine between gradients 0.01 apart: {c:.2f} (minimum {CONSISTENCY_MIN})")


CHECKS: tuple[Check, ...] = (
    ChanceAtLargeEpsilon(),
    IterativeBeatsSingleStep(),
    StrongerSettingsNoBetter("linf", AttackName.pgd),
    StrongerSettingsNoBetter("l2", AttackName.pgdl2),
    NotWeakerThan("noise_not_stronger_than_white_box", "linf", AttackName.noise, "random noise"),
    NotWeakerThan("noise_l2_not_stronger_than_white_box", "l2", AttackName.noise_l2, "random noise (L2)"),
    NotWeakerThan("transfer_not_stronger_than_white_box", "linf", AttackName.transfer, "transfer"),
    NotWeakerThan("query_attack_not_stronger_than_white_box", "linf", AttackName.square, "Square (score-based)"),
    MonotoneInEpsilon("linf", AttackName.pgd),
    MonotoneInEpsilon("l2", AttackName.pgdl2),
    NoVanishingGradients(),
    ConsistentGradients(),
)


def run_checks(m: Measurements) -> tuple[list[CheckOutcome], bool]:
    """Every applicable check's outcome, and whether any informative one failed (possible gradient masking)."""
    outs = [o for o in (c.evaluate(m) for c in CHECKS) if o is not None]
    return outs, any(o.informative and not o.passed for o in outs)
