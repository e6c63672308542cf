"""CIFAR-10 and SVHN from folders the user already has, read safely, with their official splits.

Nothing is downloaded. ``crev replicate data add cifar10 PATH`` checks a folder and records it in a
small registry (``$CREV_DATA_REGISTRY``, default ``<user config dir>/crev/datasets.json``); the
loaders look at the environment variable (``CREV_CIFAR10`` / ``CREV_SVHN``), then the registry,
then ``~/.crev/data/<default folder>``.

- CIFAR-10, "python version" (Krizhevsky 2009, https://www.cs.toronto.edu/~kriz/cifar.html):
  ``data_batch_1..5`` and ``test_batch`` are pickles. A pickle can run any code it names, so they
  are read with :class:`CifarUnpickler`, which resolves only the three globals a numpy array needs
  (``numpy.core.multiarray._reconstruct``, ``numpy.ndarray``, ``numpy.dtype``), plus
  ``_codecs.encode(str, "latin1")`` (how Python 3 writes bytes at protocol 2), and refuses every
  other global; the result must then have the documented layout (a dict with ``data``: uint8
  N × 3072 and ``labels``: N ints in 0..9), or the file is refused with its name and the reason.
- SVHN cropped digits, format 2 (Netzer et al. 2011, http://ufldl.stanford.edu/housenumbers/):
  ``train_32x32.mat`` / ``test_32x32.mat`` (MATLAB v5, read by ``scipy.io.loadmat``: no pickle),
  ``X`` 32 × 32 × 3 × N uint8 and ``y`` N × 1 with labels 1..10, where 10 is the digit 0.

Both keep the official test set (``is_test``): a sceptical reader compares a CIFAR-10 number with
the literature only if it was measured on the 10,000 official test images, not a re-split.
"""

from __future__ import annotations

import io
import json
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evidence.files import MAX_FILE_BYTES, FileRefused, read_regular_file

from .datasets import DatasetError

__all__ = ["LocalArrays", "CifarUnpickler", "read_cifar_batch", "load_cifar10", "load_svhn", "LOCAL_DATASETS", "registry_path",
           "registered_folders", "add_local_dataset", "local_folder"]


