"""Training: standard and PGD adversarial training (Madry et al. 2018), deterministic under a seed,
with trained weights cached on disk by a hash of everything that determines them.

Reference: Madry A, Makelov A, Schmidt L, Tsipras D, Vladu A (2018). Towards deep learning models
resistant to adversarial attacks. ICLR.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from .datasets import Split
from .models import build_model

__all__ = ["TrainConfig", "train_model", "fit", "cache_dir", "seed_everything", "accuracy", "pgd_perturb"]

CODE_VERSION = "1"  # bump when training code changes what it produces


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    lr: float = 1e-3
    batch_size: int = 64
    adversarial: bool = False
    adv_eps: float = 0.1
    adv_steps: int = 7
    adv_alpha: float | None = None

    def key(self) -> dict:
        return asdict(self)


def cache_dir() -> Path:
    d = Path(os.environ.get("CREV_CACHE", Path.home() / ".cache" / "crev"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def seed_everything(seed: int) -> torch.Generator:
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def pgd_perturb(model: nn.Module, x, y, eps: float, steps: int, alpha: float | None = None, generator=None):
    """L∞ PGD with a random start (Madry et al. 2018), used for adversarial training."""
    alpha = alpha or 2.5 * eps / steps
    delta = (torch.rand(x.shape, generator=generator) * 2 - 1) * eps
    delta = (x + delta).clamp(0, 1) - x
    for _ in range(steps):
        delta.requires_grad_(True)
        loss = nn.functional.cross_entropy(model(x + delta), y)
        (grad,) = torch.autograd.grad(loss, delta)
        delta = (delta.detach() + alpha * grad.sign()).clamp(-eps, eps)
        delta = (x + delta).clamp(0, 1) - x
    return (x + delta).detach()


def fit(model: nn.Module, split: Split, cfg: TrainConfig, seed: int, progress=None) -> nn.Module:
    """Train ``model`` in place on ``split`` (Adam); PGD adversarial training when ``cfg.adversarial``."""
    g = seed_everything(seed)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    n = len(split.y_train)
    for epoch in range(cfg.epochs):
        model.train()
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, cfg.batch_size):
            idx = perm[i: i + cfg.batch_size]
            x, y = split.x_train[idx], split.y_train[idx]
            if cfg.adversarial:
                model.eval()
                x = pgd_perturb(model, x, y, cfg.adv_eps, cfg.adv_steps, cfg.adv_alpha, g)
                model.train()
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        if progress:
            progress(epoch + 1, cfg.epochs)
    model.eval()
    return model


def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:20]


def train_model(split: Split, model_name: str, cfg: TrainConfig, seed: int, *, progress=None) -> tuple[nn.Module, dict]:
    """The trained dense model, from the cache when the same one was trained before.

    The cache key hashes the split's provenance, the model, the training configuration, the seed and
    the code and torch versions. Returns the model and a record of how it was obtained.
    """
    key = {"split": split.provenance(), "model": model_name, "train": cfg.key(), "seed": seed, "code": CODE_VERSION,
           "torch": torch.__version__}
    h = _hash(key)
    path = cache_dir() / f"model-{h}.pt"
    model = build_model(model_name, split.shape, split.n_classes)
    if path.exists():
        model.load_state_dict(torch.load(path, weights_only=True))
        model.eval()
        return model, {"cache": "hit", "weights_hash": h}
    fit(model, split, cfg, seed, progress)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    torch.save(model.state_dict(), tmp)
    os.replace(tmp, path)  # atomic: a killed run never leaves half a file
    return model, {"cache": "miss", "weights_hash": h}


@torch.no_grad()
def accuracy(model: nn.Module, x, y, batch: int = 512) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(y), batch):
        correct += (model(x[i: i + batch]).argmax(1) == y[i: i + batch]).sum().item()
    return 100.0 * correct / len(y)
