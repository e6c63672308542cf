"""An independent re-implementation of the replication pipeline, in plain PyTorch (issue 11).

Nothing here imports crev's training, compression or attack code: only the data split (so that both
sides see the same images) and, where a comparison needs the very same dense weights, a state dict.
A reviewer who doubts crev's numbers can read these ~150 lines end to end:

- ``LeNetRef``: conv 3×3 (w) – ReLU – [max-pool 2 when the image is ≥ 16 px] – conv 3×3 (2w) – ReLU –
  max-pool 2 – linear 128 – ReLU – linear (classes); w = 16 by default, 8 in the issue's independent script.
- ``train``: Adam, cross-entropy, shuffled mini-batches.
- ``pgd``: L∞ PGD (Madry et al. 2018): uniform random start in the ε-ball, ``steps`` signed-gradient
  steps of size α = 2.5·ε/steps, projection onto the ε-ball and [0, 1] after every step.
- ``prune_global_l1``: global magnitude pruning of every conv and linear weight (biases kept) to the
  target sparsity, the mask kept during fine-tuning (Han et al. 2015).
- ``quantize``: k-bit symmetric weight quantization per output channel, levels {−L..L}·s with
  L = 2^(k−1) − 1, scale s = max|w|/L ("max") or the clipping ratio of max|w| on a 40-point grid that
  minimises the squared error ("mse", Banner et al. 2019); quantization-aware fine-tuning with the
  straight-through estimator (Bengio et al. 2013). Optionally b-bit activations: each layer's input is
  quantized to 2^b − 1 unsigned levels (2^(b−1) − 1 signed) of a scale calibrated as the largest |input|
  on the first 512 training images, before and again after fine-tuning (the running maximum).

Used by ``bench/replicate.py --independent``: crev's pipeline and this one on the same split, the
same settings and the same seeds.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["LAYERS", "LeNetRef", "train", "pgd", "robust_correct", "prune_global_l1", "quantize", "zero_share"]


LAYERS = ("conv1", "conv2", "fc1", "fc2")


class LeNetRef(nn.Module):
    def __init__(self, shape, n_classes: int, width: int = 16):
        super().__init__()
        c, h, w = shape
        self.conv1 = nn.Conv2d(c, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, padding=1)
        self.pool_first = h >= 16
        side = (h // 2 if self.pool_first else h) // 2
        self.fc1 = nn.Linear(2 * width * side * side, 128)
        self.fc2 = nn.Linear(128, n_classes)
        self.masks: dict[str, torch.Tensor] = {}
        self.qbits: int | None = None
        self.qrule = "max"
        self.abits: int | None = None
        self.amax = {n: torch.tensor(0.0) for n in LAYERS}
        self.calibrating = False

    def weight(self, name: str) -> torch.Tensor:
        w = getattr(self, name).weight
        if name in self.masks:
            w = w * self.masks[name]
        if self.qbits:
            w = _ste_quantize(w, self.qbits, self.qrule)
        return w

    def act(self, name: str, x: torch.Tensor) -> torch.Tensor:
        if not self.abits:
            return x
        if self.calibrating:
            self.amax[name] = torch.maximum(self.amax[name], x.detach().abs().max())
            return x
        signed = bool((x < 0).any())
        levels = 2 ** (self.abits - 1) - 1 if signed else 2 ** self.abits - 1
        s = self.amax[name] / levels
        lo = -levels if signed else 0
        q = (x / s).round().clamp(lo, levels) * s
        return x + (q - x).detach()

    def forward(self, x):
        x = torch.relu(nn.functional.conv2d(self.act("conv1", x), self.weight("conv1"), self.conv1.bias, padding=1))
        if self.pool_first:
            x = nn.functional.max_pool2d(x, 2)
        x = torch.relu(nn.functional.conv2d(self.act("conv2", x), self.weight("conv2"), self.conv2.bias, padding=1))
        x = nn.functional.max_pool2d(x, 2).flatten(1)
        x = torch.relu(nn.functional.linear(self.act("fc1", x), self.weight("fc1"), self.fc1.bias))
        return nn.functional.linear(self.act("fc2", x), self.weight("fc2"), self.fc2.bias)

    @torch.no_grad()
    def calibrate(self, x_train: torch.Tensor, n: int = 512) -> "LeNetRef":
        self.calibrating = True
        self(x_train[:n])
        self.calibrating = False
        return self

    def load_crev(self, state: dict) -> "LeNetRef":
        """Load the weights of crev's LeNet (features.0/3, classifier.1/3) into this one."""
        names = {"features.0": "conv1", "features.3": "conv2", "classifier.1": "fc1", "classifier.3": "fc2"}
        self.load_state_dict({f"{names[k.rsplit('.', 1)[0]]}.{k.rsplit('.', 1)[1]}": v for k, v in state.items()})
        return self


