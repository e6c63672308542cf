"""Training: standard and PGD adversarial training (Madry et al. 2018), deterministic under a seed,
with trained weights cached on disk by a hash of everything that determines them.

Reference: Madry A, Makelov A, Schmidt L, Tsipras D, Vladu A (2018). Towards deep learning models
resistant to adversarial attacks. ICLR.
"""

from __future__ import annotations

import hashlib
import json
import os
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from .datasets import Split
from .models import build_model

__all__ = ["TrainConfig", "train_model", "fit", "cache_dir", "seed_everything", "torch_threads", "accuracy", "pgd_perturb", "CODE_VERSION",
           "weights_hash", "package_version"]

# The one code version of the replication engine: part of every cache key (bump it when training,
# compression or attack code changes what it produces). Provenance records it beside the installed
# package version (package_version()).
CODE_VERSION = "2"


def package_version() -> str:
    """The installed crev version (importlib.metadata), recorded in every replication row's provenance."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("crev")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown (not installed)"


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    lr: float = 1e-3
    batch_size: int = 64
    adversarial: bool = False
    adv_eps: float = 0.1
    adv_steps: int = 7
    adv_alpha: float | None = None
    width: int | None = None  # model width (LeNet/ResNet channels); None: the model's default
    recipe: str = "adam"  # adam (fit below) or the SGD recipes pgd_at / trades (replicate/train/recipes.py)
    trades_beta: float = 6.0

    def key(self) -> dict:
        d = asdict(self)
        if self.recipe == "adam":  # keys of Adam-trained models do not change with the recipe fields
            d.pop("recipe"), d.pop("trades_beta")
        return d


def cache_dir() -> Path:
    d = Path(os.environ.get("CREV_CACHE", Path.home() / ".cache" / "crev"))
    d.mkdir(parents=True, exist_ok=True)
    return d


@contextmanager
def torch_threads(n: int):
    """Run the block with ``n`` torch threads and restore the caller's count after. On a CPU the count
    changes floating-point reductions, so models trained with 1 and 2 threads differ (see train_model)."""
    saved = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def seed_everything(seed: int) -> torch.Generator:
    """Seed every generator a run draws from (Python, NumPy, torch) and return a torch generator for
    batch order. Called before a model is built, so its initial weights depend on the seed only."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def pgd_perturb(model: nn.Module, x, y, eps: float, steps: int, alpha: float | None = None, generator=None):
    """L∞ PGD with a random start (Madry et al. 2018), used for adversarial training."""
    alpha = alpha or 2.5 * eps / steps
    delta = ((torch.rand(x.shape, generator=generator) * 2 - 1) * eps).to(x.device)
    delta = (x + delta).clamp(0, 1) - x
    for _ in range(steps):
        delta.requires_grad_(True)
        loss = nn.functional.cross_entropy(model(x + delta), y)
        (grad,) = torch.autograd.grad(loss, delta)
        delta = (delta.detach() + alpha * grad.sign()).clamp(-eps, eps)
        delta = (x + delta).clamp(0, 1) - x
    return (x + delta).detach()


def fit(model: nn.Module, split: Split, cfg: TrainConfig, seed: int, progress=None) -> nn.Module:
    """Train ``model`` in place on ``split`` (Adam); PGD adversarial training when ``cfg.adversarial``.
    Runs on the model's device; the SGD recipes (``cfg.recipe`` pgd_at / trades) are :func:`replicate.train.recipes.fit_recipe`."""
    if cfg.recipe != "adam":
        from .recipes import fit_recipe

        return fit_recipe(model, split, cfg, seed, progress=progress)
    g = seed_everything(seed)
    dev = next(model.parameters()).device
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    n = len(split.y_train)
    for epoch in range(cfg.epochs):
        model.train()
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, cfg.batch_size):
            idx = perm[i: i + cfg.batch_size]
            x, y = split.x_train[idx].to(dev), split.y_train[idx].to(dev)
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


def train_model(split: Split, model_name: str, cfg: TrainConfig, seed: int, *, progress=None, device=None) -> tuple[nn.Module, dict]:
    """The trained dense model, from the cache when the same one was trained before.

    The model is built (and initialised) on the CPU, so its initial weights do not depend on the
    device, then moved to ``device`` (default: the CPU) to be trained or to receive cached weights.

    The cache key hashes the split's provenance, the model, the training configuration, the seed, the
    code and torch versions and, on a CPU, the torch thread count (it changes the weights). Returns the model and a record of how it was obtained.
    """
    on_cpu = torch.device(device or "cpu").type == "cpu"
    # on a CPU the torch thread count changes floating-point reductions and so the trained weights: it is part of the key
    key = {"split": split.provenance(), "model": model_name, "train": cfg.key(), "seed": seed, "code": CODE_VERSION,
           "torch": torch.__version__, "cpu_threads": torch.get_num_threads() if on_cpu else None}
    h = _hash(key)
    path = cache_dir() / f"model-{h}.pt"
    seed_everything(seed)  # before construction: the initial weights are part of what the seed fixes
    model = build_model(model_name, split.shape, split.n_classes, width=cfg.width)
    if path.exists():
        model.load_state_dict(torch.load(path, weights_only=True, map_location="cpu"))
        model.to(device or "cpu").eval()
        return model, {"cache": "hit", "cache_key": h, "weights_hash": weights_hash(model)}
    model.to(device or "cpu")
    fit(model, split, cfg, seed, progress)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    torch.save(model.state_dict(), tmp)
    os.replace(tmp, path)  # atomic: a killed run never leaves half a file
    return model, {"cache": "miss", "cache_key": h, "weights_hash": weights_hash(model)}


def weights_hash(model: nn.Module) -> str:
    """SHA-256 (first 20 hex digits) of the model's parameters and buffers, in state-dict order."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:20]


@torch.no_grad()
def accuracy(model: nn.Module, x, y, batch: int = 512) -> float:
    """Percent correct, derived exactly from the integer count (count / n * 100 in float64)."""
    model.eval()
    correct = 0
    for i in range(0, len(y), batch):
        correct += int((model(x[i: i + batch]).argmax(1) == y[i: i + batch]).sum().item())
    return 100.0 * correct / len(y)
