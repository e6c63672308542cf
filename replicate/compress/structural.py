"""Structural (channel) pruning that removes channels, with measured parameters, MACs and latency.

Zeroed filters (``torch.nn.utils.prune.ln_structured``) leave every tensor its size: nothing gets
faster, and the literature's structured-pruning claims are about smaller networks. Here channels are
removed with ``torch-pruning`` (Fang G, Ma X, Song M, Mi MB, Wang X 2023, "DepGraph: Towards any
structural pruning", CVPR): its dependency graph finds every layer coupled to a removed channel
(the next conv's input, BatchNorm, residual additions) and slices them together, so the pruned
network is an ordinary, smaller PyTorch model. Channels are ranked by the L1 (or L2) norm of their
filters (Li H, Kadav A, Durdanovic I, Samet H, Graf HP 2017, "Pruning filters for efficient
ConvNets", ICLR) within each layer (the same ratio in every layer; the classifier's outputs are
kept); fine-tuning is standard or adversarial (PGD-AT loss). :class:`replicate.compress.efficiency.Efficiency`
records parameters, MACs and latency of the dense and the pruned model, measured in the same run.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from evidence.vocab import CompressionFamily

from .base import Compressed, CompressionInfo, Compressor, CompressorKind, LevelKind, register_compressor
from .efficiency import measure_efficiency
from ..train.recipes import finetune

__all__ = ["ChannelPruner", "conv_channels", "remove_channels"]


def conv_channels(model: nn.Module) -> int:
    """Total output channels of the model's convolutions."""
    return sum(m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d))


def _classifier(model: nn.Module) -> nn.Module | None:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return linears[-1] if linears else None


def remove_channels(model: nn.Module, example: torch.Tensor, ratio: float, importance: str = "l1") -> nn.Module:
    """Remove ``ratio`` of the channels of every prunable layer of ``model`` (in place) and return it."""
    import torch_pruning as tp

    imp = {"l1": tp.importance.MagnitudeImportance(p=1), "l2": tp.importance.MagnitudeImportance(p=2),
           "random": tp.importance.RandomImportance()}[importance]
    head = _classifier(model)
    pruner = tp.pruner.MetaPruner(model, example, importance=imp, pruning_ratio=ratio, global_pruning=False,
                                  ignored_layers=[head] if head is not None else [])
    pruner.step()
    return model


@register_compressor
class ChannelPruner(Compressor):
    """Remove ``amount`` of the channels per layer (torch-pruning), then fine-tune ``finetune_epochs``."""

    family = CompressionFamily.structured_pruning
    kind, levels = CompressorKind.channel_prune, LevelKind.sparsity
    IMPORTANCE = ("l1", "l2", "random")

    @classmethod
    def from_spec(cls, c, level, train):
        return cls(amount=float(level), importance=c.importance, finetune=c.finetune, finetune_epochs=c.finetune_epochs, finetune_lr=c.finetune_lr,
                   adv_eps=train.adv_eps, adv_steps=train.adv_steps)

    def __init__(self, amount: float = 0.5, importance: str = "l1", finetune: str = "adversarial", finetune_epochs: int = 0,
                 finetune_lr: float = 0.01, adv_eps: float = 8 / 255, adv_steps: int = 10, latency_batch: int = 128):
        if not 0.0 <= amount < 1.0:
            raise ValueError(f"channel share {amount}: must lie in [0, 1)")
        if importance not in self.IMPORTANCE:
            raise ValueError(f"importance {importance!r}: use one of {', '.join(self.IMPORTANCE)}")
        if finetune not in ("none", "standard", "adversarial"):
            raise ValueError("finetune must be none, standard or adversarial")
        self.amount, self.importance, self.finetune, self.finetune_epochs = amount, importance, finetune, finetune_epochs
        self.finetune_lr, self.adv_eps, self.adv_steps, self.latency_batch = finetune_lr, adv_eps, adv_steps, latency_batch

    def describe(self) -> str:
        ft = "no fine-tuning" if self.finetune == "none" or not self.finetune_epochs else (
            f"{self.finetune} fine-tuning {self.finetune_epochs} epoch(s) (SGD, cosine, lr {self.finetune_lr:g})")
        return (f"channel pruning: {self.amount:.0%} of the channels of every layer removed (torch-pruning DepGraph, "
                f"{self.importance.upper()}-norm filter ranking; classifier outputs kept), {ft}")

    def compress(self, dense, split, seed):
        torch.manual_seed(seed)
        dev = next(dense.parameters()).device
        model = copy.deepcopy(dense).eval()
        example = split.x_test[:1].to(dev)
        before = conv_channels(model)
        remove_channels(model, example, self.amount, self.importance)
        after = conv_channels(model)
        if self.finetune != "none":
            finetune(model, split, epochs=self.finetune_epochs, lr=self.finetune_lr, seed=seed, adversarial=self.finetune == "adversarial",
                     eps=self.adv_eps, steps=self.adv_steps)
        model.eval()
        eff = measure_efficiency(dense.eval(), model, split.x_test[: self.latency_batch].to(dev))
        return Compressed(model, model, CompressionInfo(
            method=self.describe() + f"; measured: {after} of {before} conv channels kept; " + eff.text(), family=self.family,
            level_text=f"{self.amount:.0%} channels removed", target_sparsity=self.amount, sparsity=1 - eff.params_ratio,
            attacked_model="the channel-pruned model", efficiency=eff))
