"""Random-precision inference (Fu et al. 2021, Double-Win Quant, ICML): a randomised defence."""

from __future__ import annotations

import copy

import torch
from torch import nn

from evidence.vocab import CompressionFamily

from ..train.training import TrainConfig, fit
from .base import DEFAULT_FINETUNE_LR, Compressed, CompressionInfo, Compressor, CompressorKind, Granularity, ScaleRule, register_compressor
from .quantize import FakeQuantWrapper, calibrate, wrap_fake_quant

__all__ = ['RandomPrecision']


class _RandomBits(nn.Module):
    """Draws one bit width per forward pass (torch's global generator) for every quantized layer."""

    def __init__(self, inner: nn.Module, choices: list[int]):
        super().__init__()
        self.inner, self.choices = inner, list(choices)
        self.wrappers = [m for m in inner.modules() if isinstance(m, FakeQuantWrapper)]

    def forward(self, x):
        bits = self.choices[int(torch.randint(len(self.choices), (1,)))]
        for w in self.wrappers:
            w.bits = bits
            if w.act_bits:
                w.act_bits = bits
        return self.inner(x)


@register_compressor
class RandomPrecision(Compressor):
    """Random-precision inference, a randomised defence (Fu et al. 2021, "Double-Win Quant: Aggressively
    winning robustness of quantized deep neural networks via random precision training and inference",
    ICML): every forward pass quantizes weights and activations at a bit width drawn from
    ``choices``; trained with random precision (RPT) for ``qat_epochs``. Its predictions and gradients
    are random, so a plain gradient attack sees a different model at every step; EOT (Athalye et al.
    2018) averages over the randomness."""

    family = CompressionFamily.quantization
    kind = CompressorKind.random_precision

    @classmethod
    def from_spec(cls, c, level, train):
        return cls(choices=c.bit_choices, qat_epochs=c.qat_epochs or c.finetune_epochs, lr=c.finetune_lr, adversarial=train.adversarial,
                   adv_eps=train.adv_eps)

    def __init__(self, choices: list[int], qat_epochs: int = 1, lr: float = DEFAULT_FINETUNE_LR, adversarial: bool = False, adv_eps: float = 0.1):
        if not choices or min(choices) < 2:
            raise ValueError("random precision needs bit widths of at least 2")
        self.choices, self.qat_epochs, self.lr, self.adversarial, self.adv_eps = sorted(set(int(c) for c in choices)), qat_epochs, lr, adversarial, adv_eps

    def describe(self) -> str:
        return (f"random-precision inference: weights and activations quantized per forward pass at a bit width drawn from "
                f"{{{', '.join(map(str, self.choices))}}}, random-precision training {self.qat_epochs} epoch(s) at lr {self.lr:g}")

    def compress(self, dense, split, seed):
        inner = wrap_fake_quant(copy.deepcopy(dense), max(self.choices), max(self.choices), Granularity.per_channel, ScaleRule.mse)
        calibrate(inner, split)
        model = _RandomBits(inner, self.choices)
        if self.qat_epochs:
            fit(model, split, TrainConfig(epochs=self.qat_epochs, lr=self.lr, adversarial=self.adversarial, adv_eps=self.adv_eps), seed)
        model.eval()
        return Compressed(model, model, CompressionInfo(
            method=self.describe(), family=self.family, level_text=f"random {min(self.choices)}-{max(self.choices)}-bit per forward pass",
            attacked_model="the randomised model itself (a new bit width at every forward pass)"))
