"""The compressor family: one class per compression method behind :class:`Compressor`, registered
in :data:`COMPRESSORS` under its :class:`CompressorKind`. A spec reaches a compressor only through
:func:`compressor_for` (an unknown kind is an error naming the known ones).

A new compressor is one module here with one class that sets ``kind`` (a new
:class:`CompressorKind` member), ``levels`` and ``family``, implements ``compress`` and
``from_spec``, and is decorated with :func:`register_compressor`; import it below. The tests
parametrised over :data:`COMPRESSORS` then require it to reach its level.
"""

from .base import (COMPRESSORS, DEFAULT_FINETUNE_LR, DENSE_INFO, Compressed, CompressionInfo, Compressor, CompressorKind, Granularity, LevelKind,
                   ScaleRule, build_compressor, compressor_class, compressor_for, finetune_after, measured_sparsity, prunable, register_compressor)
from .prune import Pruner
from .quantize import FakeQuantWrapper, Quantizer, distinct_weight_values, zero_shares
from .random_precision import RandomPrecision
from .ptq import Int8PTQ, Int8PTQMeasured
from .structural import ChannelPruner
from .hydra import HydraPruner
from .efficiency import Efficiency

__all__ = ["COMPRESSORS", "DEFAULT_FINETUNE_LR", "DENSE_INFO", "Compressed", "CompressionInfo", "Compressor", "CompressorKind", "Granularity",
           "LevelKind", "ScaleRule", "build_compressor", "compressor_class", "compressor_for", "finetune_after", "measured_sparsity", "prunable",
           "register_compressor", "Pruner", "FakeQuantWrapper", "Quantizer", "distinct_weight_values", "zero_shares", "RandomPrecision", "Int8PTQ",
           "Int8PTQMeasured", "ChannelPruner", "HydraPruner", "Efficiency"]
