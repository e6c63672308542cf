"""The rigour-check family's base: measurements, outcomes, the :class:`Check` base and the registry.

Evaluation-rigour checks run on every evaluated model (Carlini et al. 2019, "On Evaluating
Adversarial Robustness", arXiv:1902.06705, §5 checklist; Athalye, Carlini & Wagner 2018,
"Obfuscated gradients give a false sense of security", ICML).

Each check is one small class behind :class:`Check` (in :mod:`replicate.checks.attack_strength`,
:mod:`replicate.checks.epsilon`, :mod:`replicate.checks.gradients`); :data:`CHECKS` is the registry. A check reads
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

from ..attacks import AttackName, AttackSpec

__all__ = ["Measurements", "CheckOutcome", "Check", "CHECKS", "register_check", "run_checks", "reference", "LARGE_EPS", "ALPHA", "CONSISTENCY_MIN",
           "SWEEP_MIN_GAIN_PP", "paired_less", "Paired"]

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
    grad_fidelity: dict | None = None  # replicate.checks.fidelity.finite_difference_agreement's measurement
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


def reference(m: Measurements, norm: str) -> tuple[AttackSpec, np.ndarray] | None:
    """The spec's reported white-box setting for ``norm`` and its per-image correctness, or None."""
    spec = m.reference.get(norm)
    if spec is None or m.vector(spec) is None:
        return None
    return spec, m.vector(spec)


CHECKS: list[Check] = []


def register_check(check: Check) -> Check:
    """Add ``check`` to :data:`CHECKS` (run in registration order); its name must be new."""
    if any(c.name == check.name for c in CHECKS):
        raise ValueError(f"a rigour check named {check.name!r} is already registered")
    CHECKS.append(check)
    return check


def run_checks(m: Measurements) -> tuple[list[CheckOutcome], bool]:
    """Every applicable check's outcome, and whether any informative one failed (possible gradient masking)."""
    outs = [o for o in (c.evaluate(m) for c in CHECKS) if o is not None]
    return outs, any(o.informative and not o.passed for o in outs)
