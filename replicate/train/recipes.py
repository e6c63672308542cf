"""Training recipes of the CIFAR-10 robustness literature, on any device.

- ``pgd_at``: PGD adversarial training (Madry et al. 2018, "Towards deep learning models resistant to
  adversarial attacks", ICLR) with the settings of Rice, Wong & Kolter (2020, "Overfitting in
  adversarially robust deep learning", ICML): Linf eps 8/255, step 2/255, 10 steps with a random
  start; SGD, momentum 0.9, weight decay 5e-4, learning rate 0.1 divided by 10 at 50 % and 75 % of
  the epochs (200 epochs in the paper); random crop (4-pixel padding) and horizontal flip.
- ``trades``: TRADES (Zhang et al. 2019, "Theoretically principled trade-off between robustness and
  accuracy", ICML): cross-entropy on clean images plus ``beta`` (6 in the paper) times the KL
  divergence between the predictions on clean and adversarial images; the adversarial images
  maximise that KL (PGD-10, step 2/255, start at 0.001 · N(0, 1)); same optimiser and schedule.
- ``sgd``: standard training with the same optimiser, schedule and augmentation (the non-adversarial
  baseline of the same papers).
- ``adam``: the engine's small-model default (:func:`replicate.train.training.fit`).

Batch order, the random start and the augmentation draw from one seeded generator on the CPU, so
the same seed gives the same sequence on every device. Training runs in float32 (no autocast).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["Recipe", "SGDSchedule", "CIFAR_PGD_AT", "augment", "pgd_examples", "trades_perturb", "fit_recipe", "lr_at", "finetune"]


class Recipe(StrEnum):
    adam = "adam"
    sgd = "sgd"  # standard (non-adversarial) training with the same optimiser, schedule and augmentation
    pgd_at = "pgd_at"
    trades = "trades"


@dataclass(frozen=True)
class SGDSchedule:
    """SGD with a piecewise-constant learning rate (Rice et al. 2020)."""

    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    milestones: tuple[float, ...] = (0.5, 0.75)  # fractions of the epochs at which the rate drops
    gamma: float = 0.1


CIFAR_PGD_AT = {"eps": 8 / 255, "alpha": 2 / 255, "steps": 10, "epochs": 200, "batch_size": 128, "lr": 0.1}


def lr_at(schedule: SGDSchedule, base_lr: float, epoch: int, epochs: int) -> float:
    """The learning rate of ``epoch`` (0-based) out of ``epochs``."""
    drops = sum(epoch >= int(m * epochs) for m in schedule.milestones)
    return base_lr * schedule.gamma ** drops


def augment(x: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random crop after zero padding, and a random horizontal flip (the standard CIFAR augmentation).

    Offsets and flips are drawn on the CPU from ``generator``; the images stay on their device.
    """
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    rows = (dy[:, None] + torch.arange(h)[None]).to(x.device)  # (n, h)
    cols = (dx[:, None] + torch.arange(w)[None]).to(x.device)  # (n, w)
    cols = torch.where(flip.to(x.device)[:, None], cols.flip(1), cols)
    idx_n = torch.arange(n, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[idx_n, rows[:, :, None], cols[:, None, :]]  # (n, h, w, c)
    return out.permute(0, 3, 1, 2).contiguous()


def pgd_examples(model, x, y, eps, alpha, steps, generator):
    """L∞ PGD with a random start drawn on the CPU from ``generator`` (Madry et al. 2018)."""
    delta = ((torch.rand(x.shape, generator=generator) * 2 - 1) * eps).to(x.device)
    delta = (x + delta).clamp(0, 1) - x
    for _ in range(steps):
        delta.requires_grad_(True)
        loss = F.cross_entropy(model(x + delta), y)
        (g,) = torch.autograd.grad(loss, delta)
        delta = (delta.detach() + alpha * g.sign()).clamp(-eps, eps)
        delta = (x + delta).clamp(0, 1) - x
    return (x + delta).detach()


def trades_perturb(model: nn.Module, x, eps: float, alpha: float, steps: int, generator) -> torch.Tensor:
    """TRADES' inner maximisation: PGD on KL(f(x) || f(x')) from x + 0.001·N(0, 1) (Zhang et al. 2019, Alg. 1)."""
    with torch.no_grad():
        p_nat = F.softmax(model(x), 1)
    x_adv = (x + 0.001 * torch.randn(x.shape, generator=generator).to(x.device)).clamp(0, 1)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        loss = F.kl_div(F.log_softmax(model(x_adv), 1), p_nat, reduction="sum")
        (g,) = torch.autograd.grad(loss, x_adv)
        x_adv = torch.min(torch.max(x_adv.detach() + alpha * g.sign(), x - eps), x + eps).clamp(0, 1)
    return x_adv.detach()


def fit_recipe(model: nn.Module, split, cfg, seed: int, *, progress=None, schedule: SGDSchedule = SGDSchedule()) -> nn.Module:
    """Train ``model`` in place with ``cfg.recipe`` (``sgd``, ``pgd_at`` or ``trades``) on the model's device.

    ``cfg`` is a :class:`replicate.train.training.TrainConfig`: its ``lr`` is the initial SGD rate, its
    ``adv_eps`` / ``adv_steps`` / ``adv_alpha`` the inner attack, ``trades_beta`` TRADES' weight.
    Crop-and-flip augmentation is applied to 3-channel 32 × 32 images except SVHN (digits are not
    flipped in the literature). PGD-AT crafts its examples in training mode, as Rice et al.'s code
    does; TRADES crafts them in evaluation mode, as Zhang et al.'s code does.
    """
    from .training import seed_everything

    recipe = Recipe(cfg.recipe)
    if recipe is Recipe.adam:
        raise ValueError("fit_recipe trains the SGD recipes (sgd, pgd_at, trades); adam is replicate.train.training.fit")
    g = seed_everything(seed)
    dev = next(model.parameters()).device
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=schedule.momentum, weight_decay=schedule.weight_decay)
    eps, steps = cfg.adv_eps, cfg.adv_steps
    alpha = cfg.adv_alpha or 2.5 * eps / steps
    beta = getattr(cfg, "trades_beta", 6.0)
    do_aug = split.name != "svhn" and tuple(split.x_train.shape[1:]) == (3, 32, 32)
    n = len(split.y_train)
    for epoch in range(cfg.epochs):
        for group in opt.param_groups:
            group["lr"] = lr_at(schedule, cfg.lr, epoch, cfg.epochs)
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, cfg.batch_size):
            idx = perm[i: i + cfg.batch_size]
            x, y = split.x_train[idx].to(dev, non_blocking=True), split.y_train[idx].to(dev, non_blocking=True)
            if do_aug:
                x = augment(x, g)
            if recipe is Recipe.sgd:
                model.train()
                loss = F.cross_entropy(model(x), y)
            elif recipe is Recipe.pgd_at:
                model.train()
                x_adv = pgd_examples(model, x, y, eps, alpha, steps, g)
                loss = F.cross_entropy(model(x_adv), y)
            else:
                model.eval()
                x_adv = trades_perturb(model, x, eps, alpha, steps, g)
                model.train()
                logits = model(x)
                loss = F.cross_entropy(logits, y) + beta * F.kl_div(F.log_softmax(model(x_adv), 1), F.softmax(logits, 1),
                                                                   reduction="batchmean")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if progress:
            progress(epoch + 1, cfg.epochs)
    model.eval()
    return model


