"""HYDRA: pruning by importance scores optimised under the adversarial loss, then fine-tuning.

Sehwag V, Wang S, Mittal P, Jana S (2020). HYDRA: Pruning adversarially robust neural networks.
NeurIPS. Magnitude is a poor guide to which weights matter for robustness; HYDRA freezes the
(adversarially trained) weights, gives every weight a score s initialised to |w| / max|w| of its
layer ("scaled initialisation", §3.2), and learns the scores by SGD on the adversarial training
loss with the mask 1[s among the top k of its layer] in the forward pass and a straight-through
gradient to s (Ramanujan et al. 2020's edge-popup); then the masked weights are fine-tuned with the
same adversarial loss. The paper uses PGD-AT, TRADES or MART; here the PGD-AT loss of
:func:`replicate.train.recipes.finetune`, the same sparsity k in every conv and linear layer, and the
paper's score learning rate 0.1 with a cosine schedule.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils import parametrize, prune

from evidence.vocab import CompressionFamily

from .base import Compressed, CompressionInfo, Compressor, CompressorKind, LevelKind, measured_sparsity, register_compressor
from ..train.recipes import finetune

__all__ = ["HydraPruner", "ScoreMask", "SCORE_LR"]

SCORE_LR = 0.1


class _TopK(torch.autograd.Function):
    """Forward: 1 for the top ``keep`` share of |scores|, else 0; backward: identity (straight-through)."""

    @staticmethod
    def forward(ctx, scores, keep):
        k = max(1, int(round(keep * scores.numel())))
        mask = torch.zeros_like(scores)
        mask.view(-1)[scores.abs().flatten().topk(k).indices] = 1.0
        return mask

    @staticmethod
    def backward(ctx, g):
        return g, None


class ScoreMask(nn.Module):
    """A parametrization w -> w · mask(scores) with learnable scores (one per weight)."""

    def __init__(self, weight: torch.Tensor, keep: float):
        super().__init__()
        w = weight.detach().abs()
        self.scores = nn.Parameter(w / w.max().clamp_min(1e-12))
        self.keep = keep

    def mask(self) -> torch.Tensor:
        return _TopK.apply(self.scores, self.keep)

    def forward(self, w):
        return w * self.mask()


@register_compressor
class HydraPruner(Compressor):
    """Prune ``amount`` of the weights of every conv/linear layer by learned scores, then fine-tune."""

    family = CompressionFamily.unstructured_pruning
    kind, levels = CompressorKind.hydra, LevelKind.sparsity
    learns_scores = True  # the spec gives the score-learning epochs in a field of their own (score_epochs)

    @classmethod
    def from_spec(cls, c, level, train):
        return cls(amount=float(level), score_epochs=c.score_epochs, finetune_epochs=c.finetune_epochs, finetune_lr=c.finetune_lr,
                   adv_eps=train.adv_eps, adv_steps=train.adv_steps, adversarial=c.finetune != "standard")

    def __init__(self, amount: float = 0.9, score_epochs: int = 1, finetune_epochs: int = 1, finetune_lr: float = 0.01,
                 adv_eps: float = 8 / 255, adv_steps: int = 10, adversarial: bool = True):
        if not 0.0 <= amount < 1.0:
            raise ValueError(f"pruning amount {amount}: must lie in [0, 1)")
        self.amount, self.score_epochs, self.finetune_epochs, self.finetune_lr = amount, score_epochs, finetune_epochs, finetune_lr
        self.adv_eps, self.adv_steps, self.adversarial = adv_eps, adv_steps, adversarial

    def describe(self) -> str:
        loss = "PGD-AT loss" if self.adversarial else "clean loss"
        return (f"HYDRA (Sehwag et al. 2020): {self.amount:.0%} of the weights of every layer pruned by importance scores learned "
                f"{self.score_epochs} epoch(s) under the {loss} (SGD lr {SCORE_LR:g}, cosine), then {self.finetune_epochs} epoch(s) "
                f"of fine-tuning (lr {self.finetune_lr:g})")

    def compress(self, dense, split, seed):
        torch.manual_seed(seed)
        model = copy.deepcopy(dense)
        layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        for p in model.parameters():
            p.requires_grad_(False)
        scorers = []
        for m in layers:
            s = ScoreMask(m.weight, 1.0 - self.amount)
            parametrize.register_parametrization(m, "weight", s)
            scorers.append(s)
        finetune(model, split, epochs=self.score_epochs, lr=SCORE_LR, seed=seed, adversarial=self.adversarial, eps=self.adv_eps,
                 steps=self.adv_steps, params=[s.scores for s in scorers])
        masks = [s.mask().detach() for s in scorers]
        for m, mask in zip(layers, masks):
            parametrize.remove_parametrizations(m, "weight", leave_parametrized=False)  # the original weights back
            prune.custom_from_mask(m, "weight", mask)
        for p in model.parameters():
            p.requires_grad_(True)
        finetune(model, split, epochs=self.finetune_epochs, lr=self.finetune_lr, seed=seed, adversarial=self.adversarial, eps=self.adv_eps,
                 steps=self.adv_steps)
        for m in layers:
            prune.remove(m, "weight")
        model.eval()
        return Compressed(model, model, CompressionInfo(
            method=self.describe(), family=self.family, level_text=f"{self.amount:.4g}", target_sparsity=self.amount,
            sparsity=measured_sparsity(model), attacked_model="the HYDRA-pruned model"))
