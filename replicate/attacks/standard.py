"""The standard attacks, one small class each behind :class:`~replicate.attacks.base.AttackMethod`:
torchattacks' FGSM, PGD (L∞, L2), CW, APGD, AutoAttack (fast subset and the paper's standard
version), Square, transfer, and the random-noise baselines of the rigour checks.

References: Goodfellow et al. 2015 (FGSM); Madry et al. 2018 (PGD); Carlini & Wagner 2017 (CW);
Croce & Hein 2020 (APGD, AutoAttack); Andriushchenko et al. 2020 (Square); Carlini et al. 2019 §5
(random-noise baselines). torchattacks: Kim 2020, arXiv:2010.01950.
"""

from __future__ import annotations

import torch

from evidence.vocab import Attack, Norm, ThreatModel

from .._deps import require_torchattacks
from .base import AttackMethod, AttackName, AttackSpec, register_attack

__all__ = ["FGSM", "PGD", "PGDL2", "Transfer", "CW", "APGD", "AutoAttackFast", "AutoAttackStandard", "Square", "Noise", "NoiseL2"]


def _ta():
    return require_torchattacks()


class FGSM(AttackMethod):
    name, vocab, iterative = AttackName.fgsm, Attack.fgsm, False

    def build(self, model, spec, n_classes, seed):
        return _ta().FGSM(model, eps=spec.eps)

    def label(self, spec):
        return f"FGSM Linf eps {spec.eps:g} (torchattacks, 1 step)"

    def real_steps(self, spec):
        return 1


def _pgd_text(spec: AttackSpec, norm: str) -> str:
    return (f"PGD-{spec.steps} {norm} eps {spec.eps:g} (torchattacks, step {spec.step_size:.4g}, random start, "
            f"{spec.restarts} restart{'s' if spec.restarts > 1 else ''}, cross-entropy loss)")


class PGD(AttackMethod):
    """Madry et al. 2018, L∞; restarts keep the worst case per image."""

    name, vocab = AttackName.pgd, Attack.pgd

    def build(self, model, spec, n_classes, seed):
        ta = _ta()
        one = lambda: ta.PGD(model, eps=spec.eps, alpha=spec.step_size, steps=spec.steps, random_start=True)  # noqa: E731
        return one() if spec.restarts == 1 else ta.MultiAttack([one() for _ in range(spec.restarts)])

    def label(self, spec):
        return _pgd_text(spec, "Linf")


class PGDL2(AttackMethod):
    name, vocab, norm = AttackName.pgdl2, Attack.pgd, Norm.l2

    def build(self, model, spec, n_classes, seed):
        ta = _ta()
        one = lambda: ta.PGDL2(model, eps=spec.eps, alpha=spec.step_size, steps=spec.steps, random_start=True)  # noqa: E731
        return one() if spec.restarts == 1 else ta.MultiAttack([one() for _ in range(spec.restarts)])

    def label(self, spec):
        return _pgd_text(spec, "L2")


class Transfer(PGD):
    """PGD examples crafted on a source model (the dense model; for a dense model, an independently
    trained surrogate) and evaluated on the target."""

    name, threat_model, source_attack = AttackName.transfer, ThreatModel.transfer, AttackName.pgd

    def label(self, spec):
        return _pgd_text(spec, "Linf") + ", crafted on a source model and transferred"


class CW(AttackMethod):
    name, vocab, norm = AttackName.cw, Attack.cw, Norm.l2

    def build(self, model, spec, n_classes, seed):
        return _ta().CW(model, c=1, kappa=0, steps=spec.steps, lr=0.01)

    def label(self, spec):
        return f"CW-L2 (torchattacks, c=1, kappa=0, {spec.steps} steps, lr 0.01; unbounded, eps not enforced)"


class APGD(AttackMethod):
    name, vocab = AttackName.apgd, Attack.apgd

    def build(self, model, spec, n_classes, seed):
        return _ta().APGD(model, eps=spec.eps, steps=spec.steps, n_restarts=spec.restarts, seed=seed, loss="ce")

    def label(self, spec):
        return f"APGD-CE Linf eps {spec.eps:g} (torchattacks, {spec.steps} iterations, {spec.restarts} restart(s))"


