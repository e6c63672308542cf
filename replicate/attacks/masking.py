"""Defences from the literature that mask gradients, as model wrappers: what the adaptive attacks of
:mod:`replicate.attacks.adaptive` are for, and what their tests attack.

- :class:`InputQuantizer`: bit-depth reduction of the input (Xu, Evans & Qi 2018, "Feature squeezing",
  NDSS). ``round`` has a zero gradient almost everywhere: plain PGD sees no gradient (shattered
  gradients, Athalye, Carlini & Wagner 2018 §4.1); BPDA replaces it by the identity on the backward pass.
- :class:`RandomizedPrecision`: the bit depth drawn at random on every forward pass (a randomised,
  non-differentiable input quantizer): needs BPDA and EOT together (Athalye et al. 2018 §4.1-4.2).
- :class:`SaturatedLogits`: logits multiplied by a large constant, as defensive distillation at a high
  temperature does (Papernot et al. 2016; broken by Carlini & Wagner 2016, "Defensive distillation is
  not robust to adversarial examples") and as large weight scales of binary/quantized networks do
  (Gupta & Ajanthan 2022): the float32 softmax saturates, the cross-entropy gradient is exactly
  zero, and only a temperature-scaled loss (PGD++) recovers it.

Modules whose forward pass is not differentiable set ``bpda_identity = True``: BPDA takes the identity
as their backward pass.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["InputQuantizer", "RandomizedPrecision", "SaturatedLogits", "is_non_differentiable"]


class InputQuantizer(nn.Module):
    """x -> round(x · (2^bits - 1)) / (2^bits - 1): bit-depth reduction of images in [0, 1]."""

    bpda_identity = True

    def __init__(self, bits: int = 3):
        super().__init__()
        if not 1 <= bits <= 16:
            raise ValueError(f"bits {bits}: must lie in 1..16")
        self.bits = bits

    def forward(self, x):
        levels = 2 ** self.bits - 1
        return torch.round(x * levels) / levels


class RandomizedPrecision(nn.Module):
    """Input bit depth drawn uniformly from ``bits`` for each image on every forward pass."""

    bpda_identity = True

    def __init__(self, bits: tuple[int, ...] = (2, 3, 4, 5)):
        super().__init__()
        self.bits = tuple(bits)

    def forward(self, x):
        choice = torch.tensor(self.bits, device=x.device)[torch.randint(len(self.bits), (x.shape[0],), device=x.device)]
        levels = (2.0 ** choice - 1).view(-1, *([1] * (x.dim() - 1))).to(x.dtype)
        return torch.round(x * levels) / levels


class SaturatedLogits(nn.Module):
    """``model``'s logits multiplied by ``scale`` (same predictions, saturated softmax)."""

    def __init__(self, model: nn.Module, scale: float = 1e4):
        super().__init__()
        self.model, self.scale = model, scale

    def forward(self, x):
        return self.model(x) * self.scale


def is_non_differentiable(module: nn.Module) -> bool:
    return bool(getattr(module, "bpda_identity", False))