def finetune(model: nn.Module, split, *, epochs: int, lr: float, seed: int, adversarial: bool, eps: float, steps: int = 10,
             alpha: float | None = None, params=None) -> nn.Module:
    """Fine-tune after compression: SGD (momentum 0.9, weight decay 5e-4) with a cosine learning rate,
    on clean images or on PGD examples (PGD-AT loss); ``params`` restricts what is trained (HYDRA's
    scores). Runs on the model's device; batch order and the random start come from ``seed``."""
    from .training import seed_everything

    if epochs <= 0:
        return model
    g = seed_everything(seed)
    dev = next(model.parameters()).device
    params = [p for p in (params if params is not None else model.parameters()) if p.requires_grad]
    opt = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=5e-4)
    n, bs = len(split.y_train), 128
    total = epochs * ((n + bs - 1) // bs)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    alpha = alpha or 2.5 * eps / steps
    do_aug = split.name != "svhn" and tuple(split.x_train.shape[1:]) == (3, 32, 32)
    for _ in range(epochs):
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, bs):
            idx = perm[i: i + bs]
            x, y = split.x_train[idx].to(dev), split.y_train[idx].to(dev)
            if do_aug:
                x = augment(x, g)
            model.train()
            if adversarial:
                x = pgd_examples(model, x, y, eps, alpha, steps, g)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    return model
