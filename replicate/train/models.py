"""Small models that train on a 2-core CPU: an MLP, a LeNet-like CNN and a small ResNet.

:class:`ModelName` is the one declaration of the model names (specs, the CLI and the app use it).
"""

from __future__ import annotations

from enum import StrEnum

import torch
from torch import nn

from .archs import ARCHS, build_arch

__all__ = ["MLP", "LeNet", "SmallResNet", "build_model", "MODELS", "ModelName"]


class MLP(nn.Module):
    def __init__(self, shape, n_classes: int, hidden: int = 256):
        super().__init__()
        c, h, w = shape
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, hidden), nn.ReLU(), nn.Linear(hidden, hidden // 2), nn.ReLU(),
                                 nn.Linear(hidden // 2, n_classes))

    def forward(self, x):
        return self.net(x)


class LeNet(nn.Module):
    """Two 3×3 conv blocks (16, 32 filters) and two linear layers: a LeNet-like CNN."""

    def __init__(self, shape, n_classes: int, width: int = 16):
        super().__init__()
        c, h, w = shape
        pool2 = h >= 16
        self.features = nn.Sequential(
            nn.Conv2d(c, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2) if pool2 else nn.Identity(),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        with torch.no_grad():
            n = self.features(torch.zeros(1, c, h, w)).numel()
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(n, 128), nn.ReLU(), nn.Linear(128, n_classes))

    def forward(self, x):
        return self.classifier(self.features(x))


class _Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.short = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = torch.relu(self.b1(self.c1(x)))
        return torch.relu(self.b2(self.c2(out)) + self.short(x))


class SmallResNet(nn.Module):
    """A ResNet with three stages of one basic block each (16, 32, 64 channels)."""

    def __init__(self, shape, n_classes: int, width: int = 16):
        super().__init__()
        c = shape[0]
        self.stem = nn.Sequential(nn.Conv2d(c, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.layers = nn.Sequential(_Block(width, width, 1), _Block(width, 2 * width, 2), _Block(2 * width, 4 * width, 2))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * width, n_classes))

    def forward(self, x):
        return self.head(self.layers(self.stem(x)))


class ModelName(StrEnum):
    mlp = "mlp"
    lenet = "lenet"
    resnet = "resnet"
    preact_resnet18 = "preact_resnet18"  # the CIFAR-10 literature's models (replicate/train/archs.py)
    wrn_28_10 = "wrn_28_10"
    wrn_34_10 = "wrn_34_10"


MODELS: dict[ModelName, type[nn.Module]] = {ModelName.mlp: MLP, ModelName.lenet: LeNet, ModelName.resnet: SmallResNet}


def build_model(name: str | ModelName, shape, n_classes: int, *, width: int | None = None) -> nn.Module:
    """A freshly initialised model. Its initial weights come from torch's global generator: seed it
    first (:func:`replicate.train.training.seed_everything`) for reproducible weights."""
    try:
        key = ModelName(name)
    except ValueError:
        raise ValueError(f"unknown model {name!r}; use one of {', '.join(ModelName)}") from None
    if key.value in ARCHS:  # width: PreAct base width, or the WRN widening factor
        return build_arch(key.value, shape, n_classes, width=width)
    if width is not None and key is not ModelName.mlp:
        return MODELS[key](shape, n_classes, width=width)
    return MODELS[key](shape, n_classes)
