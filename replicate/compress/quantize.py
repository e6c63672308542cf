"""k-bit symmetric fake quantization of weights (and optionally activations), per output channel or
per tensor, MSE-optimal or max scaling; k = 1 binarizes (sign(w)·mean|w|, Rastegari et al. 2016).
Gradients flow through a straight-through estimator (Bengio et al. 2013). See
:mod:`replicate.compress.base` for the references of the scale rule.

Quantized activations are the *inputs of the hidden layers*: the first layer of the network (the one
the image enters, found in forward order during calibration) takes the real-valued image, as in every
binary network (Hubara et al. 2016, "Binarized neural networks", NeurIPS; Rastegari et al. 2016,
XNOR-Net, ECCV). Quantizing the image itself would be input squeezing, a known (masking) defence on
MNIST (Xu et al. 2018, "Feature squeezing", NDSS), not a property of the compressed network."""

from __future__ import annotations

import copy

import torch
from torch import nn

from evidence.vocab import CompressionFamily

from ..train.training import TrainConfig, fit
from .base import DEFAULT_FINETUNE_LR, Compressed, CompressionInfo, Compressor, CompressorKind, Granularity, LevelKind, ScaleRule, register_compressor

__all__ = ['STEQuant', 'weight_scale', 'FakeQuantWrapper', 'wrap_fake_quant', 'calibrate', 'distinct_weight_values', 'zero_shares', 'Quantizer']


class STEQuant(torch.autograd.Function):
    """Forward: k-bit quantization with a given scale (broadcast per channel); backward: identity
    (straight-through estimator, Bengio et al. 2013)."""

    @staticmethod
    def forward(ctx, w, bits, signed, scale):
        if bits == 1 and signed:
            return torch.where(w >= 0, scale, -scale)  # scale = mean |w| (per channel)
        levels = max(2 ** (bits - 1) - 1 if signed else 2 ** bits - 1, 1)
        lo = -levels if signed else 0
        return torch.clamp(torch.round(w / scale), lo, levels) * scale

    @staticmethod
    def backward(ctx, g):
        return g, None, None, None


_CLIP_RATIOS = torch.linspace(0.05, 1.0, 40)


def weight_scale(w: torch.Tensor, bits: int, granularity: Granularity = Granularity.per_channel, rule: ScaleRule = ScaleRule.mse) -> torch.Tensor:
    """The quantization scale of ``w``: one per output channel (shape (C, 1, ...)) or one per tensor.

    ``mse``: the clipping ratio r of max |w| (40 ratios in [0.05, 1]) that minimises the squared
    error of the quantized weights, scale = r·max|w| / levels (Banner et al. 2019). ``max``: r = 1.
    At 1 bit the scale is mean |w| (Rastegari et al. 2016)."""
    w = w.detach()
    flat = w.reshape(w.shape[0], -1) if granularity is Granularity.per_channel else w.reshape(1, -1)
    shape = (-1,) + (1,) * (w.dim() - 1) if granularity is Granularity.per_channel else ()
    if bits == 1:
        return flat.abs().mean(1).clamp_min(1e-12).reshape(shape)
    levels = max(2 ** (bits - 1) - 1, 1)
    top = flat.abs().amax(1).clamp_min(1e-12)  # (C,)
    if rule is ScaleRule.max:
        return (top / levels).reshape(shape)
    scales = top[None, :] * _CLIP_RATIOS.to(w.device)[:, None] / levels  # (R, C)
    q = torch.clamp(torch.round(flat[None] / scales[..., None]), -levels, levels) * scales[..., None]
    err = ((q - flat[None]) ** 2).sum(-1)  # (R, C)
    best = scales.gather(0, err.argmin(0, keepdim=True))[0]
    return best.reshape(shape)


class FakeQuantWrapper(nn.Module):
    """A conv or linear layer whose weights (and optionally inputs) are k-bit fake-quantized."""

    def __init__(self, layer: nn.Module, bits: int, act_bits: int | None = None, granularity: Granularity = Granularity.per_channel,
                 rule: ScaleRule = ScaleRule.mse):
        super().__init__()
        self.layer, self.bits, self.act_bits, self.granularity, self.rule = layer, bits, act_bits, granularity, rule
        self.register_buffer("act_max", torch.tensor(0.0))
        self.register_buffer("input_layer", torch.tensor(False))  # the image enters here: its input is never quantized
        self.calibrating = False
        self._frozen: dict[int, tuple[int, torch.Tensor]] = {}  # bits -> (weight version, quantized weight), eval mode

    def quantized_weight(self):
        w = self.layer.weight
        if self.training:
            self._frozen.clear()
            return STEQuant.apply(w, self.bits, True, weight_scale(w, self.bits, self.granularity, self.rule))
        # eval: the weights do not change, so quantize once per bit width (attacks run thousands of forward passes)
        hit = self._frozen.get(self.bits)
        if hit is None or hit[0] != w._version:
            with torch.no_grad():
                hit = (w._version, STEQuant.apply(w, self.bits, True, weight_scale(w, self.bits, self.granularity, self.rule)))
            self._frozen[self.bits] = hit
        return hit[1]

    def forward(self, x):
        if self.act_bits and not bool(self.input_layer):
            if self.calibrating:
                self.act_max = torch.maximum(self.act_max, x.detach().abs().max())
            elif self.act_max > 0:
                signed = bool((x < 0).any())
                levels = (2 ** (self.act_bits - 1) - 1) if signed else (2 ** self.act_bits - 1)
                x = STEQuant.apply(x, self.act_bits, signed, self.act_max / max(levels, 1))
        w = self.quantized_weight()
        if isinstance(self.layer, nn.Conv2d):
            return self.layer._conv_forward(x, w, self.layer.bias)
        return nn.functional.linear(x, w, self.layer.bias)