class AutoAttackFast(AttackMethod):
    name, vocab = AttackName.autoattack_fast, Attack.autoattack_fast

    def build(self, model, spec, n_classes, seed):
        ta = _ta()
        return ta.MultiAttack([ta.APGD(model, eps=spec.eps, steps=spec.steps, seed=seed, loss="ce"),
                               ta.APGDT(model, eps=spec.eps, steps=spec.steps, seed=seed, n_classes=n_classes)])

    def label(self, spec):
        return (f"AutoAttack, fast subset: APGD-CE + APGD-T (targeted DLR, {spec.steps} iterations each) Linf eps {spec.eps:g} "
                "(torchattacks); no FAB-T, no Square")


class AutoAttackStandard(AttackMethod):
    """The paper's standard AutoAttack: every component at the paper's budget, whatever the spec's steps."""

    name, vocab = AttackName.autoattack_standard, Attack.autoattack_standard
    ITERATIONS, QUERIES = 100, 5000

    def build(self, model, spec, n_classes, seed):
        ta = _ta()
        n = self.ITERATIONS
        return ta.MultiAttack([
            ta.APGD(model, eps=spec.eps, steps=n, seed=seed, loss="ce", n_restarts=1),
            ta.APGDT(model, eps=spec.eps, steps=n, seed=seed, n_classes=n_classes, n_restarts=1),
            ta.FAB(model, eps=spec.eps, steps=n, seed=seed, multi_targeted=True, n_classes=n_classes, n_restarts=1),
            ta.Square(model, eps=spec.eps, n_queries=self.QUERIES, n_restarts=1, seed=seed),
        ])

    def label(self, spec):
        return (f"AutoAttack standard (Croce & Hein 2020) Linf eps {spec.eps:g}: APGD-CE 100 iterations, APGD-T 100 iterations "
                "(9 target classes), FAB-T 100 iterations (9 target classes), Square 5,000 queries; torchattacks components")

    def real_steps(self, spec):
        return self.ITERATIONS

    def real_queries(self, spec):
        return self.QUERIES


class Square(AttackMethod):
    """Score-based black box (Andriushchenko et al. 2020); crafted on the evaluated model itself."""

    name, vocab, threat_model, crafts_on_target, iterative = AttackName.square, Attack.square, ThreatModel.black_box_query, True, False

    def build(self, model, spec, n_classes, seed):
        return _ta().Square(model, norm="Linf", eps=spec.eps, n_queries=spec.queries, n_restarts=1, seed=seed)

    def label(self, spec):
        return f"Square Linf eps {spec.eps:g} (torchattacks, {spec.queries} queries, score-based black box, margin loss)"

    def real_steps(self, spec):
        return None

    def real_queries(self, spec):
        return spec.queries


class _Noise(AttackMethod):
    """Random-noise baseline: the best of ``restarts`` random perturbations per image (L∞ corners
    ±eps, or L2 Gaussian directions scaled to eps)."""

    crafts_on_target = True

    def build(self, model, spec, n_classes, seed):
        gen = torch.Generator().manual_seed(seed)

        def run(x, y):
            best = x.clone()
            still = torch.ones(len(y), dtype=torch.bool, device=y.device)
            for _ in range(max(spec.restarts, 1)):
                if self.norm is Norm.l2:
                    d = torch.randn(x.shape, generator=gen).to(x.device)
                    d = d / d.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (x.dim() - 1))) * spec.eps
                else:
                    d = ((torch.randint(0, 2, x.shape, generator=gen).float() * 2 - 1) * spec.eps).to(x.device)
                xa = (x + d).clamp(0, 1)
                with torch.no_grad():
                    wrong = model(xa).argmax(1) != y
                take = wrong & still
                best[take] = xa[take]
                still &= ~wrong
            return best

        return run

    def real_steps(self, spec):
        return None

    def real_queries(self, spec):
        return max(spec.restarts, 1)


class Noise(_Noise):
    name = AttackName.noise

    def label(self, spec):
        return f"random sign noise Linf eps {spec.eps:g}, best of {spec.restarts} draw(s) (baseline)"


class NoiseL2(_Noise):
    name, norm = AttackName.noise_l2, Norm.l2

    def label(self, spec):
        return f"random Gaussian direction L2 eps {spec.eps:g}, best of {spec.restarts} draw(s) (baseline)"


for _m in (FGSM(), PGD(), PGDL2(), Transfer(), CW(), APGD(), AutoAttackFast(), AutoAttackStandard(), Square(), Noise(), NoiseL2()):
    register_attack(_m)
