"""Loading a user's checkpoint without running its code.

A checkpoint is one of:

- a ``state_dict`` for an architecture crev ships (``--arch``, :class:`replicate.train.ModelName`):
  ``.pt`` / ``.pth`` read by ``torch.load(weights_only=True)`` (PyTorch's restricted unpickler, which
  admits tensors and plain containers only, so a pickle that would import or call anything is
  refused), or ``.safetensors`` (a header and raw tensors, no code at all; the safetensors format);
- a whole model as TorchScript (``torch.jit.save``; its code is TorchScript, compiled by PyTorch,
  never Python pickles) or as a ``torch.export`` program (``.pt2``, ``torch.export.save``), for any
  architecture.

Anything else is refused with a :class:`CheckpointError` that names the file and the reason. Every
loaded model carries the file's SHA-256, so a result names exactly the bytes it measured.
"""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import torch
from torch import nn

from ..train.models import ModelName, build_model

__all__ = ["CheckpointError", "CheckpointFormat", "LoadedModel", "load_checkpoint", "sha256_file", "detect_format"]


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded safely (names the file and why)."""


class CheckpointFormat(StrEnum):
    state_dict = "state_dict"
    safetensors = "safetensors"
    torchscript = "torchscript"
    exported_program = "exported_program"


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to evaluate, with what it was loaded from."""

    module: nn.Module
    path: str
    sha256: str
    format: CheckpointFormat
    arch: str  # the shipped architecture of a state_dict, or "torchscript" / "torch.export" for a whole model

    def provenance(self) -> dict:
        return {"file": Path(self.path).name, "sha256": self.sha256, "format": self.format.value, "arch": self.arch}


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def detect_format(path: Path) -> CheckpointFormat:
    """The format from the file itself: ``.safetensors`` and ``.pt2`` by suffix, a TorchScript archive
    by its ``code/`` and ``constants.pkl`` entries, anything else a ``torch.save``'d state_dict."""
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        return CheckpointFormat.safetensors
    if suffix == ".pt2":
        return CheckpointFormat.exported_program
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
        if any(n.endswith("/constants.pkl") for n in names) and any("/code/" in n for n in names):
            return CheckpointFormat.torchscript
        if any(n.endswith("/serialized_exported_program.json") or "/models/" in n and n.endswith(".json") for n in names):
            return CheckpointFormat.exported_program
    return CheckpointFormat.state_dict


def _state_dict(path: Path, fmt: CheckpointFormat) -> dict[str, torch.Tensor]:
    if fmt == CheckpointFormat.safetensors:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises UnpicklingError, RuntimeError or others for unsafe or damaged files
        if "weights_only" in str(exc) or "Unsupported global" in str(exc) or "Unpickl" in type(exc).__name__:
            raise CheckpointError(f"{path}: refused - this pickle would import or call Python code on load (torch.load weights_only=True "
                                  f"rejected it: {_why(exc)}). Save model.state_dict(), a safetensors file, TorchScript "
                                  f"(torch.jit.save) or torch.export (.pt2) instead") from None
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({str(exc).splitlines()[0]})") from None
    for key in ("state_dict", "model_state_dict", "model"):  # common wrappers of training scripts
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: holds a {type(obj).__name__}, not a state_dict of tensors")
    return {k.removeprefix("module."): v for k, v in obj.items()}  # DataParallel's prefix


def load_checkpoint(path: str | Path, *, arch: str | None, shape: tuple[int, int, int], n_classes: int, width: int | None = None) -> LoadedModel:
    """Load ``path`` safely as an evaluation-mode model on the CPU.

    ``arch`` is needed for a state_dict (the weights are loaded strictly: every key must match), and
    ignored for a whole model. ``shape`` and ``n_classes`` come from the dataset.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    digest = sha256_file(path)
    fmt = detect_format(path)
    if fmt == CheckpointFormat.torchscript:
        try:
            module = torch.jit.load(str(path), map_location="cpu")
        except Exception as exc:  # noqa: BLE001
            raise CheckpointError(f"{path}: not a loadable TorchScript archive ({str(exc).splitlines()[0]})") from None
        return LoadedModel(module.eval(), str(path), digest, fmt, "torchscript")
    if fmt == CheckpointFormat.exported_program:
        try:
            module = torch.export.load(str(path)).module()
        except Exception as exc:  # noqa: BLE001
            raise CheckpointError(f"{path}: not a loadable torch.export program ({str(exc).splitlines()[0]})") from None
        return LoadedModel(_Exported(module), str(path), digest, fmt, "torch.export")
    sd = _state_dict(path, fmt)
    if arch is None:
        raise CheckpointError(f"{path}: a state_dict holds weights only; name its architecture with --arch (one of {', '.join(ModelName)}), "
                              f"or save the whole model as TorchScript or torch.export (.pt2)")
    model = build_model(arch, shape, n_classes, width=width)
    missing, unexpected = [], []
    try:
        res = model.load_state_dict(sd, strict=False)
        missing, unexpected = list(res.missing_keys), list(res.unexpected_keys)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: the weights do not fit --arch {arch} on {shape} with {n_classes} classes ({str(exc).splitlines()[-1].strip()})") from None
    if missing or unexpected:
        raise CheckpointError(f"{path}: the weights do not fit --arch {arch}: missing {missing[:5]}, unexpected {unexpected[:5]}")
    return LoadedModel(model.eval(), str(path), digest, fmt, ModelName(arch).value)


def _why(exc: Exception) -> str:
    """The line of torch's refusal that names what the pickle wanted (its first line is boilerplate)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return next((ln for ln in lines if "Unsupported global" in ln or "GLOBAL" in ln), lines[0] if lines else type(exc).__name__)


class _Exported(nn.Module):
    """An exported program's module behind an ordinary ``nn.Module`` (``eval()`` is not supported on
    it, and attacks call ``model.eval()``): its graph already fixes evaluation behaviour."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.inner = module

    def train(self, mode: bool = True):
        self.training = mode  # the exported graph has no train mode to switch
        return self

    def forward(self, x):
        return self.inner(x)