def wrap_fake_quant(model: nn.Module, bits: int, act_bits: int | None, granularity: Granularity, rule: ScaleRule) -> nn.Module:
    for name, child in list(model.named_children()):
        if isinstance(child, (nn.Conv2d, nn.Linear)):
            setattr(model, name, FakeQuantWrapper(child, bits, act_bits, granularity, rule))
        else:
            wrap_fake_quant(child, bits, act_bits, granularity, rule)
    return model


def calibrate(model, split, n: int = 512) -> None:
    """Record each fake-quantized layer's activation range on ``n`` training images, and mark the
    first layer called (the one the image enters) as the input layer, whose input stays real-valued."""
    wrappers = [m for m in model.modules() if isinstance(m, FakeQuantWrapper)]
    called: list[FakeQuantWrapper] = []
    hooks = [w.register_forward_pre_hook(lambda mod, args: called.append(mod)) for w in wrappers]
    for w in wrappers:
        w.calibrating = True
    try:
        with torch.no_grad():
            model(split.x_train[:n])
    finally:
        for h in hooks:
            h.remove()
        for w in wrappers:
            w.calibrating = False
    for w in wrappers:
        w.input_layer.fill_(w is called[0] if called else False)


@torch.no_grad()
def distinct_weight_values(model: nn.Module) -> list[int]:
    """Number of distinct effective weight values per quantized tensor (per output channel at most 2^k)."""
    return [int(torch.unique(m.quantized_weight().detach()).numel()) for m in model.modules() if isinstance(m, FakeQuantWrapper)]


@torch.no_grad()
def zero_shares(model: nn.Module) -> list[float]:
    """Measured share of quantized weights that are exactly zero, per quantized layer (in model order)."""
    return [float((m.quantized_weight() == 0).double().mean()) for m in model.modules() if isinstance(m, FakeQuantWrapper)]


@register_compressor
class Quantizer(Compressor):
    """k-bit fake quantization (k = 1 binarizes), per output channel (default) or per tensor,
    post-training (``qat_epochs = 0``) or quantization-aware fine-tuned at ``lr``."""

    kind, levels = CompressorKind.quantize, LevelKind.bits

    def __init__(self, bits: int = 4, act_bits: int | None = None, qat_epochs: int = 0, adversarial: bool = False, adv_eps: float = 0.1,
                 granularity: Granularity | str = Granularity.per_channel, rule: ScaleRule | str = ScaleRule.mse,
                 lr: float = DEFAULT_FINETUNE_LR):
        if bits < 1:
            raise ValueError("bit width must be at least 1")
        self.bits, self.act_bits, self.qat_epochs, self.adversarial, self.adv_eps = bits, act_bits, qat_epochs, adversarial, adv_eps
        self.granularity, self.rule, self.lr = Granularity(granularity), ScaleRule(rule), lr
        self.family = CompressionFamily.binarization if bits == 1 else CompressionFamily.quantization

    @classmethod
    def from_spec(cls, c, level, train):
        return cls(bits=int(level), act_bits=c.act_bits, qat_epochs=c.qat_epochs or c.finetune_epochs, adversarial=train.adversarial,
                   adv_eps=train.adv_eps, granularity=c.granularity, rule=c.scale_rule, lr=c.finetune_lr)

    def describe(self) -> str:
        act = f", {self.act_bits}-bit activations (hidden layers; the first layer takes the real-valued image)" if self.act_bits else ", float activations"
        how = "post-training (calibrated)" if self.qat_epochs == 0 else (
            f"quantization-aware {'adversarial ' if self.adversarial else ''}fine-tuned {self.qat_epochs} epoch(s) at lr {self.lr:g}")
        scale = "mean |w|" if self.bits == 1 else ("MSE-optimal clipping" if self.rule is ScaleRule.mse else "max |w|")
        return f"{self.bits}-bit weights {self.granularity.value.replace('_', '-')} ({scale}){act}, {how}, straight-through estimator"

    def compress(self, dense, split, seed):
        model = wrap_fake_quant(copy.deepcopy(dense), self.bits, self.act_bits, self.granularity, self.rule)
        calibrate(model, split)
        if self.qat_epochs:
            fit(model, split, TrainConfig(epochs=self.qat_epochs, lr=self.lr, adversarial=self.adversarial, adv_eps=self.adv_eps), seed)
            calibrate(model, split)
        model.eval()
        zs = zero_shares(model)
        return Compressed(model, model, CompressionInfo(
            method=self.describe(), family=self.family, level_text=f"{self.bits}-bit", bits=self.bits, granularity=self.granularity,
            zero_share_per_layer=[round(z, 4) for z in zs], distinct_values_max=max(distinct_weight_values(model)),
            attacked_model="the fake-quantized model (straight-through gradients)"))
