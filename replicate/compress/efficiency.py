"""What compression buys: parameters, multiply-accumulates and latency, measured, dense beside compressed.

Parameters and MACs are counted by ``torch_pruning.utils.count_ops_and_params`` on one example
image (MACs of conv and linear layers for a 1-image forward pass). Latency is the median wall time
of ``repeats`` forward passes of a ``batch``-image batch on ``device`` after ``warmup`` passes
(``torch.cuda.synchronize`` around each on CUDA), with the thread count recorded: a speed-up is a
ratio measured in the same process and run, never a comparison across machines.
"""

from __future__ import annotations

import statistics
import time

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

__all__ = ["Efficiency", "count_params_macs", "latency_ms", "measure_efficiency"]


class Efficiency(BaseModel):
    """Measured cost of the dense and the compressed model (stored with the cell and the result)."""

    model_config = ConfigDict(frozen=True)

    params_dense: int
    params: int
    macs_dense: int | None = None  # multiply-accumulates per image (None: not countable, e.g. int8 kernels)
    macs: int | None = None
    latency_ms_dense: float
    latency_ms: float
    batch: int
    device: str
    threads: int

    @property
    def speedup(self) -> float:
        return self.latency_ms_dense / self.latency_ms

    @property
    def params_ratio(self) -> float:
        return self.params / self.params_dense

    @property
    def macs_ratio(self) -> float | None:
        return None if self.macs is None or not self.macs_dense else self.macs / self.macs_dense

    def text(self) -> str:
        macs = f", MACs {self.macs_ratio:.2f} x" if self.macs_ratio is not None else ""
        return (f"params {self.params:,} of {self.params_dense:,} ({self.params_ratio:.2f} x){macs}; latency {self.latency_ms:.2f} ms vs "
                f"{self.latency_ms_dense:.2f} ms per batch of {self.batch} on {self.device} ({self.threads} threads): {self.speedup:.2f} x speed-up")


def count_params_macs(model: nn.Module, example: torch.Tensor) -> tuple[int, int]:
    """(parameters, MACs per image) by torch-pruning's counter."""
    import torch_pruning as tp

    macs, params = tp.utils.count_ops_and_params(model, example[:1])
    return int(params), int(macs)


@torch.no_grad()
def latency_ms(model: nn.Module, x: torch.Tensor, *, repeats: int = 20, warmup: int = 3) -> float:
    """Median milliseconds of one forward pass of ``x`` (a batch) through ``model`` in eval mode."""
    model.eval()
    cuda = x.device.type == "cuda"
    for _ in range(warmup):
        model(x)
    times = []
    for _ in range(repeats):
        if cuda:
            torch.cuda.synchronize(x.device)
        t0 = time.perf_counter()
        model(x)
        if cuda:
            torch.cuda.synchronize(x.device)
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def measure_efficiency(dense: nn.Module, compressed: nn.Module, x: torch.Tensor, *, repeats: int = 20, count_macs: bool = True) -> Efficiency:
    """Parameters, MACs and latency of both models on the batch ``x`` (on its device)."""
    pd, md = count_params_macs(dense, x)
    if count_macs:
        pc, mc = count_params_macs(compressed, x)
    else:
        pc, mc = sum(p.numel() for p in compressed.parameters()), None
    return Efficiency(params_dense=pd, params=pc, macs_dense=md, macs=mc, latency_ms_dense=latency_ms(dense, x, repeats=repeats),
                      latency_ms=latency_ms(compressed, x, repeats=repeats), batch=len(x), device=str(x.device), threads=torch.get_num_threads())
