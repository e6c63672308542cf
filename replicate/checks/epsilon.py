"""Accuracy must not rise with the attack's epsilon (paired, per norm; Carlini et al. 2019 §5.6)."""

from __future__ import annotations

from ..attacks import AttackName
from .base import ALPHA, Check, paired_less, register_check

__all__ = ['MonotoneInEpsilon']


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


for _c in (MonotoneInEpsilon("linf", AttackName.pgd), MonotoneInEpsilon("l2", AttackName.pgdl2)):
    register_check(_c)
