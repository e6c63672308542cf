"""Unstructured and Ln-structured pruning with ``torch.nn.utils.prune``: global or layer-wise L1
magnitude, random, or Ln-structured (filters / input channels); one-shot or iterative; with no,
standard or adversarial fine-tuning. The measured sparsity is recorded, not only the target.

References: Han et al. 2015 (magnitude pruning, iterative schedule); Li et al. 2017 (filter pruning by
L1 norm); Wang et al. 2018 and Ye et al. 2019 (pruning and adversarial robustness)."""

from __future__ import annotations

import copy

import torch
from torch.nn.utils import prune

from evidence.vocab import CompressionFamily

from .base import (DEFAULT_FINETUNE_LR, Compressed, CompressionInfo, Compressor, CompressorKind, LevelKind, finetune_after, measured_sparsity,
                   prunable, register_compressor)

__all__ = ['Pruner']


@register_compressor
class Pruner(Compressor):
    """Magnitude (L1), random or Ln-structured pruning to ``amount`` of the prunable weights."""

    kind, levels = CompressorKind.prune, LevelKind.sparsity

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

    @classmethod
    def from_spec(cls, c, level, train):
        return cls(method=c.method, amount=float(level), iterations=c.iterations, finetune=c.finetune, finetune_epochs=c.finetune_epochs,
                   adv_eps=train.adv_eps, finetune_lr=c.finetune_lr)

    def describe(self) -> str:
        what = {"global_l1": "global L1 unstructured", "layer_l1": "layer-wise L1 unstructured", "random": "random unstructured",
                "ln_structured": f"L{self.n} structured ({'filters/output channels' if self.dim == 0 else 'input channels'})"}[self.method]
        sched = "one-shot" if self.iterations == 1 else f"iterative ({self.iterations} steps)"
        ft = "no fine-tuning" if self.finetune == "none" else f"{self.finetune} fine-tuning {self.finetune_epochs} epoch(s) per step at lr {self.finetune_lr:g}"
        return f"{what} pruning, {sched}, {ft}"

    def compress(self, dense, split, seed):
        torch.manual_seed(seed)
        model = copy.deepcopy(dense)
        params = prunable(model, structured=self.method == "ln_structured")
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
            finetune_after(model, split, self.finetune, self.finetune_epochs, seed, self.adv_eps, self.finetune_lr)
        for m, name in params:
            prune.remove(m, name)
        model.eval()
        return Compressed(model, model, CompressionInfo(method=self.describe(), family=self.family, level_text=f"{self.amount:.4g}",
                                                        target_sparsity=self.amount, sparsity=measured_sparsity(model),
                                                        attacked_model="the compressed model"))
