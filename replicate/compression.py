"""Compression methods: pruning with ``torch.nn.utils.prune`` and k-bit quantization.

Each method is one small class behind :class:`Compressor`; :data:`COMPRESSORS` is the registry that
specs name. A compressor returns the compressed model, the model white-box attacks should use (the
same model, or a differentiable twin for a converted int8 model), and what it measured.

Pruning: global / layer-wise L1 unstructured, random unstructured, Ln structured (filters or
output channels); one-shot or iterative (a constant fraction of the remaining weights each step);
with no fine-tuning, standard fine-tuning, or adversarial (PGD) fine-tuning. The measured sparsity
over the prunable weights is recorded, not only the target.

Quantization: k-bit symmetric per-tensor fake quantization of weights (k = 1 is binarization,
sign(w)·mean|w|, Rastegari et al. 2016), optionally of activations (unsigned, ranges calibrated on
training images), with a straight-through estimator (Bengio et al. 2013) so gradients flow;
post-training (calibrated) or quantization-aware fine-tuned. PyTorch's own int8 post-training
quantization (FX graph mode, x86/fbgemm) gives the deployed model; it has no gradients, so attacks
run on its 8-bit fake-quantized twin (BPDA, Athalye et al. 2018) and the twin's agreement with the
int8 model is measured and recorded.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn.utils import prune

from .datasets import Split
from .training import TrainConfig, fit

__all__ = [
    "Compressed", "Compressor", "Pruner", "Quantizer", "Int8PTQ", "COMPRESSORS", "build_compressor", "measured_sparsity",
    "distinct_weight_values", "FakeQuantWrapper",
]


@dataclass
class Compressed:
    model: nn.Module  # what is evaluated (predictions)
    attacked: nn.Module  # what white-box attacks take gradients of
    info: dict = field(default_factory=dict)


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


def _finetune(model, split, mode: str, epochs: int, seed: int, adv_eps: float, lr: float = 5e-4):
    if mode == "none" or epochs <= 0:
        return
    fit(model, split, TrainConfig(epochs=epochs, lr=lr, adversarial=mode == "adversarial", adv_eps=adv_eps), seed)


class Pruner(Compressor):
    """Magnitude (L1), random or Ln-structured pruning to ``amount`` of the prunable weights."""

    METHODS = ("global_l1", "layer_l1", "random", "ln_structured")

    def __init__(self, method: str = "global_l1", amount: float = 0.5, iterations: int = 1, finetune: str = "none",
                 finetune_epochs: int = 0, adv_eps: float = 0.1, n: int = 2, dim: int = 0):
        if method not in self.METHODS:
            raise ValueError(f"pruning method must be one of {', '.join(self.METHODS)}")
        if not 0.0 <= amount < 1.0:
            raise ValueError("pruning amount must lie in [0, 1)")
        if finetune not in ("none", "standard", "adversarial"):
            raise ValueError("finetune must be none, standard or adversarial")
        self.method, self.amount, self.iterations, self.finetune = method, amount, max(1, iterations), finetune
        self.finetune_epochs, self.adv_eps, self.n, self.dim = finetune_epochs, adv_eps, n, dim
        self.family = "structured_pruning" if method == "ln_structured" else "unstructured_pruning"

    def describe(self) -> str:
        what = {"global_l1": "global L1 unstructured", "layer_l1": "layer-wise L1 unstructured", "random": "random unstructured",
                "ln_structured": f"L{self.n} structured ({'filters/output channels' if self.dim == 0 else 'input channels'})"}[self.method]
        sched = "one-shot" if self.iterations == 1 else f"iterative ({self.iterations} steps)"
        ft = "no fine-tuning" if self.finetune == "none" else f"{self.finetune} fine-tuning {self.finetune_epochs} epoch(s) per step"
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
            _finetune(model, split, self.finetune, self.finetune_epochs, seed, self.adv_eps)
        for m, name in params:
            prune.remove(m, name)
        model.eval()
        return Compressed(model, model, {"method": self.describe(), "family": self.family, "target_sparsity": self.amount,
                                         "sparsity": measured_sparsity(model), "bits": None, "attacked_model": "the compressed model"})


class _STEQuant(torch.autograd.Function):
    """Forward: k-bit quantization; backward: identity (straight-through estimator)."""

    @staticmethod
    def forward(ctx, w, bits, signed, scale):
        if bits == 1 and signed:
            return torch.sign(w) * w.abs().mean() + (w == 0) * w.abs().mean()
        levels = 2 ** (bits - 1) - 1 if signed else 2 ** bits - 1
        levels = max(levels, 1)
        lo = -levels if signed else 0
        return torch.clamp(torch.round(w / scale), lo, levels) * scale

    @staticmethod
    def backward(ctx, g):
        return g, None, None, None


def _weight_scale(w, bits):
    levels = max(2 ** (bits - 1) - 1, 1)
    return w.detach().abs().max().clamp_min(1e-12) / levels


class FakeQuantWrapper(nn.Module):
    """A conv or linear layer whose weights (and optionally inputs) are k-bit fake-quantized."""

    def __init__(self, layer: nn.Module, bits: int, act_bits: int | None = None):
        super().__init__()
        self.layer, self.bits, self.act_bits = layer, bits, act_bits
        self.register_buffer("act_max", torch.tensor(0.0))
        self.calibrating = False

    def quantized_weight(self):
        w = self.layer.weight
        return _STEQuant.apply(w, self.bits, True, _weight_scale(w, self.bits))

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


def _wrap(model: nn.Module, bits: int, act_bits: int | None) -> nn.Module:
    for name, child in list(model.named_children()):
        if isinstance(child, (nn.Conv2d, nn.Linear)):
            setattr(model, name, FakeQuantWrapper(child, bits, act_bits))
        else:
            _wrap(child, bits, act_bits)
    return model


def _calibrate(model, split, n: int = 512):
    wrappers = [m for m in model.modules() if isinstance(m, FakeQuantWrapper)]
    for w in wrappers:
        w.calibrating = True
    with torch.no_grad():
        model(split.x_train[:n])
    for w in wrappers:
        w.calibrating = False


def distinct_weight_values(model: nn.Module) -> list[int]:
    """Number of distinct effective weight values per quantized tensor."""
    return [int(torch.unique(m.quantized_weight().detach()).numel()) for m in model.modules() if isinstance(m, FakeQuantWrapper)]


class Quantizer(Compressor):
    """k-bit fake quantization (k = 1 binarizes), post-training (``qat_epochs = 0``) or
    quantization-aware fine-tuned."""

    def __init__(self, bits: int = 4, act_bits: int | None = None, qat_epochs: int = 0, adversarial: bool = False, adv_eps: float = 0.1):
        if bits < 1:
            raise ValueError("bit width must be at least 1")
        self.bits, self.act_bits, self.qat_epochs, self.adversarial, self.adv_eps = bits, act_bits, qat_epochs, adversarial, adv_eps
        self.family = "binarization" if bits == 1 else "quantization"

    def describe(self) -> str:
        act = f", {self.act_bits}-bit activations" if self.act_bits else ", float activations"
        how = "post-training (calibrated)" if self.qat_epochs == 0 else f"quantization-aware fine-tuned {self.qat_epochs} epoch(s)"
        return f"{self.bits}-bit weights{act}, {how}, straight-through estimator"

    def compress(self, dense, split, seed):
        model = _wrap(copy.deepcopy(dense), self.bits, self.act_bits)
        _calibrate(model, split)
        if self.qat_epochs:
            fit(model, split, TrainConfig(epochs=self.qat_epochs, lr=5e-4, adversarial=self.adversarial, adv_eps=self.adv_eps), seed)
            _calibrate(model, split)
        model.eval()
        return Compressed(model, model, {"method": self.describe(), "family": self.family, "bits": self.bits, "sparsity": None,
                                         "distinct_weight_values_max": max(distinct_weight_values(model)),
                                         "attacked_model": "the fake-quantized model (straight-through gradients)"})


class Int8PTQ(Compressor):
    """PyTorch int8 post-training quantization (``torch.ao.quantization``, FX, x86/fbgemm backend).

    The converted model is evaluated; attacks are crafted on its 8-bit fake-quantized twin and
    transferred (BPDA). ``twin_agreement`` is the share of test images on which both predict the
    same class; below ``min_agreement`` the twin is not a faithful surrogate and the cell says so.
    """

    family = "quantization"

    def __init__(self, min_agreement: float = 0.95):
        self.min_agreement = min_agreement

    def describe(self) -> str:
        return "PyTorch int8 post-training quantization (FX graph mode, x86 backend), attacked through its 8-bit fake-quantized twin"

    def compress(self, dense, split, seed):
        from torch.ao.quantization import get_default_qconfig_mapping
        from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

        torch.backends.quantized.engine = "x86" if "x86" in torch.backends.quantized.supported_engines else "fbgemm"
        example = split.x_train[:8]
        prepared = prepare_fx(copy.deepcopy(dense).eval(), get_default_qconfig_mapping(torch.backends.quantized.engine), (example,))
        with torch.no_grad():
            prepared(split.x_train[:512])
        int8 = convert_fx(prepared).eval()
        twin = Quantizer(bits=8, act_bits=8).compress(dense, split, seed).model
        with torch.no_grad():
            agree = float((int8(split.x_test).argmax(1) == twin(split.x_test).argmax(1)).float().mean())
        return Compressed(int8, twin, {"method": self.describe(), "family": self.family, "bits": 8, "sparsity": None,
                                       "attacked_model": "8-bit fake-quantized twin (BPDA); adversarial examples evaluated on the int8 model",
                                       "twin_agreement": agree, "twin_faithful": agree >= self.min_agreement, "non_differentiable": True})


COMPRESSORS = {"prune": Pruner, "quantize": Quantizer, "int8": Int8PTQ}


def build_compressor(kind: str, **params) -> Compressor:
    if kind not in COMPRESSORS:
        raise ValueError(f"unknown compression {kind!r}; use one of {', '.join(COMPRESSORS)}")
    return COMPRESSORS[kind](**params)
