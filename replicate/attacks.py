"""Attacks through torchattacks, labelled with the settings actually used.

``autoattack`` is torchattacks' ``AutoAttack(version="standard")``, whose APGD runs 10 steps, not
the reference 100 (Croce & Hein 2020): results say so. ``autoattack_reference`` builds the reference
ensemble (APGD-CE and APGD-T with 100 steps, FAB-T, Square with 5,000 queries) and
``autoattack_fast`` runs APGD-CE + APGD-T only. ``transfer`` crafts PGD examples on a source model
(the dense one) and evaluates them on the target.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ._deps import require_torchattacks

__all__ = ["AttackSpec", "ATTACKS", "craft", "correct", "evaluate_attack", "model_to_attack", "input_gradient_stats"]

ATTACKS = ("fgsm", "pgd", "pgdl2", "cw", "autoattack", "autoattack_fast", "autoattack_reference", "square", "transfer")
_ENUM = {"fgsm": "fgsm", "pgd": "pgd", "pgdl2": "pgd", "cw": "cw", "autoattack": "autoattack", "autoattack_fast": "autoattack",
         "autoattack_reference": "autoattack", "square": "square", "transfer": "pgd"}


@dataclass(frozen=True)
class AttackSpec:
    name: str
    eps: float | None = None
    steps: int = 10
    restarts: int = 1
    alpha: float | None = None
    queries: int = 1000

    def __post_init__(self):
        if self.name not in ATTACKS:
            raise ValueError(f"unknown attack {self.name!r}; use one of {', '.join(ATTACKS)}")

    @property
    def norm(self) -> str:
        return "l2" if self.name in ("pgdl2", "cw") else "linf"

    @property
    def enum(self) -> str:
        return _ENUM[self.name]

    @property
    def threat_model(self) -> str:
        return {"transfer": "transfer", "square": "black_box_query"}.get(self.name, "white_box")

    def label(self) -> str:
        n = self.name
        if n == "fgsm":
            return "FGSM (torchattacks)"
        if n in ("pgd", "pgdl2", "transfer"):
            a = self.alpha or 2.5 * (self.eps or 0) / self.steps
            base = f"PGD-{self.steps} {'L2' if n == 'pgdl2' else 'Linf'} (torchattacks, alpha {a:.4g}, random start, {self.restarts} restart(s))"
            return base + (", crafted on the dense model" if n == "transfer" else "")
        if n == "cw":
            return f"CW-L2 (torchattacks, c=1, kappa=0, {self.steps} steps)"
        if n == "autoattack":
            return "AutoAttack standard as in torchattacks 3.5.1 (APGD with 10 steps, not the reference 100)"
        if n == "autoattack_fast":
            return f"APGD-CE + APGD-T (torchattacks, {self.steps} steps)"
        if n == "autoattack_reference":
            return "AutoAttack reference setting (APGD-CE, APGD-T 100 steps, FAB-T, Square 5000 queries; torchattacks)"
        return f"Square (torchattacks, Linf, {self.queries} queries, score-based black box)"


def _make(ta, model: nn.Module, spec: AttackSpec, n_classes: int, seed: int):
    eps = spec.eps
    alpha = spec.alpha or 2.5 * (eps or 0) / max(spec.steps, 1)
    if spec.name == "fgsm":
        return ta.FGSM(model, eps=eps)
    if spec.name in ("pgd", "transfer"):
        if spec.restarts > 1:
            return ta.MultiAttack([ta.PGD(model, eps=eps, alpha=alpha, steps=spec.steps, random_start=True) for _ in range(spec.restarts)])
        return ta.PGD(model, eps=eps, alpha=alpha, steps=spec.steps, random_start=True)
    if spec.name == "pgdl2":
        return ta.PGDL2(model, eps=eps, alpha=alpha, steps=spec.steps, random_start=True)
    if spec.name == "cw":
        return ta.CW(model, c=1, kappa=0, steps=spec.steps, lr=0.01)
    if spec.name == "autoattack":
        return ta.AutoAttack(model, norm="Linf", eps=eps, version="standard", n_classes=n_classes, seed=seed)
    if spec.name == "autoattack_fast":
        return ta.MultiAttack([ta.APGD(model, eps=eps, steps=spec.steps, seed=seed, loss="ce"),
                               ta.APGDT(model, eps=eps, steps=spec.steps, seed=seed, n_classes=n_classes)])
    if spec.name == "autoattack_reference":
        return ta.MultiAttack([ta.APGD(model, eps=eps, steps=100, seed=seed, loss="ce"), ta.APGDT(model, eps=eps, steps=100, seed=seed, n_classes=n_classes),
                               ta.FAB(model, eps=eps, seed=seed, multi_targeted=True, n_classes=n_classes), ta.Square(model, eps=eps, n_queries=5000, seed=seed)])
    return ta.Square(model, norm="Linf", eps=eps, n_queries=spec.queries, n_restarts=1, seed=seed)


def craft(model: nn.Module, spec: AttackSpec, x: torch.Tensor, y: torch.Tensor, *, n_classes: int, seed: int = 0, batch: int = 256) -> torch.Tensor:
    """Adversarial examples against ``model`` (the source model, for transfer)."""
    ta = require_torchattacks()
    torch.manual_seed(seed)
    model.eval()
    atk = _make(ta, model, spec, n_classes, seed)
    out = []
    for i in range(0, len(y), batch):
        out.append(atk(x[i: i + batch], y[i: i + batch]).detach())
    return torch.cat(out)


@torch.no_grad()
def correct(model, x, y, batch=512) -> torch.Tensor:
    """Per-image correctness (bool) of ``model`` on ``x``."""
    model.eval()
    return torch.cat([model(x[i: i + batch]).argmax(1) == y[i: i + batch] for i in range(0, len(y), batch)])


def _acc(model, x, y) -> float:
    return 100.0 * float(correct(model, x, y).float().mean())


def model_to_attack(spec: AttackSpec, target: nn.Module, attacked: nn.Module | None = None, source: nn.Module | None = None) -> nn.Module:
    """Which model an attack crafts its examples on: the source (transfer), the evaluated model itself
    (score-based Square), or the differentiable twin of a non-differentiable target (BPDA)."""
    if spec.name == "transfer":
        if source is None:
            raise ValueError("a transfer attack needs a source model")
        return source
    if spec.name == "square":
        return target
    return attacked if attacked is not None else target


def evaluate_attack(target: nn.Module, spec: AttackSpec, x, y, *, n_classes: int, seed: int = 0, attacked: nn.Module | None = None,
                    source: nn.Module | None = None) -> float:
    """Robust accuracy (percent) of ``target``: examples crafted on ``attacked`` (a differentiable twin,
    default ``target``), or on ``source`` for a transfer attack."""
    x_adv = craft(model_to_attack(spec, target, attacked, source), spec, x, y, n_classes=n_classes, seed=seed)
    return _acc(target, x_adv, y)


def input_gradient_stats(model: nn.Module, x, y) -> dict:
    """Mean |∂loss/∂x| and the share of exactly-zero input gradients (vanishing / masked gradients)."""
    x = x.clone().requires_grad_(True)
    loss = nn.functional.cross_entropy(model(x), y)
    (g,) = torch.autograd.grad(loss, x, allow_unused=True)
    if g is None:
        return {"grad_mean_abs": 0.0, "grad_zero_fraction": 1.0}
    return {"grad_mean_abs": float(g.abs().mean()), "grad_zero_fraction": float((g == 0).float().mean())}
