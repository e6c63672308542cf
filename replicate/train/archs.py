"""The architectures of the CIFAR-10 robustness literature: PreAct ResNet-18 and Wide ResNets.

- PreAct ResNet-18: He K, Zhang X, Ren S, Sun J (2016). Identity mappings in deep residual networks.
  ECCV. The model of Rice, Wong & Kolter (2020, "Overfitting in adversarially robust deep
  learning") and of most PGD-AT pruning papers (e.g. HYDRA, Sehwag et al. 2020, uses VGG/WRN/ResNet).
- WRN-28-10 / WRN-34-10: Zagoruyko S, Komodakis N (2016). Wide residual networks. BMVC. WRN-34-10
  is Madry et al.'s (2018) and TRADES's (Zhang et al. 2019) CIFAR-10 model.

Width and depth are parameters, so tests build tiny instances of the same code
(``preact_resnet18(width=4)``, ``wide_resnet(depth=10, widen=1)``). Inputs are images in [0, 1];
no normalisation layer is inside (attacks' epsilons are on the pixel scale, as in the papers).
"""

from __future__ import annotations

from torch import nn

__all__ = ["PreActBlock", "PreActResNet", "preact_resnet18", "WideBasic", "WideResNet", "wide_resnet", "ARCHS", "build_arch"]


class PreActBlock(nn.Module):
    """BN-ReLU-conv twice, identity (or 1×1 projection) shortcut taken after the first BN-ReLU."""

    expansion = 1

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.relu1, self.relu2 = nn.ReLU(), nn.ReLU()
        self.shortcut = nn.Conv2d(cin, cout, 1, stride, bias=False) if stride != 1 or cin != cout else None

    def forward(self, x):
        out = self.relu1(self.bn1(x))
        short = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(self.relu2(self.bn2(out)))
        return out + short


class _PreActStack(nn.Module):
    """The body both families share: a 3×3 stem, stages of pre-activation blocks (the first block of
    every stage after the first strides by 2), then BN-ReLU, global average pool and a linear head."""

    def __init__(self, stem: int, stages: list[tuple[int, int]], *, in_channels: int, n_classes: int, block: type[nn.Module]):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, stem, 3, 1, 1, bias=False)
        layers, cin = [], stem
        for i, (cout, n) in enumerate(stages):
            for j in range(n):
                layers.append(block(cin, cout, 2 if (i > 0 and j == 0) else 1))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(cin)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(cin, n_classes)

    def forward(self, x):
        out = self.relu(self.bn(self.layers(self.conv1(x))))
        return self.linear(self.pool(out).flatten(1))


class PreActResNet(_PreActStack):
    """Pre-activation ResNet: a 3×3 stem, four stages (width, 2, 4, 8 × width), BN-ReLU, pool, linear."""

    def __init__(self, blocks: tuple[int, ...] = (2, 2, 2, 2), *, in_channels: int = 3, n_classes: int = 10, width: int = 64):
        super().__init__(width, [(width * 2 ** i, n) for i, n in enumerate(blocks)], in_channels=in_channels, n_classes=n_classes,
                         block=PreActBlock)


def preact_resnet18(shape=(3, 32, 32), n_classes: int = 10, width: int = 64) -> PreActResNet:
    """PreAct ResNet-18 (11.2 M parameters at the standard width 64)."""
    return PreActResNet((2, 2, 2, 2), in_channels=shape[0], n_classes=n_classes, width=width)


class WideBasic(PreActBlock):
    """The WRN basic block (BN-ReLU-conv3×3, BN-ReLU-conv3×3; dropout off, as in adversarial training):
    the same computation as the pre-activation block, kept as its own name for WRN's papers."""


class WideResNet(_PreActStack):
    """WRN-depth-widen: (depth - 4) / 6 blocks per stage, stages of 16·k, 32·k, 64·k channels."""

    def __init__(self, depth: int = 34, widen: int = 10, *, in_channels: int = 3, n_classes: int = 10, base: int = 16):
        if (depth - 4) % 6:
            raise ValueError(f"WRN depth {depth}: must be 6n + 4 (10, 16, 22, 28, 34, ...)")
        n = (depth - 4) // 6
        widths = [base * widen, 2 * base * widen, 4 * base * widen]
        super().__init__(base, [(w, n) for w in widths], in_channels=in_channels, n_classes=n_classes, block=WideBasic)


def wide_resnet(shape=(3, 32, 32), n_classes: int = 10, depth: int = 34, widen: int = 10) -> WideResNet:
    """WRN-depth-widen (WRN-34-10: 46.2 M parameters; WRN-28-10: 36.5 M)."""
    return WideResNet(depth, widen, in_channels=shape[0], n_classes=n_classes)


def _wrn(depth: int):
    def build(shape, n_classes, width: int | None = None):
        return wide_resnet(shape, n_classes, depth=depth, widen=width or 10)

    return build


def _preact(shape, n_classes, width: int | None = None):
    return preact_resnet18(shape, n_classes, width=width or 64)


# name -> builder(shape, n_classes, width=None); ``width`` is the base width (PreAct) or the widening factor (WRN)
ARCHS = {"preact_resnet18": _preact, "wrn_28_10": _wrn(28), "wrn_34_10": _wrn(34)}


def build_arch(name: str, shape, n_classes: int, width: int | None = None) -> nn.Module:
    if name not in ARCHS:
        raise ValueError(f"unknown architecture {name!r}; use one of {', '.join(ARCHS)}")
    return ARCHS[name](shape, n_classes, width=width)
