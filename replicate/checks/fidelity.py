"""Gradient fidelity: is the input gradient the attack follows the derivative of the model it attacks?

Moderate gradient masking passes every attack-based check: a model whose backward pass returns the
gradient at another point than the input (e.g. at a blurred copy of the image, as a smoothing
pre-processor with a mismatched backward, or a BPDA-style surrogate does; Athalye, Carlini & Wagner
2018, "Obfuscated gradients give a false sense of security", ICML §4-5) still has non-vanishing,
locally consistent gradients, and PGD along them is merely weaker (7.8 pp at eps 0.1 in issue 22),
not broken. This check compares the autograd directional derivative ``<dL/dx, u>`` with the central
finite difference ``(L(x + h u) - L(x - h u)) / 2h`` of the *forward* pass along random unit
directions ``u`` (the classical gradient check; Nocedal & Wright 2006, *Numerical Optimization*,
§8.1): the two agree (correlation near 1) for any model whose backward is its forward's derivative,
and disagree where the gradient is taken elsewhere.

Not informative where the forward is not locally linear at the step (the finite differences at h and
h/2 disagree, or most are exactly zero: quantized activations, whose true derivative is zero almost
everywhere and whose straight-through gradient is a deliberate BPDA surrogate, judged by the
attack-based checks), or not deterministic (random precision: the finite difference is noise).
"""

from __future__ import annotations

import torch
from torch import nn

from .base import Check, register_check

__all__ = ["FD_STEP", "FD_MIN_AGREEMENT", "FD_DIRECTIONS", "GradientFidelity", "finite_difference_agreement"]

FD_STEP = 1e-2  # on the [0, 1] pixel scale: small against eps, large against float32 rounding of the loss
FD_DIRECTIONS = 4  # random unit directions per image
FD_MIN_AGREEMENT = 0.9  # Pearson correlation of autograd and finite-difference directional derivatives
_FLAT_SHARE = 0.5  # more than this share of finite differences exactly zero: the forward is piecewise constant


@torch.no_grad()
def _losses(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(model(x), y, reduction="none")


def finite_difference_agreement(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, seed: int = 0, step: float = FD_STEP,
                                directions: int = FD_DIRECTIONS) -> dict:
    """``{"agreement": r, "linearity": q, "flat_share": s, "deterministic": bool}``: r is the correlation over
    images × directions of ``<dL/dx, u>`` (autograd) with the central finite difference along ``u``; q that
    of the finite differences at ``step`` and ``step / 2`` (near 1 where the forward is locally linear)."""
    model.eval()
    deterministic = bool(torch.equal(_losses(model, x, y), _losses(model, x, y)))
    xg = x.detach().clone().requires_grad_(True)
    loss = nn.functional.cross_entropy(model(xg), y, reduction="sum")
    (grad,) = torch.autograd.grad(loss, xg)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    auto, fd, fd_half = [], [], []
    for _ in range(directions):
        u = torch.randn(x.shape, generator=gen).to(x.device)
        u = u / u.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (x.dim() - 1)))
        auto.append((grad * u).flatten(1).sum(1))
        fd.append((_losses(model, x + step * u, y) - _losses(model, x - step * u, y)) / (2 * step))
        fd_half.append((_losses(model, x + step / 2 * u, y) - _losses(model, x - step / 2 * u, y)) / step)
    a, f, f2 = torch.cat(auto).double().cpu(), torch.cat(fd).double().cpu(), torch.cat(fd_half).double().cpu()
    flat = float((f == 0).double().mean())
    if a.std() == 0 or f.std() == 0 or f2.std() == 0:
        return {"agreement": None, "linearity": None, "flat_share": flat, "deterministic": deterministic}
    r = float(torch.corrcoef(torch.stack([a, f]))[0, 1])
    lin = float(torch.corrcoef(torch.stack([f, f2]))[0, 1])
    return {"agreement": r, "linearity": lin, "flat_share": flat, "deterministic": deterministic}


class GradientFidelity(Check):
    name = "input_gradient_is_the_forward_derivative"
    description = (f"autograd directional derivatives agree with finite differences of the forward pass (correlation >= {FD_MIN_AGREEMENT}); "
                   "gradients taken at another point (a blurred input, a surrogate) do not")

    def evaluate(self, m):
        fid = m.grad_fidelity
        if fid is None:
            return None
        if not fid["deterministic"]:
            return self._out(False, "the forward pass is random (finite differences are noise); judged by the attack-based checks", informative=False)
        lin = fid.get("linearity")
        if fid["flat_share"] > _FLAT_SHARE or fid["agreement"] is None or lin is None or lin < FD_MIN_AGREEMENT:
            q = "n/a" if lin is None else f"{lin:.2f}"
            return self._out(False, f"the forward is not locally linear at step {FD_STEP:g} (finite differences at h and h/2 correlate {q}; "
                                    f"{100 * fid['flat_share']:.0f}% exactly zero; quantized activations): the gradient is a straight-through "
                                    "surrogate, judged by the attack-based checks", informative=False)
        r = fid["agreement"]
        return self._out(r >= FD_MIN_AGREEMENT, f"correlation of autograd and finite-difference directional derivatives {r:.3f} "
                                                 f"(minimum {FD_MIN_AGREEMENT}; step {FD_STEP:g}, {FD_DIRECTIONS} directions per image)")


register_check(GradientFidelity())
