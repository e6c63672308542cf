"""The compressor family's base: :class:`Compressor`, the registry :data:`COMPRESSORS` keyed by
:class:`CompressorKind`, and what a compressor returns and records.

Each method is one small class behind :class:`Compressor` in a module of its own (``prune.py``,
``structural.py``, ``hydra.py``, ``quantize.py``, ``ptq.py``, ``random_precision.py``), registered
with :func:`register_compressor`; a spec reaches it only through :func:`compressor_for`. A compressor
returns the compressed model, the model white-box attacks should use (the same model, or a
differentiable twin for a converted int8 model), and what it measured. The methods:

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

from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, ClassVar

from pydantic import BaseModel, ConfigDict
from torch import nn

from evidence.vocab import CompressionFamily, ThreatModel

from ..train.datasets import Split
from ..train.training import TrainConfig, fit
from .efficiency import Efficiency

if TYPE_CHECKING:
    from ..jobs.spec import CompressionSpec, TrainSpec

__all__ = [
    "Compressed", "CompressionInfo", "DENSE_INFO", "Granularity", "ScaleRule", "Compressor", "CompressorKind", "LevelKind", "COMPRESSORS",
    "register_compressor", "compressor_class", "build_compressor", "compressor_for", "measured_sparsity", "prunable", "finetune_after",
    "DEFAULT_FINETUNE_LR",
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


class CompressorKind(StrEnum):
    """Every compression kind a spec may name (``kind = ...``); :data:`COMPRESSORS` gives each its class.

    Distinct from :class:`evidence.vocab.CompressionKind` (what a *study* compresses) and
    :class:`evidence.vocab.CompressionFamily` (the family a result row is filed under)."""

    prune = "prune"  # torch.nn.utils.prune: magnitude, random or Ln-structured masks (prune.py)
    channel_prune = "channel_prune"  # channels removed with torch-pruning (structural.py)
    hydra = "hydra"  # importance-score pruning (Sehwag et al. 2020; hydra.py)
    quantize = "quantize"  # k-bit fake quantization, k = 1 binarizes (quantize.py)
    int8 = "int8"  # PyTorch int8 post-training quantization, default settings (ptq.py)
    int8_ptq = "int8_ptq"  # int8 PTQ with granularity, mixed precision and measured latency (ptq.py)
    random_precision = "random_precision"  # a bit width drawn per forward pass (random_precision.py)


class LevelKind(StrEnum):
    """What the levels of a compression setting mean."""

    sparsity = "sparsity"  # a share in [0, 1)
    bits = "bits"  # a whole bit width >= 1
    none = "none"  # no levels (one setting)


class Compressor(ABC):
    """One compression method. A subclass sets ``kind`` (its :class:`CompressorKind`), ``levels``
    (what a level means) and ``family``, implements :meth:`compress` and :meth:`from_spec`, and is
    registered with :func:`register_compressor`: the registry is the only way a spec reaches it."""

    kind: ClassVar[CompressorKind]
    levels: ClassVar[LevelKind] = LevelKind.none
    family: CompressionFamily | str = "other"

    @abstractmethod
    def compress(self, dense: nn.Module, split: Split, seed: int) -> Compressed: ...

    @classmethod
    @abstractmethod
    def from_spec(cls, c: "CompressionSpec", level: float | None, train: "TrainSpec") -> "Compressor":
        """The compressor of one grid level of a spec's compression setting ``c`` (training settings ``train``)."""

    @classmethod
    def check_level(cls, level: float) -> None:
        """Raise ``ValueError`` when ``level`` is not a level of this kind."""
        if cls.levels is LevelKind.sparsity and not 0 <= level < 1:
            raise ValueError(f"sparsity {level} is outside [0, 1)")
        if cls.levels is LevelKind.bits and (level < 1 or level != int(level)):
            raise ValueError(f"bit width {level} is not a whole number >= 1")
        if cls.levels is LevelKind.none:
            raise ValueError(f"compression kind {cls.kind.value} takes no levels")

    def describe(self) -> str:
        return type(self).__name__


COMPRESSORS: dict[CompressorKind, type[Compressor]] = {}


def register_compressor(cls: type[Compressor]) -> type[Compressor]:
    """Add a compressor class to :data:`COMPRESSORS` under its ``kind`` (a class decorator)."""
    kind = CompressorKind(cls.kind)
    if kind in COMPRESSORS and COMPRESSORS[kind] is not cls:
        raise ValueError(f"compression kind {kind.value!r} is already registered to {COMPRESSORS[kind].__name__}")
    COMPRESSORS[kind] = cls
    return cls


def compressor_class(kind: CompressorKind | str) -> type[Compressor]:
    """The registered class of ``kind``; an unknown kind is an error naming the known ones."""
    try:
        return COMPRESSORS[CompressorKind(kind)]
    except (ValueError, KeyError):
        raise ValueError(f"unknown compression kind {kind!r}; known: {', '.join(k.value for k in COMPRESSORS)}") from None


def build_compressor(kind: CompressorKind | str, **params) -> Compressor:
    """A compressor of ``kind`` built from its constructor's parameters."""
    return compressor_class(kind)(**params)


def compressor_for(c: "CompressionSpec", level: float | None, train: "TrainSpec") -> Compressor:
    """The compressor of one grid level of a spec's compression setting (through the registry)."""
    return compressor_class(c.kind).from_spec(c, level, train)


def prunable(model: nn.Module, structured: bool = False) -> list[tuple[nn.Module, str]]:
    """The (layer, "weight") pairs a pruner works on: every conv and linear layer (for structured
    pruning, all but the classifier, whose output units are the classes)."""
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


def finetune_after(model, split, mode: str, epochs: int, seed: int, adv_eps: float, lr: float = DEFAULT_FINETUNE_LR) -> None:
    """Fine-tune a compressed model in place: ``mode`` none, standard or adversarial (PGD) training."""
    if mode == "none" or epochs <= 0:
        return
    fit(model, split, TrainConfig(epochs=epochs, lr=lr, adversarial=mode == "adversarial", adv_eps=adv_eps), seed)
