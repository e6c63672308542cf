"""Attacks adapted to compressed and defended models, registered in :data:`replicate.attacks.base.ATTACKS`.

Each is L∞ PGD (Madry et al. 2018) with one change aimed at one way gradients are masked:

- ``pgd_pp`` (:class:`PGDPlusPlus`): temperature-scaled PGD for binary and quantized networks
  (Gupta K, Ajanthan T 2022, "Improved gradient-based adversarial attacks for quantized networks",
  AAAI). Large weight scales make the float32 softmax saturate, so the cross-entropy gradient of a
  correctly classified image is exactly zero. The loss is taken on logits / T, with T fixed in the
  spec or, by default, set per image to its top-2 logit margin (so the scaled margin is 1; the aim of
  the paper's network-Jacobian scaling, by a simpler rule). Each image keeps the stronger of plain
  PGD (T = 1) and the scaled run, so PGD++ is never weaker than PGD on the same random start.
- ``bpda`` (:class:`BPDA`): Backward Pass Differentiable Approximation (Athalye, Carlini & Wagner
  2018, "Obfuscated gradients give a false sense of security", ICML §4.1): modules marked
  ``bpda_identity`` (input quantizers, see :mod:`replicate.attacks.masking`) run forward as they are and
  backward as the identity (the straight-through estimator of Bengio et al. 2013).
- ``eot_pgd`` (:class:`EOTPGD`): Expectation over Transformation (Athalye et al. 2018 §4.2; Athalye,
  Engstrom, Ilyas & Kwok 2018, ICML): every step follows the mean gradient of ``eot_samples``
  (default 20) forward/backward passes of a randomised model; BPDA is applied too, since randomised
  defences are often also non-differentiable (randomised precision).

All run on the model's device; the random start draws from a generator seeded with the cell's seed.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn
from torch.nn import functional as F

from evidence.vocab import Attack

from .base import AttackMethod, AttackName, AttackSpec, register_attack
from .masking import is_non_differentiable

__all__ = ["PGDPlusPlus", "BPDA", "EOTPGD", "bpda_hooks", "margin_temperature", "DEFAULT_EOT_SAMPLES"]

DEFAULT_EOT_SAMPLES = 20


@contextlib.contextmanager
def bpda_hooks(model: nn.Module):
    """While active, every ``bpda_identity`` module's output y = f(x) becomes x + (y - x).detach():
    the same value forward, the identity backward."""
    handles = []

    def hook(module, inputs, output):
        x = inputs[0]
        return x + (output - x).detach() if output.shape == x.shape else output

    for m in model.modules():
        if is_non_differentiable(m):
            handles.append(m.register_forward_hook(hook))
    try:
        yield len(handles)
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def margin_temperature(logits: torch.Tensor) -> torch.Tensor:
    """Per-image temperature: the gap between the two largest logits (at least 1e-6), shape (N, 1)."""
    top2 = logits.float().topk(2, dim=1).values
    return (top2[:, 0] - top2[:, 1]).clamp_min(1e-6).unsqueeze(1)


def _pgd(model, x, y, spec: AttackSpec, seed: int, *, temperature=None, samples: int = 1, bpda: bool = False) -> torch.Tensor:
    """L∞ PGD with random start; ``temperature`` None (plain), a float, or "margin" (per image);
    ``samples`` gradient samples averaged per step (EOT); ``bpda`` identity backward for marked modules."""
    eps, alpha = spec.eps, spec.step_size
    gen = torch.Generator(device=x.device).manual_seed(seed)
    ctx = bpda_hooks(model) if bpda else contextlib.nullcontext()
    with ctx:
        t = None
        if temperature == "margin":
            with torch.no_grad():
                t = margin_temperature(model(x))
        elif temperature is not None:
            t = torch.full((len(x), 1), float(temperature), device=x.device)
        x_adv = (x + (torch.rand(x.shape, generator=gen, device=x.device) * 2 - 1) * eps).clamp(0, 1)
        for _ in range(spec.steps):
            grad = torch.zeros_like(x)
            for _ in range(samples):
                z = x_adv.clone().requires_grad_(True)
                logits = model(z).float()
                loss = F.cross_entropy(logits / t if t is not None else logits, y, reduction="sum")
                (g,) = torch.autograd.grad(loss, z, allow_unused=True)
                if g is not None:
                    grad += g
            x_adv = torch.min(torch.max(x_adv.detach() + alpha * grad.sign(), x - eps), x + eps).clamp(0, 1)
    return x_adv.detach()


@torch.no_grad()
def _worst(model, y, candidates: list[torch.Tensor]) -> torch.Tensor:
    """Per image, the first candidate the model misclassifies (else the last)."""
    best = candidates[-1].clone()
    found = torch.zeros(len(y), dtype=torch.bool, device=y.device)
    for c in candidates:
        wrong = (model(c).argmax(1) != y) & ~found
        best[wrong] = c[wrong]
        found |= wrong
    return best


def _prepare(model: nn.Module, x, y):
    dev = next((p.device for p in model.parameters()), x.device)
    return x.detach().to(dev), y.detach().to(dev)


class PGDPlusPlus(AttackMethod):
    name, vocab = AttackName.pgd_pp, Attack.pgd_pp

    def build(self, model, spec, n_classes, seed):
        def run(x, y):
            x, y = _prepare(model, x, y)
            plain = _pgd(model, x, y, spec, seed)
            scaled = _pgd(model, x, y, spec, seed, temperature=spec.temperature or "margin")
            return _worst(model, y, [scaled, plain])

        return run

    def real_steps(self, spec):
        return spec.steps

    def label(self, spec):
        t = f"temperature {spec.temperature:g}" if spec.temperature else "per-image temperature = top-2 logit margin"
        return (f"PGD++ Linf eps {spec.eps:g} (Gupta & Ajanthan 2022): PGD-{spec.steps}, step {spec.step_size:.4g}, random start, "
                f"cross-entropy on logits / T ({t}), per image the stronger of the scaled and the plain (T = 1) run")


class BPDA(AttackMethod):
    name, vocab = AttackName.bpda, Attack.bpda

    def build(self, model, spec, n_classes, seed):
        def run(x, y):
            x, y = _prepare(model, x, y)
            return _pgd(model, x, y, spec, seed, bpda=True)

        return run

    def label(self, spec):
        return (f"BPDA + PGD-{spec.steps} Linf eps {spec.eps:g} (Athalye et al. 2018): identity backward pass through "
                f"non-differentiable input quantizers, step {spec.step_size:.4g}, random start")


class EOTPGD(AttackMethod):
    name, vocab = AttackName.eot_pgd, Attack.eot_pgd

    def build(self, model, spec, n_classes, seed):
        def run(x, y):
            x, y = _prepare(model, x, y)
            return _pgd(model, x, y, spec, seed, samples=spec.eot_samples or DEFAULT_EOT_SAMPLES, bpda=True)

        return run

    def label(self, spec):
        return (f"EOT-PGD-{spec.steps} Linf eps {spec.eps:g} (Athalye et al. 2018): mean gradient of {spec.eot_samples or DEFAULT_EOT_SAMPLES} "
                f"samples of the randomised model per step, BPDA through non-differentiable input quantizers, step {spec.step_size:.4g}")


for _m in (PGDPlusPlus(), BPDA(), EOTPGD()):
    register_attack(_m)
