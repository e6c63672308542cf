"""Models and their training: data sets (registry :data:`DATASETS`; local folders in
:mod:`replicate.train.local_data`), architectures (registry :data:`MODELS`; the CIFAR-scale ones in
:mod:`replicate.train.archs`), training and its recipes, and the device a run uses.

A new data set is one loader registered with :func:`register_dataset` (or a local folder format in
``local_data.py``); a new architecture joins :class:`ModelName` and :func:`build_model`.
"""

from .datasets import DATASETS, DatasetError, Split, load_split, register_dataset
from .device import DeviceError, DeviceKind, OnCPU, Runtime, attack_autocast, configure, move_split, resolve_device
from .models import MODELS, ModelName, build_model
from .recipes import Recipe, finetune
from .training import (CODE_VERSION, TrainConfig, accuracy, cache_dir, fit, package_version, pgd_perturb, seed_everything, torch_threads,
                       train_model, weights_hash)

__all__ = ["DATASETS", "DatasetError", "Split", "load_split", "register_dataset", "DeviceError", "DeviceKind", "OnCPU", "Runtime",
           "attack_autocast", "configure", "move_split", "resolve_device", "MODELS", "ModelName", "build_model", "Recipe", "finetune", "CODE_VERSION",
           "TrainConfig", "accuracy", "cache_dir", "fit", "package_version", "pgd_perturb", "seed_everything", "torch_threads", "train_model",
           "weights_hash"]
