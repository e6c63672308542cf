"""Checks that the reported white-box attack is as strong as it should be: chance at a large epsilon,
iterative beats single-step, converged under the step-size and restart sweep, and not weaker than
random noise, transfer or a score-based attack (Carlini et al. 2019 §5; Athalye et al. 2018 §3)."""

from __future__ import annotations

import numpy as np

from ..attacks import AttackName
from .base import ALPHA, LARGE_EPS, SWEEP_MIN_GAIN_PP, Check, paired_less, reference, register_check

__all__ = ['ChanceAtLargeEpsilon', 'IterativeBeatsSingleStep', 'StrongerSettingsNoBetter', 'NotWeakerThan']


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
        ref = reference(m, "linf")
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
        ref = reference(m, self.norm)
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
        ref = reference(m, self.norm)
        if ref is None or (m.non_differentiable and not self.applies_nd):
            return None
        others = m.find(self.other, ref[0].eps)
        if not others:
            return None
        p = paired_less(ref[1], others[0][1])
        return self._out(p.p_value >= ALPHA, f"eps {ref[0].eps:g}: " + p.text("white-box", self.what))


for _c in (ChanceAtLargeEpsilon(), IterativeBeatsSingleStep(), StrongerSettingsNoBetter("linf", AttackName.pgd), StrongerSettingsNoBetter("l2", AttackName.pgdl2),
           NotWeakerThan("noise_not_stronger_than_white_box", "linf", AttackName.noise, "random noise"),
           NotWeakerThan("noise_l2_not_stronger_than_white_box", "l2", AttackName.noise_l2, "random noise (L2)"),
           NotWeakerThan("transfer_not_stronger_than_white_box", "linf", AttackName.transfer, "transfer"),
           NotWeakerThan("query_attack_not_stronger_than_white_box", "linf", AttackName.square, "Square (score-based)")):
    register_check(_c)
