"""Checks on the input gradients themselves: not vanishing, and consistent at nearby points (shattered
gradients; Athalye, Carlini & Wagner 2018, ICML §3)."""

from __future__ import annotations

from .base import CONSISTENCY_MIN, Check, register_check

__all__ = ['NoVanishingGradients', 'ConsistentGradients']


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


for _c in (NoVanishingGradients(), ConsistentGradients()):
    register_check(_c)
