"""int8 post-training quantization with its measured latency beside its robustness, per-channel or
per-tensor, optionally mixed precision (chosen layers kept in float32).

Two compressors: :class:`Int8PTQ` (kind ``int8``: PyTorch's default int8 settings) and
:class:`Int8PTQMeasured` (kind ``int8_ptq``), which extends it (PyTorch ``torch.ao.quantization`` FX graph mode, x86
/ fbgemm kernels; Jacob et al. 2018, "Quantization and training of neural networks for efficient
integer-arithmetic-only inference", CVPR) with:

- granularity: per-channel weight scales (``default_per_channel_qconfig``, what the x86 backend
  uses by default) or one scale per tensor (``default_qconfig``);
- mixed precision: modules named in ``keep_float`` (commonly the first conv and the classifier,
  the layers most sensitive to quantization; Zhou et al. 2016, DoReFa-Net) get no qconfig and run
  in float32 between dequantize/quantize stubs;
- measured latency of the float and the int8 model on the CPU (int8 kernels exist only there), the
  median of repeated forward passes of one batch, with the thread count recorded.

Attacks: as in the parent class, gradient attacks are crafted on an 8-bit fake-quantized twin (same
granularity) and evaluated on the int8 model (a transfer attack, threat model ``transfer``); the
twin's agreement with the int8 model is measured. On a GPU run the int8 model is evaluated on the
CPU through :class:`replicate.train.device.OnCPU` (inputs moved there and outputs back).

Why FX graph mode and not torchao's pt2e flow (measured 2026-12 with torch 2.13.0+cpu and torchao
0.18.0, the release built for it, installed with ``--no-deps``; LeNet on digits, 2 threads, batch 128):
``torch.export`` + ``prepare_pt2e``/``convert_pt2e`` with ``X86InductorQuantizer`` works and gives the
same test accuracy (96.0 %) and the same prediction on every test image as the FX model, but the
converted model is a graph of quantize/dequantize ops around float convolutions: in eager mode it
runs 161 ms per batch against 18 ms for float32 and 17 ms for the FX int8 kernels. Integer kernels
come only from ``torch.compile`` (Inductor and a C++ compiler): 81 s of compilation per model and
no faster here. The ``int8_ptq`` rows record int8 latency, so the move would replace measured int8
kernels with a simulation or add minutes to every cell; FX stays until pt2e runs integer kernels
without compilation (the FX API still exists in torch 2.13 and warns that it is deprecated).
"""

from __future__ import annotations

import contextlib
import copy

import torch

from evidence.vocab import CompressionFamily, ThreatModel

from ..train.device import OnCPU
from .base import Compressed, CompressionInfo, Compressor, CompressorKind, Granularity, ScaleRule, register_compressor
from .efficiency import Efficiency, count_params_macs, latency_ms
from .quantize import Quantizer

__all__ = ["Int8PTQ", "Int8PTQMeasured", "qconfig_mapping"]


@contextlib.contextmanager
def _nondeterministic_ok():
    was, warn = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(False)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was, warn_only=warn)


def qconfig_mapping(granularity: Granularity, keep_float: tuple[str, ...] = ()):
    """The torch.ao qconfig mapping: int8 everywhere at ``granularity``, float32 for ``keep_float``."""
    from torch.ao.quantization import QConfigMapping, default_per_channel_qconfig, default_qconfig, get_default_qconfig_mapping

    engine = torch.backends.quantized.engine
    if granularity is Granularity.per_channel:
        mapping = get_default_qconfig_mapping(engine).set_global(default_per_channel_qconfig)
    else:
        mapping = QConfigMapping().set_global(default_qconfig)
    for name in keep_float:
        mapping = mapping.set_module_name(name, None)
    return mapping