def _scale(w: torch.Tensor, bits: int, rule: str) -> torch.Tensor:
    flat = w.detach().reshape(w.shape[0], -1)
    top = flat.abs().amax(1).clamp_min(1e-12)
    levels = 2 ** (bits - 1) - 1
    if rule == "max":
        s = top / levels
    else:
        best_err, s = None, None
        for r in torch.linspace(0.05, 1.0, 40):
            cand = top * r / levels
            q = (flat / cand[:, None]).round().clamp(-levels, levels) * cand[:, None]
            err = ((q - flat) ** 2).sum(1)
            if best_err is None:
                best_err, s = err, cand
            else:
                better = err < best_err
                best_err, s = torch.where(better, err, best_err), torch.where(better, cand, s)
    return s.reshape((-1,) + (1,) * (w.dim() - 1))


def _ste_quantize(w: torch.Tensor, bits: int, rule: str) -> torch.Tensor:
    levels = 2 ** (bits - 1) - 1
    s = _scale(w, bits, rule)
    q = (w / s).round().clamp(-levels, levels) * s
    return w + (q - w).detach()  # straight-through: forward q, gradient of the identity


def train(model: nn.Module, x, y, *, epochs: int, lr: float, batch_size: int, seed: int) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam([p for p in model.parameters()], lr=lr)
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(y), generator=g)
        for i in range(0, len(y), batch_size):
            idx = perm[i: i + batch_size]
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    return model.eval()


def pgd(model: nn.Module, x, y, *, eps: float, steps: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    alpha = 2.5 * eps / steps
    adv = (x + (torch.rand(x.shape, generator=g) * 2 - 1) * eps).clamp(0, 1)
    for _ in range(steps):
        adv.requires_grad_(True)
        (grad,) = torch.autograd.grad(nn.functional.cross_entropy(model(adv), y), adv)
        adv = adv.detach() + alpha * grad.sign()
        adv = torch.min(torch.max(adv, x - eps), x + eps).clamp(0, 1)
    return adv.detach()


@torch.no_grad()
def _predict(model, x):
    return model(x).argmax(1)


def robust_correct(model: nn.Module, x, y, *, eps: float = 0.1, steps: int = 10, seed: int = 0) -> int:
    """Number of test images still classified correctly under PGD."""
    return int((_predict(model, pgd(model, x, y, eps=eps, steps=steps, seed=seed)) == y).sum())


def prune_global_l1(model: LeNetRef, sparsity: float) -> LeNetRef:
    ws = torch.cat([getattr(model, n).weight.detach().abs().flatten() for n in LAYERS])
    k = int(round(sparsity * ws.numel()))
    threshold = ws.kthvalue(k).values if k > 0 else ws.min() - 1
    for n in LAYERS:
        model.masks[n] = (getattr(model, n).weight.detach().abs() > threshold).float()
    return model


def quantize(model: LeNetRef, bits: int, rule: str, act_bits: int | None = None) -> LeNetRef:
    model.qbits, model.qrule, model.abits = bits, rule, act_bits
    return model


@torch.no_grad()
def zero_share(model: LeNetRef) -> list[float]:
    return [float((model.weight(n) == 0).double().mean()) for n in LAYERS]
