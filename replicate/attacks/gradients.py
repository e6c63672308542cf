"""Gradient measurements of a model's input gradients, read by the rigour checks: their size and share
of zeros (vanishing or masked gradients), and their consistency at nearby points (shattered gradients,
Athalye, Carlini & Wagner 2018)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["input_gradient_stats", "gradient_consistency"]


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
