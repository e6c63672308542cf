"""Evaluation-rigour checks run on every evaluated model (Carlini et al. 2019, "On Evaluating
Adversarial Robustness", arXiv:1902.06705, §5 checklist).

Each check is one small class behind :class:`Check`; :data:`CHECKS` is the registry. A check reads a
model's :class:`Measurements` and returns an outcome, or ``None`` where its measurements are absent.
Comparisons allow for sampling error: a difference counts only beyond ``slack`` percentage points,
three binomial standard errors of an accuracy on ``n`` images (at least one point).
A failed check marks the result "possible gradient masking".
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field

__all__ = ["Measurements", "CheckOutcome", "Check", "CHECKS", "run_checks", "LARGE_EPS"]

LARGE_EPS = 0.5  # Linf on the [0, 1] scale: enough to turn any image into any other (mid-grey)


@dataclass
class Measurements:
    """What was measured on one model: accuracies keyed by (attack, eps, steps)."""

    n: int
    n_classes: int
    clean: float
    acc: dict[tuple[str, float | None, int], float] = field(default_factory=dict)
    grad_mean_abs: float | None = None
    grad_zero_fraction: float | None = None
    non_differentiable: bool = False

    @property
    def chance(self) -> float:
        return 100.0 / self.n_classes

    def slack(self, p: float = 50.0) -> float:
        q = min(max(p / 100, 0.05), 0.95)
        return max(1.0, 300 * math.sqrt(q * (1 - q) / max(self.n, 1)))

    def get(self, attack: str, eps=None, steps=None):
        for (a, e, s), v in self.acc.items():
            if a == attack and (eps is None or (e is not None and abs(e - eps) < 1e-9)) and (steps is None or s == steps):
                return v
        return None

    def eps_curve(self, attack: str, steps: int | None = None) -> list[tuple[float, float]]:
        pts = {e: v for (a, e, s), v in self.acc.items() if a == attack and e is not None and (steps is None or s == steps)}
        return sorted(pts.items())


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    passed: bool
    detail: str


class Check(ABC):
    name: str = ""
    description: str = ""

    @abstractmethod
    def evaluate(self, m: Measurements) -> CheckOutcome | None: ...

    def _out(self, passed: bool, detail: str) -> CheckOutcome:
        return CheckOutcome(self.name, passed, detail)


class ChanceAtLargeEpsilon(Check):
    name = "chance_at_large_epsilon"
    description = "white-box accuracy falls to chance or below at Linf epsilon 0.5"

    def evaluate(self, m):
        v = m.get("pgd", LARGE_EPS)
        if v is None:
            return None
        limit = m.chance + m.slack(m.chance)
        return self._out(v <= limit, f"PGD accuracy at eps {LARGE_EPS}: {v:.1f}% (chance {m.chance:.1f}%, limit {limit:.1f}%)")


class IterativeBeatsSingleStep(Check):
    name = "iterative_beats_single_step"
    description = "PGD does at least as well as FGSM at the same epsilon"

    def evaluate(self, m):
        pairs = [(e, m.get("pgd", e), v) for (a, e, s), v in m.acc.items() if a == "fgsm" and m.get("pgd", e) is not None]
        if not pairs:
            return None
        bad = [(e, p, f) for e, p, f in pairs if p > f + m.slack(f)]
        return self._out(not bad, "; ".join(f"eps {e:.4g}: PGD {p:.1f}% vs FGSM {f:.1f}%" for e, p, f in (bad or pairs)))


class MoreStepsNoBetter(Check):
    name = "more_steps_do_not_raise_accuracy"
    description = "PGD with more steps (or restarts) does not give higher accuracy"

    def evaluate(self, m):
        runs = sorted((s, e, v) for (a, e, s), v in m.acc.items() if a == "pgd")
        by_eps: dict = {}
        for s, e, v in runs:
            by_eps.setdefault(e, []).append((s, v))
        pairs = [(e, sv) for e, sv in by_eps.items() if len(sv) > 1]
        if not pairs:
            return None
        bad = [(e, sv) for e, sv in pairs if sv[-1][1] > sv[0][1] + m.slack(sv[0][1])]
        e, sv = (bad or pairs)[0]
        return self._out(not bad, f"eps {e:.4g}: {sv[0][0]} steps {sv[0][1]:.1f}% vs {sv[-1][0]} steps {sv[-1][1]:.1f}%")


class QueryNotBetterThanWhiteBox(Check):
    name = "query_attack_not_better_than_white_box"
    description = "a score-based black-box attack does not beat the white-box attack"

    def evaluate(self, m):
        pairs = [(e, v, m.get("pgd", e)) for (a, e, s), v in m.acc.items() if a == "square" and m.get("pgd", e) is not None]
        if not pairs or m.non_differentiable:
            return None
        bad = [(e, q, w) for e, q, w in pairs if q < w - m.slack(w)]
        return self._out(not bad, "; ".join(f"eps {e:.4g}: Square {q:.1f}% vs PGD {w:.1f}%" for e, q, w in (bad or pairs)))


class TransferNotBetterThanWhiteBox(Check):
    name = "transfer_not_better_than_white_box"
    description = "examples transferred from the dense model do not beat the white-box attack"

    def evaluate(self, m):
        pairs = [(e, v, m.get("pgd", e)) for (a, e, s), v in m.acc.items() if a == "transfer" and m.get("pgd", e) is not None]
        if not pairs:
            return None
        bad = [(e, t, w) for e, t, w in pairs if t < w - m.slack(w)]
        return self._out(not bad, "; ".join(f"eps {e:.4g}: transfer {t:.1f}% vs white-box {w:.1f}%" for e, t, w in (bad or pairs)))


class ScoreAttackNotAboveTransferOnNonDifferentiable(Check):
    name = "score_attack_not_above_transfer_non_differentiable"
    description = "on a model without gradients (int8), the score-based attack reports no more robustness than transfer"

    def evaluate(self, m):
        if not m.non_differentiable:
            return None
        pairs = [(e, v, m.get("transfer", e)) for (a, e, s), v in m.acc.items() if a == "square" and m.get("transfer", e) is not None]
        if not pairs:
            return None
        bad = [(e, q, t) for e, q, t in pairs if q > t + m.slack(t)]
        return self._out(not bad, "; ".join(f"eps {e:.4g}: Square {q:.1f}% vs transfer {t:.1f}%" for e, q, t in (bad or pairs)))


class MonotoneInEpsilon(Check):
    name = "accuracy_does_not_rise_with_epsilon"
    description = "white-box accuracy does not rise as epsilon grows"

    def evaluate(self, m):
        curve = m.eps_curve("pgd")
        if len(curve) < 2:
            return None
        bad = [(e1, v1, e2, v2) for (e1, v1), (e2, v2) in zip(curve, curve[1:]) if v2 > v1 + m.slack(v1)]
        return self._out(not bad, "; ".join(f"eps {e1:.4g} -> {e2:.4g}: {v1:.1f}% -> {v2:.1f}%" for e1, v1, e2, v2 in bad) or
                         "monotone: " + ", ".join(f"{e:.3g}: {v:.1f}%" for e, v in curve))


class NoVanishingGradients(Check):
    name = "no_vanishing_input_gradients"
    description = "input gradients are neither zero nor vanishing"

    def evaluate(self, m):
        if m.grad_mean_abs is None:
            return None
        ok = m.grad_mean_abs > 1e-8 and (m.grad_zero_fraction or 0) < 0.5
        return self._out(ok, f"mean |dL/dx| = {m.grad_mean_abs:.3g}, zero share {100 * (m.grad_zero_fraction or 0):.1f}%")


CHECKS: tuple[Check, ...] = (
    ChanceAtLargeEpsilon(), IterativeBeatsSingleStep(), MoreStepsNoBetter(), QueryNotBetterThanWhiteBox(), TransferNotBetterThanWhiteBox(),
    ScoreAttackNotAboveTransferOnNonDifferentiable(), MonotoneInEpsilon(), NoVanishingGradients(),
)


def run_checks(m: Measurements) -> tuple[list[dict], bool]:
    """Every applicable check's outcome, and whether any failed (possible gradient masking)."""
    outs = [o for o in (c.evaluate(m) for c in CHECKS) if o is not None]
    return [asdict(o) for o in outs], any(not o.passed for o in outs)
