"""Compression methods: pruning with ``torch.nn.utils.prune`` and k-bit quantization.

Each method is one small class behind :class:`Compressor`; :data:`COMPRESSORS` is the registry that
specs name. A compressor returns the compressed model, the model white-box attacks should use (the
same model, or a differentiable twin for a converted int8 model), and what it measured.

Pruning: global / layer-wise L1 unstructured, random unstructured, Ln structured (filters or
output channels); one-shot or iterative (a constant fraction of the remaining weights each step);
with no fine-tuning, standard fine-tuning, or adversarial (PGD) fine-tuning. The measured sparsity
over the prunable weights is recorded, not only the target.

Quantization: k-bit symmetric fake quantization of weights, one scale per output channel by
default (per tensor as an option), the scale chosen to minimise the squared quantization error
(MSE-optimal clipping, Banner, Nahshan & Soudry 2019, "Post training 4-bit quantization of
convolutional networks for rapid-deployment", NeurIPS) rather than max |w|: with max scaling at
2 bits every weight below half the largest rounds to zero, so "2-bit" was mostly pruning (71-99.7 %
zeros per layer); the measured zero share per layer is recorded on every quantized row. k = 1 is
binarization, sign(w)·mean|w| per channel (Rastegari et al. 2016). Activations optionally quantized
(ranges calibrated on training images); a straight-through estimator (Bengio et al. 2013) lets
gradients flow; post-training (calibrated) or quantization-aware fine-tuned at a spec'd learning rate.

PyTorch's own int8 post-training quantization (FX graph mode, x86/fbgemm) gives the deployed model.
It has no gradients, so attacks are crafted on its 8-bit fake-quantized twin and evaluated on the
int8 model: that is a transfer attack (the twin agrees with int8 about as often as the float model
does), recorded with threat model ``transfer``. A true white-box attack on int8 would need gradients
of the integer model itself: a backward pass through the integer kernels' straight-through
approximation evaluated at the int8 forward pass (BPDA with the int8 forward, Athalye et al. 2018),
which ``torch.ao`` quantized modules do not provide.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import StrEnum

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn
from torch.nn.utils import prune

from evidence.vocab import CompressionFamily, ThreatModel

from .datasets import Split
from .device import OnCPU
from .efficiency import Efficiency
from .training import TrainConfig, fit

__all__ = [
    "Compressed", "CompressionInfo", "DENSE_INFO", "Granularity", "ScaleRule", "Compressor", "Pruner", "Quantizer", "Int8PTQ", "RandomPrecision",
    "COMPRESSORS",
    "build_compressor", "measured_sparsity", "distinct_weight_values", "zero_shares", "FakeQuantWrapper", "DEFAULT_FINETUNE_LR",
]

DEFAULT_FINETUNE_LR = 5e-4


class Granularity(StrEnum):
    """Which weights share one quantization scale."""

    per_channel = "per_channel"  # one scale per output channel (conv filter / linear row): the default
    per_tensor = "per_tensor"  # one scale per weight tensor


class ScaleRule(StrEnum):
    """How a quantization scale is chosen from the weights it covers."""

    mse = "mse"  # the clipping that minimises the squared quantization error (Banner et al. 2019): the default
    max = "max"  # max |w| maps to the largest level (at 2 bits most weights round to zero)


class CompressionInfo(BaseModel):
    """What a compressor did and measured: stored with every cell and on every result row."""

    model_config = ConfigDict(frozen=True)

    method: str
    family: CompressionFamily | None = None  # None: the dense model
    level_text: str = ""
    target_sparsity: float | None = None
    sparsity: float | None = None  # measured share of exactly-zero conv/linear weights
    bits: int | None = None
    granularity: Granularity | None = None
    zero_share_per_layer: list[float] = []  # measured share of quantized weights equal to zero, per layer
    distinct_values_max: int | None = None
    attacked_model: str = "the evaluated model"
    threat_model: ThreatModel = ThreatModel.white_box  # of gradient attacks on this model (transfer for int8)
    twin_agreement: float | None = None  # int8: share of test images on which the twin predicts the int8 class
    non_differentiable: bool = False
    efficiency: Efficiency | None = None  # measured parameters, MACs and latency (channel pruning, int8 PTQ; engineer E)

    @property
    def zero_share_max(self) -> float | None:
        return max(self.zero_share_per_layer) if self.zero_share_per_layer else None


DENSE_INFO = CompressionInfo(method="dense (uncompressed)", sparsity=None, attacked_model="the dense model")


@dataclass
class Compressed:
    model: nn.Module  # what is evaluated (predictions)
    attacked: nn.Module  # what white-box attacks take gradients of
    info: CompressionInfo


class Compressor(ABC):
    family: str = "other"

    @abstractmethod
    def compress(self, dense: nn.Module, split: Split, seed: int) -> Compressed: ...

    def describe(self) -> str:
        return type(self).__name__


def _prunable(model: nn.Module, structured: bool = False):
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    if structured:
        layers = layers[:-1]  # removing output units of the classifier would remove classes
    return [(m, "weight") for m in layers]


def measured_sparsity(model: nn.Module) -> float:
    """Share of exactly-zero weights over all conv and linear weights."""
    zeros = total = 0
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            w = m.weight.detach()
            zeros += int((w == 0).sum())
            total += w.numel()
    return zeros / total


def _finetune(model, split, mode: str, epochs: int, seed: int, adv_eps: float, lr: float = DEFAULT_FINETUNE_LR):
    if mode == "none" or epochs <= 0:
        return
    fit(model, split, TrainConfig(epochs=epochs, lr=lr, adversarial=mode == "adversarial", adv_eps=adv_eps), seed)


class Pruner(Compressor):
    """Magnitude (L1), random or Ln-structured pruning to ``amount`` of the prunable weights."""

    METHODS = ("global_l1", "layer_l1", "random", "ln_structured")

    def __init__(self, method: str = "global_l1", amount: float = 0.5, iterations: int = 1, finetune: str = "none",
                 finetune_epochs: int = 0, adv_eps: float = 0.1, n: int = 2, dim: int = 0, finetune_lr: float = DEFAULT_FINETUNE_LR):
        if method not in self.METHODS:
            raise ValueError(f"pruning method must be one of {', '.join(self.METHODS)}")
        if not 0.0 <= amount < 1.0:
            raise ValueError("pruning amount must lie in [0, 1)")
        if finetune not in ("none", "standard", "adversarial"):
            raise ValueError("finetune must be none, standard or adversarial")
        self.method, self.amount, self.iterations, self.finetune = method, amount, max(1, iterations), finetune
        self.finetune_epochs, self.adv_eps, self.n, self.dim, self.finetune_lr = finetune_epochs, adv_eps, n, dim, finetune_lr
        self.family = CompressionFamily.structured_pruning if method == "ln_structured" else CompressionFamily.unstructured_pruning

    def describe(self) -> str:
        what = {"global_l1": "global L1 unstructured", "layer_l1": "layer-wise L1 unstructured", "random": "random unstructured",
                "ln_structured": f"L{self.n} structured ({'filters/output channels' if self.dim == 0 else 'input channels'})"}[self.method]
        sched = "one-shot" if self.iterations == 1 else f"iterative ({self.iterations} steps)"
        ft = "no fine-tuning" if self.finetune == "none" else f"{self.finetune} fine-tuning {self.finetune_epochs} epoch(s) per step at lr {self.finetune_lr:g}"
        return f"{what} pruning, {sched}, {ft}"

    def compress(self, dense, split, seed):
        torch.manual_seed(seed)
        model = copy.deepcopy(dense)
        params = _prunable(model, structured=self.method == "ln_structured")
        step = 1 - (1 - self.amount) ** (1 / self.iterations)  # fraction of the remaining weights per step
        for _ in range(self.iterations):
            if self.method == "global_l1":
                prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=step)
            else:
                for m, name in params:
                    if self.method == "layer_l1":
                        prune.l1_unstructured(m, name, amount=step)
                    elif self.method == "random":
                        prune.random_unstructured(m, name, amount=step)
                    else:
                        prune.ln_structured(m, name, amount=step, n=self.n, dim=self.dim)
            _finetune(model, split, self.finetune, self.finetune_epochs, seed, self.adv_eps, self.finetune_lr)
        for m, name in params:
            prune.remove(m, name)
        model.eval()
        return Compressed(model, model, CompressionInfo(method=self.describe(), family=self.family, level_text=f"{self.amount:.4g}",
                                                        target_sparsity=self.amount, sparsity=measured_sparsity(model),
                                                        attacked_model="the compressed model"))


class _STEQuant(torch.autograd.Function):
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


def _weight_scale(w: torch.Tensor, bits: int, granularity: Granularity = Granularity.per_channel, rule: ScaleRule = ScaleRule.mse) -> torch.Tensor:
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
        self.calibrating = False
        self._frozen: dict[int, tuple[int, torch.Tensor]] = {}  # bits -> (weight version, quantized weight), eval mode

    def quantized_weight(self):
        w = self.layer.weight
        if self.training:
            self._frozen.clear()
            return _STEQuant.apply(w, self.bits, True, _weight_scale(w, self.bits, self.granularity, self.rule))
        # eval: the weights do not change, so quantize once per bit width (attacks run thousands of forward passes)
        hit = self._frozen.get(self.bits)
        if hit is None or hit[0] != w._version:
            with torch.no_grad():
                hit = (w._version, _STEQuant.apply(w, self.bits, True, _weight_scale(w, self.bits, self.granularity, self.rule)))
            self._frozen[self.bits] = hit
        return hit[1]

    def forward(self, x):
        if self.act_bits:
            if self.calibrating:
                self.act_max = torch.maximum(self.act_max, x.detach().abs().max())
            elif self.act_max > 0:
                signed = bool((x < 0).any())
                levels = (2 ** (self.act_bits - 1) - 1) if signed else (2 ** self.act_bits - 1)
                x = _STEQuant.apply(x, self.act_bits, signed, self.act_max / max(levels, 1))
        w = self.quantized_weight()
        if isinstance(self.layer, nn.Conv2d):
            return self.layer._conv_forward(x, w, self.layer.bias)
        return nn.functional.linear(x, w, self.layer.bias)


def _wrap(model: nn.Module, bits: int, act_bits: int | None, granularity: Granularity, rule: ScaleRule) -> nn.Module:
    for name, child in list(model.named_children()):
        if isinstance(child, (nn.Conv2d, nn.Linear)):
            setattr(model, name, FakeQuantWrapper(child, bits, act_bits, granularity, rule))
        else:
            _wrap(child, bits, act_bits, granularity, rule)
    return model


def _calibrate(model, split, n: int = 512):
    wrappers = [m for m in model.modules() if isinstance(m, FakeQuantWrapper)]
    for w in wrappers:
        w.calibrating = True
    with torch.no_grad():
        model(split.x_train[:n])
    for w in wrappers:
        w.calibrating = False


@torch.no_grad()
def distinct_weight_values(model: nn.Module) -> list[int]:
    """Number of distinct effective weight values per quantized tensor (per output channel at most 2^k)."""
    return [int(torch.unique(m.quantized_weight().detach()).numel()) for m in model.modules() if isinstance(m, FakeQuantWrapper)]


@torch.no_grad()
def zero_shares(model: nn.Module) -> list[float]:
    """Measured share of quantized weights that are exactly zero, per quantized layer (in model order)."""
    return [float((m.quantized_weight() == 0).double().mean()) for m in model.modules() if isinstance(m, FakeQuantWrapper)]


class Quantizer(Compressor):
    """k-bit fake quantization (k = 1 binarizes), per output channel (default) or per tensor,
    post-training (``qat_epochs = 0``) or quantization-aware fine-tuned at ``lr``."""

    def __init__(self, bits: int = 4, act_bits: int | None = None, qat_epochs: int = 0, adversarial: bool = False, adv_eps: float = 0.1,
                 granularity: Granularity | str = Granularity.per_channel, rule: ScaleRule | str = ScaleRule.mse,
                 lr: float = DEFAULT_FINETUNE_LR):
        if bits < 1:
            raise ValueError("bit width must be at least 1")
        self.bits, self.act_bits, self.qat_epochs, self.adversarial, self.adv_eps = bits, act_bits, qat_epochs, adversarial, adv_eps
        self.granularity, self.rule, self.lr = Granularity(granularity), ScaleRule(rule), lr
        self.family = CompressionFamily.binarization if bits == 1 else CompressionFamily.quantization

    def describe(self) -> str:
        act = f", {self.act_bits}-bit activations" if self.act_bits else ", float activations"
        how = "post-training (calibrated)" if self.qat_epochs == 0 else (
            f"quantization-aware {'adversarial ' if self.adversarial else ''}fine-tuned {self.qat_epochs} epoch(s) at lr {self.lr:g}")
        scale = "mean |w|" if self.bits == 1 else ("MSE-optimal clipping" if self.rule is ScaleRule.mse else "max |w|")
        return f"{self.bits}-bit weights {self.granularity.value.replace('_', '-')} ({scale}){act}, {how}, straight-through estimator"

    def compress(self, dense, split, seed):
        model = _wrap(copy.deepcopy(dense), self.bits, self.act_bits, self.granularity, self.rule)
        _calibrate(model, split)
        if self.qat_epochs:
            fit(model, split, TrainConfig(epochs=self.qat_epochs, lr=self.lr, adversarial=self.adversarial, adv_eps=self.adv_eps), seed)
            _calibrate(model, split)
        model.eval()
        zs = zero_shares(model)
        return Compressed(model, model, CompressionInfo(
            method=self.describe(), family=self.family, level_text=f"{self.bits}-bit", bits=self.bits, granularity=self.granularity,
            zero_share_per_layer=[round(z, 4) for z in zs], distinct_values_max=max(distinct_weight_values(model)),
            attacked_model="the fake-quantized model (straight-through gradients)"))


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


class RandomPrecision(Compressor):
    """Random-precision inference, a randomised defence (Fu et al. 2021, "Double-Win Quant: Aggressively
    winning robustness of quantized deep neural networks via random precision training and inference",
    ICML): every forward pass quantizes weights and activations at a bit width drawn from
    ``choices``; trained with random precision (RPT) for ``qat_epochs``. Its predictions and gradients
    are random, so a plain gradient attack sees a different model at every step; EOT (Athalye et al.
    2018) averages over the randomness."""

    family = CompressionFamily.quantization

    def __init__(self, choices: list[int], qat_epochs: int = 1, lr: float = DEFAULT_FINETUNE_LR, adversarial: bool = False, adv_eps: float = 0.1):
        if not choices or min(choices) < 2:
            raise ValueError("random precision needs bit widths of at least 2")
        self.choices, self.qat_epochs, self.lr, self.adversarial, self.adv_eps = sorted(set(int(c) for c in choices)), qat_epochs, lr, adversarial, adv_eps

    def describe(self) -> str:
        return (f"random-precision inference: weights and activations quantized per forward pass at a bit width drawn from "
                f"{{{', '.join(map(str, self.choices))}}}, random-precision training {self.qat_epochs} epoch(s) at lr {self.lr:g}")

    def compress(self, dense, split, seed):
        inner = _wrap(copy.deepcopy(dense), max(self.choices), max(self.choices), Granularity.per_channel, ScaleRule.mse)
        _calibrate(inner, split)
        model = _RandomBits(inner, self.choices)
        if self.qat_epochs:
            fit(model, split, TrainConfig(epochs=self.qat_epochs, lr=self.lr, adversarial=self.adversarial, adv_eps=self.adv_eps), seed)
        model.eval()
        return Compressed(model, model, CompressionInfo(
            method=self.describe(), family=self.family, level_text=f"random {min(self.choices)}-{max(self.choices)}-bit per forward pass",
            attacked_model="the randomised model itself (a new bit width at every forward pass)"))


class Int8PTQ(Compressor):
    """PyTorch int8 post-training quantization (``torch.ao.quantization``, FX, x86/fbgemm backend).

    The converted model is evaluated; gradient attacks are crafted on its 8-bit fake-quantized twin
    (per-tensor, max scaling, 8-bit activations) and evaluated on the int8 model: a transfer attack,
    recorded with threat model ``transfer``. ``twin_agreement`` is the measured share of test images
    on which twin and int8 model predict the same class.
    """

    family = CompressionFamily.quantization

    def describe(self) -> str:
        return "PyTorch int8 post-training quantization (FX graph mode, x86 backend); gradient attacks transferred from its 8-bit fake-quantized twin"

    def compress(self, dense, split, seed):
        from torch.ao.quantization import get_default_qconfig_mapping
        from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

        torch.backends.quantized.engine = "x86" if "x86" in torch.backends.quantized.supported_engines else "fbgemm"
        example = split.x_train[:8].cpu()  # int8 kernels run on the CPU only (OnCPU wraps them for a GPU run)
        prepared = prepare_fx(copy.deepcopy(dense).cpu().eval(), get_default_qconfig_mapping(torch.backends.quantized.engine), (example,))
        with torch.no_grad():
            prepared(split.x_train[:512].cpu())
        int8 = convert_fx(prepared).eval()
        twin = Quantizer(bits=8, act_bits=8, granularity=Granularity.per_tensor, rule=ScaleRule.max).compress(dense, split, seed).model
        with torch.no_grad():
            agree = int((int8(split.x_test.cpu()).argmax(1) == twin(split.x_test).argmax(1).cpu()).sum()) / len(split.y_test)
        if split.x_test.device.type != "cpu":
            int8 = OnCPU(int8)
        return Compressed(int8, twin, CompressionInfo(
            method=self.describe(), family=self.family, level_text="8-bit (int8)", bits=8,
            attacked_model="8-bit fake-quantized twin (float, straight-through); adversarial examples evaluated on the int8 model",
            threat_model=ThreatModel.transfer, twin_agreement=agree, non_differentiable=True))


COMPRESSORS: dict[str, type[Compressor]] = {"prune": Pruner, "quantize": Quantizer, "int8": Int8PTQ, "random_precision": RandomPrecision}


def build_compressor(kind: str, **params) -> Compressor:
    if kind not in COMPRESSORS:
        raise ValueError(f"unknown compression {kind!r}; use one of {', '.join(COMPRESSORS)}")
    return COMPRESSORS[kind](**params)
