"""Where a replication runs: device choice, thread count and deterministic settings, recorded.

``--device auto|cpu|cuda[:N]|mps`` picks the accelerator (``auto`` is CUDA when available, then
Apple's MPS, else the CPU); ``--threads N`` sets torch's intra-op threads. :func:`configure` applies
the settings that make a run repeatable on that device and returns a :class:`Runtime` whose
:meth:`Runtime.provenance` is stored with every result, so a reader can tell a GPU number from a
CPU one and see whether cuDNN was allowed to pick non-deterministic kernels.

Determinism on CUDA (PyTorch "Reproducibility" notes): ``torch.use_deterministic_algorithms``,
``cudnn.deterministic = True``, ``cudnn.benchmark = False``, TF32 off (TF32 matmuls round inputs to
10 mantissa bits, which changes attack gradients), and ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` for
deterministic cuBLAS. Mixed precision is off for attacks unless a spec asks for it: half-precision
logits saturate the softmax sooner and weaken the gradients an attack follows (Carlini et al. 2019,
"On Evaluating Adversarial Robustness", §4: the evaluation must not be weakened by numerics).
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import asdict, dataclass
from enum import StrEnum

import torch

from ..errors import ReplicateError

__all__ = ["DeviceKind", "DeviceError", "Runtime", "resolve_device", "configure", "attack_autocast", "move_split", "OnCPU"]


class DeviceKind(StrEnum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"
    mps = "mps"


class DeviceError(ReplicateError, ValueError):
    """A device that does not exist on this machine, or a malformed device string."""


_PATTERN = re.compile(r"^(auto|cpu|mps|cuda)(?::(\d+))?$")


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(text: str | DeviceKind | None = "auto") -> torch.device:
    """The ``torch.device`` a device string names, checked against this machine.

    ``auto`` is ``cuda`` (device 0) when CUDA is available, else ``mps`` when available, else ``cpu``.
    An explicit ``cuda`` on a machine without CUDA is an error, never a silent fall-back to the CPU.
    """
    text = str(text or "auto").strip().lower()
    m = _PATTERN.match(text)
    if not m:
        raise DeviceError(f"device {text!r}: use auto, cpu, mps, cuda or cuda:N")
    kind, index = m.group(1), m.group(2)
    if kind == "auto":
        if index is not None:
            raise DeviceError(f"device {text!r}: auto takes no index")
        if torch.cuda.is_available():
            return torch.device("cuda", 0)
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    if kind == "cpu":
        return torch.device("cpu")
    if kind == "mps":
        if not _mps_available():
            raise DeviceError("device mps: Apple's Metal backend is not available on this machine")
        return torch.device("mps")
    if not torch.cuda.is_available():
        raise DeviceError(f"device {text}: CUDA is not available (torch {torch.__version__}, "
                          f"built with CUDA {torch.version.cuda or 'none'}); use --device cpu or auto")
    n = torch.cuda.device_count()
    i = int(index or 0)
    if i >= n:
        raise DeviceError(f"device {text}: this machine has {n} CUDA device(s) (cuda:0..cuda:{n - 1})")
    return torch.device("cuda", i)


@dataclass(frozen=True)
class Runtime:
    """The device and numeric settings a run used (stored in each result's provenance)."""

    device: str
    device_name: str
    threads: int
    deterministic: bool
    cudnn_deterministic: bool | None
    cudnn_benchmark: bool | None
    tf32: bool | None
    cuda_version: str | None
    cudnn_version: int | None
    attack_mixed_precision: bool

    @property
    def torch_device(self) -> torch.device:
        return torch.device(self.device)

    def provenance(self) -> dict:
        return asdict(self)


def configure(device: str | DeviceKind | None = "auto", threads: int | None = None, *, deterministic: bool = True,
              attack_mixed_precision: bool = False) -> Runtime:
    """Resolve ``device``, set the thread count and the deterministic flags, and describe the result.

    ``threads`` (torch intra-op threads) defaults to the current setting. Settings are process-wide,
    as PyTorch's are: call once per process (a worker evaluates its cells under one runtime).
    """
    dev = resolve_device(device)
    if threads is not None:
        if threads < 1:
            raise DeviceError(f"threads {threads}: must be at least 1")
        torch.set_num_threads(threads)
    if deterministic:
        # must be set before the first cuBLAS call of the process to take effect
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    cuda = dev.type == "cuda"
    if cuda:
        torch.backends.cudnn.deterministic = deterministic
        torch.backends.cudnn.benchmark = not deterministic
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        name = torch.cuda.get_device_name(dev)
    elif dev.type == "mps":
        name = "Apple MPS"
    else:
        import platform

        name = platform.processor() or platform.machine() or "cpu"
    return Runtime(
        device=str(dev), device_name=name, threads=torch.get_num_threads(), deterministic=deterministic,
        cudnn_deterministic=torch.backends.cudnn.deterministic if cuda else None,
        cudnn_benchmark=torch.backends.cudnn.benchmark if cuda else None,
        tf32=(torch.backends.cuda.matmul.allow_tf32 or torch.backends.cudnn.allow_tf32) if cuda else None,
        cuda_version=torch.version.cuda if cuda else None,
        cudnn_version=torch.backends.cudnn.version() if cuda else None,
        attack_mixed_precision=attack_mixed_precision,
    )


def attack_autocast(runtime: Runtime):
    """A context for crafting attacks: bfloat16 autocast only when the spec asked for mixed precision
    (and the device supports it); otherwise full float32."""
    if not runtime.attack_mixed_precision or runtime.torch_device.type == "mps":
        return contextlib.nullcontext()
    return torch.autocast(device_type=runtime.torch_device.type, dtype=torch.bfloat16)



def move_split(split, device: torch.device | str):
    """The same :class:`replicate.train.datasets.Split` with its tensors on ``device`` (itself when already there)."""
    import dataclasses

    device = torch.device(device)
    if split.x_test.device == device:
        return split
    return dataclasses.replace(split, x_train=split.x_train.to(device), y_train=split.y_train.to(device), x_test=split.x_test.to(device),
                               y_test=split.y_test.to(device))


class OnCPU(torch.nn.Module):
    """Run ``model`` (a CPU-only module, e.g. a torch.ao int8 model) on CPU copies of its inputs; the
    outputs go back to the inputs' device, so it can be evaluated beside GPU tensors."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x.cpu()).to(x.device)
