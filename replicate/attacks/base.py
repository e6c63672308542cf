"""The attack family's base: :class:`AttackMethod`, the registry :data:`ATTACKS`, and running an attack.

:class:`AttackName` is the one declaration of the attack names a spec can use; :data:`ATTACKS` is
the registry (name -> method). A method knows its evidence vocabulary value, norm, threat model,
the real number of iterations and queries it runs, and a full text label; it builds a callable that
crafts adversarial examples (torchattacks where it has the attack). New attacks (PGD++, EOT, BPDA in
``replicate/attacks/adaptive.py``) subclass :class:`AttackMethod` and call :func:`register_attack`.

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

__all__ = ["AttackName", "AttackSpec", "AttackMethod", "ATTACKS", "register_attack", "craft", "correct", "evaluate_attack", "model_to_attack"]


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
    source_attack: AttackName | None = None  # transfer: examples crafted on a source model with this attack
    iterative: bool = True  # False: single-step or query-based (a minimum number of steps does not apply)

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
    if spec.method.source_attack is not None:
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