@register_compressor
class Int8PTQ(Compressor):
    """PyTorch int8 post-training quantization (``torch.ao.quantization``, FX, x86/fbgemm backend).

    The converted model is evaluated; gradient attacks are crafted on its 8-bit fake-quantized twin
    (per-tensor, max scaling, 8-bit activations) and evaluated on the int8 model: a transfer attack,
    recorded with threat model ``transfer``. ``twin_agreement`` is the measured share of test images
    on which twin and int8 model predict the same class.
    """

    family = CompressionFamily.quantization
    kind = CompressorKind.int8

    @classmethod
    def from_spec(cls, c, level, train):
        return cls()

    def describe(self) -> str:
        return "PyTorch int8 post-training quantization (FX graph mode, x86 backend); gradient attacks transferred from its 8-bit fake-quantized twin"

    def compress(self, dense, split, seed):
        from torch.ao.quantization import get_default_qconfig_mapping
        from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

        torch.backends.quantized.engine = "x86" if "x86" in torch.backends.quantized.supported_engines else "fbgemm"
        example = split.x_train[:8].cpu()  # int8 kernels run on the CPU only (OnCPU wraps them for a GPU run)
        prepared = prepare_fx(copy.deepcopy(dense).cpu().eval(), get_default_qconfig_mapping(torch.backends.quantized.engine), (example,))
        with torch.no_grad():
            prepared(split.x_train[:512].cpu())
        int8 = convert_fx(prepared).eval()
        twin = Quantizer(bits=8, act_bits=8, granularity=Granularity.per_tensor, rule=ScaleRule.max).compress(dense, split, seed).model
        with torch.no_grad():
            agree = int((int8(split.x_test.cpu()).argmax(1) == twin(split.x_test).argmax(1).cpu()).sum()) / len(split.y_test)
        if split.x_test.device.type != "cpu":
            int8 = OnCPU(int8)
        return Compressed(int8, twin, CompressionInfo(
            method=self.describe(), family=self.family, level_text="8-bit (int8)", bits=8,
            attacked_model="8-bit fake-quantized twin (float, straight-through); adversarial examples evaluated on the int8 model",
            threat_model=ThreatModel.transfer, twin_agreement=agree, non_differentiable=True))


@register_compressor
class Int8PTQMeasured(Int8PTQ):
    """int8 PTQ with a chosen weight granularity, optional float32 layers, and measured latency."""

    kind = CompressorKind.int8_ptq

    @classmethod
    def from_spec(cls, c, level, train):
        return cls(granularity=c.granularity, keep_float=tuple(c.keep_float))

    def __init__(self, granularity: Granularity | str = Granularity.per_channel, keep_float: tuple[str, ...] | list[str] = (),
                 latency_batch: int = 128, calibration_images: int = 512):
        self.granularity = Granularity(granularity)
        self.keep_float = tuple(keep_float)
        self.latency_batch, self.calibration_images = latency_batch, calibration_images

    def describe(self) -> str:
        mixed = f"; float32 kept for {', '.join(self.keep_float)} (mixed precision)" if self.keep_float else ""
        return (f"PyTorch int8 post-training quantization (torch.ao FX, x86 backend, {self.granularity.value.replace('_', '-')} weight "
                f"scales, calibrated on {self.calibration_images} training images){mixed}; gradient attacks transferred from its "
                "8-bit fake-quantized twin")

    def compress(self, dense, split, seed):
        from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

        torch.backends.quantized.engine = "x86" if "x86" in torch.backends.quantized.supported_engines else "fbgemm"
        dev = next(dense.parameters()).device
        names = dict(dense.named_modules())
        unknown = [n for n in self.keep_float if n not in names]
        if unknown:
            raise ValueError(f"keep_float: no module named {', '.join(unknown)} (modules: {', '.join(n for n in names if n)[:300]})")
        cpu_dense = copy.deepcopy(dense).cpu().eval()
        calib = split.x_train[: self.calibration_images].cpu()
        prepared = prepare_fx(copy.deepcopy(cpu_dense), qconfig_mapping(self.granularity, self.keep_float), (calib[:8],))
        with torch.no_grad():
            prepared(calib)
        int8 = convert_fx(prepared).eval()
        twin = Quantizer(bits=8, act_bits=8, granularity=self.granularity, rule=ScaleRule.max).compress(dense, split, seed).model
        x_test = split.x_test.cpu()
        with torch.no_grad():
            agree = int((int8(x_test).argmax(1) == twin.cpu()(x_test).argmax(1)).sum()) / len(split.y_test)
        twin.to(dev)
        batch = x_test[: self.latency_batch]
        params, macs = count_params_macs(cpu_dense, batch)
        with _nondeterministic_ok():  # timing only: quantized kernels warn on every call under deterministic mode
            t_dense, t_int8 = latency_ms(cpu_dense, batch), latency_ms(int8, batch)
        eff = Efficiency(params_dense=params, params=params, macs_dense=macs, macs=macs, latency_ms_dense=t_dense, latency_ms=t_int8,
                         batch=len(batch), device="cpu", threads=torch.get_num_threads())
        evaluated = int8 if dev.type == "cpu" else OnCPU(int8)
        return Compressed(evaluated, twin, CompressionInfo(
            method=self.describe() + f"; measured on the CPU: int8 {eff.latency_ms:.2f} ms vs float32 {eff.latency_ms_dense:.2f} ms per batch of "
            f"{eff.batch} ({eff.speedup:.2f} x, {eff.threads} threads); same number of weights at a quarter of the bytes",
            family=self.family, level_text="8-bit (int8)" + (" mixed" if self.keep_float else ""), bits=8, granularity=self.granularity,
            attacked_model="8-bit fake-quantized twin (float, straight-through); adversarial examples evaluated on the int8 model",
            threat_model=ThreatModel.transfer, twin_agreement=agree, non_differentiable=True, efficiency=eff))
