"""Attacks, each one small class behind :class:`AttackMethod`, labelled with the settings actually used.

:class:`AttackName` is the one declaration of the attack names a spec can use; :data:`ATTACKS` is
the registry (name -> method). A method knows its evidence vocabulary value, norm, threat model,
the real number of iterations and queries it runs, and a full text label; it builds a callable that
crafts adversarial examples (torchattacks where it has the attack). New attacks (PGD++, EOT, BPDA in
``replicate/adaptive_attacks.py``) subclass :class:`AttackMethod` and call :func:`register_attack`.

AutoAttack (Croce & Hein 2020, "Reliable evaluation of adversarial robustness with an ensemble of
diverse parameter-free attacks", ICML): ``autoattack_standard`` is the paper's standard version
(APGD-CE 100 iterations, APGD-T 100 iterations on 9 target classes, FAB-T 100 iterations on 9
target classes, Square 5,000 queries, applied in sequence to the images still classified
correctly); ``autoattack_fast`` is APGD-CE + APGD-T at the spec's iterations. torchattacks'
``AutoAttack(version="standard")`` runs APGD and FAB at 10 iterations, so it is not used.
``noise`` / ``noise_l2`` are the random-noise baselines of the rigour checks (Carlini et al. 2019
§5): never a result row.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import StrEnum
from typing import Callable

import torch
from torch import nn

from evidence.vocab import Attack, Norm, ThreatModel

from ._deps import require_torchattacks

__all__ = ["AttackName", "AttackSpec", "AttackMethod", "ATTACKS", "register_attack", "craft", "correct", "evaluate_attack", "model_to_attack",
           "input_gradient_stats", "gradient_consistency"]


class AttackName(StrEnum):
    """Every attack name a spec may use (the registry below gives each its method)."""

    fgsm = "fgsm"
    pgd = "pgd"
    pgdl2 = "pgdl2"
    cw = "cw"
    apgd = "apgd"
    autoattack_fast = "autoattack_fast"
    autoattack_standard = "autoattack_standard"
    square = "square"
    transfer = "transfer"
    noise = "noise"
    noise_l2 = "noise_l2"
    pgd_pp = "pgd_pp"  # temperature-scaled PGD++ (engineer E, adaptive_attacks.py)
    eot_pgd = "eot_pgd"  # PGD with Expectation over Transformation (engineer E)
    bpda = "bpda"  # Backward Pass Differentiable Approximation (engineer E)


@dataclass(frozen=True)
class AttackSpec:
    """One attack setting: ``steps`` iterations, ``restarts`` random restarts, step ``alpha``
    (default 2.5·eps/steps, Madry et al. 2018), ``queries`` for score-based attacks."""

    name: AttackName
    eps: float | None = None
    steps: int = 10
    restarts: int = 1
    alpha: float | None = None
    queries: int = 1000
    temperature: float | None = None  # PGD++ logit temperature
    eot_samples: int | None = None  # EOT: gradient samples per step

    def __post_init__(self):
        try:
            object.__setattr__(self, "name", AttackName(self.name))
        except ValueError:
            raise ValueError(f"unknown attack {self.name!r}; use one of {', '.join(ATTACKS)}") from None
        if self.name not in ATTACKS:
            raise ValueError(f"attack {self.name.value!r} is declared but has no registered method (known: {', '.join(ATTACKS)})")

    @property
    def method(self) -> "AttackMethod":
        return ATTACKS[self.name]

    @property
    def step_size(self) -> float:
        return self.alpha if self.alpha is not None else 2.5 * (self.eps or 0) / max(self.steps, 1)

    @property
    def norm(self) -> Norm:
        return self.method.norm

    @property
    def vocab(self) -> Attack:
        return self.method.vocab

    @property
    def threat_model(self) -> ThreatModel:
        return self.method.threat_model

    @property
    def real_steps(self) -> int | None:
        return self.method.real_steps(self)

    @property
    def real_queries(self) -> int | None:
        return self.method.real_queries(self)

    def label(self) -> str:
        return self.method.label(self)

    @property
    def key(self) -> tuple:
        """Identity of a measured setting (attack, eps, steps, restarts, step size)."""
        return (self.name.value, self.eps, self.steps, self.restarts, round(self.step_size, 8))


Crafter = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class AttackMethod(ABC):
    """One attack. Subclasses set the class attributes and implement :meth:`build` and :meth:`label`."""

    name: AttackName
    vocab: Attack = Attack.other
    norm: Norm = Norm.linf
    threat_model: ThreatModel = ThreatModel.white_box
    crafts_on_target: bool = False  # score-based / random: uses the evaluated model itself, never a twin

    @abstractmethod
    def build(self, model: nn.Module, spec: AttackSpec, n_classes: int, seed: int) -> Crafter: ...

    @abstractmethod
    def label(self, spec: AttackSpec) -> str: ...

    def real_steps(self, spec: AttackSpec) -> int | None:
        return spec.steps

    def real_queries(self, spec: AttackSpec) -> int | None:
        return None


ATTACKS: dict[AttackName, AttackMethod] = {}


def register_attack(method: AttackMethod) -> AttackMethod:
    """Add ``method`` to :data:`ATTACKS` under its name (its name must be an :class:`AttackName`)."""
    ATTACKS[AttackName(method.name)] = method
    return method


def _ta():
    return require_torchattacks()


class FGSM(AttackMethod):
    name, vocab = AttackName.fgsm, Attack.fgsm

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

    name, threat_model = AttackName.transfer, ThreatModel.transfer

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

    name, vocab, threat_model, crafts_on_target = AttackName.square, Attack.square, ThreatModel.black_box_query, True

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


def craft(model: nn.Module, spec: AttackSpec, x: torch.Tensor, y: torch.Tensor, *, n_classes: int, seed: int = 0, batch: int = 256) -> torch.Tensor:
    """Adversarial examples against ``model`` (the source model, for transfer)."""
    torch.manual_seed(seed)
    model.eval()
    atk = spec.method.build(model, spec, n_classes, seed)
    out = []
    for i in range(0, len(y), batch):
        out.append(atk(x[i: i + batch], y[i: i + batch]).detach())
    return torch.cat(out)


@torch.no_grad()
def correct(model, x, y, batch=512) -> torch.Tensor:
    """Per-image correctness (bool) of ``model`` on ``x``."""
    model.eval()
    return torch.cat([model(x[i: i + batch]).argmax(1) == y[i: i + batch] for i in range(0, len(y), batch)]).cpu()  # CPU: counted, packed


def model_to_attack(spec: AttackSpec, target: nn.Module, attacked: nn.Module | None = None, source: nn.Module | None = None) -> nn.Module:
    """Which model an attack crafts its examples on: the source (transfer), the evaluated model itself
    (score-based and random attacks), or the differentiable twin of a non-differentiable target."""
    if spec.name == AttackName.transfer:
        if source is None:
            raise ValueError("a transfer attack needs a source model")
        return source
    if spec.method.crafts_on_target:
        return target
    return attacked if attacked is not None else target


def evaluate_attack(target: nn.Module, spec: AttackSpec, x, y, *, n_classes: int, seed: int = 0, attacked: nn.Module | None = None,
                    source: nn.Module | None = None) -> torch.Tensor:
    """Per-image robust correctness (bool) of ``target``: examples crafted on ``attacked`` (a
    differentiable twin, default ``target``), or on ``source`` for a transfer attack."""
    x_adv = craft(model_to_attack(spec, target, attacked, source), spec, x, y, n_classes=n_classes, seed=seed)
    return correct(target, x_adv, y)


def input_gradient_stats(model: nn.Module, x, y) -> dict:
    """Mean |∂loss/∂x| and the share of exactly-zero input gradients (vanishing / masked gradients)."""
    x = x.clone().requires_grad_(True)
    loss = nn.functional.cross_entropy(model(x), y)
    (g,) = torch.autograd.grad(loss, x, allow_unused=True)
    if g is None:
        return {"grad_mean_abs": 0.0, "grad_zero_fraction": 1.0}
    return {"grad_mean_abs": float(g.abs().mean()), "grad_zero_fraction": float((g == 0).float().mean())}


def gradient_consistency(model: nn.Module, x, y, *, radius: float = 1e-3, seed: int = 0) -> float | None:
    """Median cosine similarity between the input gradient at x and at a random point within ``radius``
    (L∞, uniform). Near 1 for a piecewise-linear network; near 0 for shattered gradients (Athalye,
    Carlini & Wagner 2018, "Obfuscated gradients give a false sense of security", ICML §3). None
    when the gradients vanish."""
    gen = torch.Generator().manual_seed(seed)

    def grad(z):
        z = z.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(nn.functional.cross_entropy(model(z), y, reduction="sum"), z, allow_unused=True)
        return None if g is None else g.flatten(1)

    model.eval()
    g0 = grad(x)
    g1 = grad((x + ((torch.rand(x.shape, generator=gen) * 2 - 1) * radius).to(x.device)).clamp(0, 1))
    if g0 is None or g1 is None:
        return None
    n0, n1 = g0.norm(dim=1), g1.norm(dim=1)
    ok = (n0 > 1e-12) & (n1 > 1e-12)
    if not bool(ok.any()):
        return None
    cos = (g0[ok] * g1[ok]).sum(1) / (n0[ok] * n1[ok])
    return float(cos.median())