@dataclass(frozen=True)
class LocalArrays:
    """Images (N, C, H, W) float32 in [0, 1], labels (N,) int64 and the official test mask."""

    x: np.ndarray
    y: np.ndarray
    is_test: np.ndarray

    def as_tuple(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.x, self.y, self.is_test


def _numpy_globals() -> dict[tuple[str, str], object]:
    try:
        from numpy._core.multiarray import _reconstruct  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct
    return {(mod, "_reconstruct"): _reconstruct for mod in ("numpy.core.multiarray", "numpy._core.multiarray")} | {
        ("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype, ("_codecs", "encode"): _latin1_bytes}


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    """What Python 3 writes for a ``bytes`` object at pickle protocol <= 2 (``_codecs.encode(s, "latin1")``),
    limited to exactly that: a string turned into bytes, nothing else."""
    if not isinstance(text, str) or encoding != "latin1":
        raise pickle.UnpicklingError("_codecs.encode is allowed only as encode(str, 'latin1')")
    return text.encode("latin1")


class CifarUnpickler(pickle.Unpickler):
    """An unpickler that builds only dicts, lists, bytes, ints and numpy arrays.

    ``find_class`` is the one place a pickle can name code to run (``os.system``, ``builtins.eval``,
    ...); here it returns the three numpy globals an array needs and refuses everything else
    (the approach of the Python docs' "Restricting Globals").
    """

    _ALLOWED = _numpy_globals()

    def find_class(self, module: str, name: str):
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR-10 batch") from None


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 batch file: images (N, 3, 32, 32) uint8 and labels (N,), checked."""
    path = Path(path)
    try:  # a regular file of at most 256 MiB (a batch is 31 MB): /dev/zero or a FIFO is refused, not read
        raw = read_regular_file(path, limit=MAX_FILE_BYTES, what="CIFAR-10 batch")
    except FileRefused as exc:
        raise DatasetError(f"cifar10: {exc}") from None
    try:
        d = CifarUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise DatasetError(f"cifar10: {path}: refused: {exc}") from None
    if not isinstance(d, dict):
        raise DatasetError(f"cifar10: {path}: refused: expected a dict, found {type(d).__name__}")
    d = {(k.decode() if isinstance(k, bytes) else k): v for k, v in d.items()}
    data, labels = d.get("data"), d.get("labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DatasetError(f"cifar10: {path}: field data: expected a uint8 array of N x 3072, found {got}")
    if not isinstance(labels, list) or len(labels) != len(data) or not all(isinstance(v, int) and 0 <= v <= 9 for v in labels):
        raise DatasetError(f"cifar10: {path}: field labels: expected {len(data)} integers in 0..9")
    return data.reshape(-1, 3, 32, 32), np.asarray(labels, dtype=np.int64)


def load_cifar10(folder: Path) -> LocalArrays:
    """The CIFAR-10 python batches in ``folder`` (``data_batch_*`` train, ``test_batch`` test)."""
    folder = Path(folder)
    train = sorted(folder.glob("data_batch_*"))
    test = folder / "test_batch"
    if not train or not test.exists():
        raise DatasetError(f"cifar10: {folder} needs data_batch_1..5 and test_batch (the python version of CIFAR-10, "
                           "cifar-10-python.tar.gz, unpacked)")
    parts = [read_cifar_batch(p) for p in train] + [read_cifar_batch(test)]
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    is_test = np.zeros(len(y), dtype=bool)
    is_test[len(y) - len(parts[-1][1]):] = True
    return LocalArrays((x / np.float32(255.0)).astype(np.float32), y, is_test)


def _read_svhn(path: Path) -> tuple[np.ndarray, np.ndarray]:
    from scipy.io import loadmat

    try:  # a regular file of at most 256 MiB (train_32x32.mat is 182 MB): a FIFO or /dev/zero is refused, not read
        m = loadmat(io.BytesIO(read_regular_file(path, limit=MAX_FILE_BYTES, what="SVHN .mat file")))
    except FileRefused as exc:
        raise DatasetError(f"svhn: {exc}") from None
    except (ValueError, OSError, NotImplementedError) as exc:
        raise DatasetError(f"svhn: {path}: not a MATLAB v5 file: {exc}") from None
    x, y = m.get("X"), m.get("y")
    if not isinstance(x, np.ndarray) or x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.dtype != np.uint8:
        raise DatasetError(f"svhn: {path}: field X: expected uint8 32 x 32 x 3 x N, found {getattr(x, 'shape', None)}")
    if not isinstance(y, np.ndarray) or y.size != x.shape[3] or y.min() < 1 or y.max() > 10:
        raise DatasetError(f"svhn: {path}: field y: expected {x.shape[3]} labels in 1..10")
    labels = y.reshape(-1).astype(np.int64) % 10  # SVHN stores the digit 0 as label 10
    return np.ascontiguousarray(x.transpose(3, 2, 0, 1)), labels


def load_svhn(folder: Path) -> LocalArrays:
    """SVHN format 2 (``train_32x32.mat``, ``test_32x32.mat``; ``extra`` is not used)."""
    folder = Path(folder)
    tr, te = folder / "train_32x32.mat", folder / "test_32x32.mat"
    if not tr.exists() or not te.exists():
        raise DatasetError(f"svhn: {folder} needs train_32x32.mat and test_32x32.mat (SVHN format 2)")
    (x1, y1), (x2, y2) = _read_svhn(tr), _read_svhn(te)
    is_test = np.r_[np.zeros(len(y1), bool), np.ones(len(y2), bool)]
    return LocalArrays((np.concatenate([x1, x2]) / np.float32(255.0)).astype(np.float32), np.r_[y1, y2], is_test)


# name -> (environment variable, default folder under ~/.crev/data, loader)
LOCAL_DATASETS = {"cifar10": ("CREV_CIFAR10", "cifar-10-batches-py", load_cifar10), "svhn": ("CREV_SVHN", "svhn", load_svhn)}


def registry_path() -> Path:
    env = os.environ.get("CREV_DATA_REGISTRY")
    if env:
        return Path(env)
    from platformdirs import user_config_dir

    return Path(user_config_dir("crev", appauthor=False)) / "datasets.json"


def registered_folders() -> dict[str, str]:
    path = registry_path()
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: the dataset registry is not valid JSON ({exc}); fix or delete it") from None
    return {str(k): str(v) for k, v in data.items()}


def add_local_dataset(name: str, folder: str | Path) -> LocalArrays:
    """Check that ``folder`` holds ``name`` in its standard layout and record it; returns what was read.

    The folder is read in full before it is recorded, so a wrong or tampered folder is refused now
    rather than in the middle of a job. Nothing is copied.
    """
    if name not in LOCAL_DATASETS:
        raise DatasetError(f"unknown local dataset {name!r}; known: {', '.join(LOCAL_DATASETS)}")
    folder = Path(folder).expanduser().resolve()
    if not folder.is_dir():
        raise DatasetError(f"{name}: {folder} is not a folder")
    arrays = LOCAL_DATASETS[name][2](folder)
    path = registry_path()
    reg = registered_folders()
    reg[name] = str(folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(reg, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)
    return arrays


def local_folder(name: str) -> Path:
    """Where ``name`` is read from: its environment variable, the registry, or the default folder."""
    env, default, _ = LOCAL_DATASETS[name]
    if os.environ.get(env):
        return Path(os.environ[env])
    reg = registered_folders()
    if name in reg:
        return Path(reg[name])
    folder = Path.home() / ".crev" / "data" / default
    if not folder.exists():
        raise DatasetError(f"{name}: no local copy (set {env}, or run: crev replicate data add {name} PATH); "
                           "nothing is downloaded at run time")
    return folder
