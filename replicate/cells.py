"""The grid of a job, and the evaluation of one cell.

A cell is one seed × one compression setting (or the dense model of that seed); every attack and
epsilon of the spec, and the rigour checks, are measured on it. Dense models are trained once per
seed before the grid runs (and cached on disk), so cells only load them. :func:`run_cell` is a pure
function of the spec and the cell: the local and the Dask executors call the same code, single-
threaded, so both give the same numbers for the same seeds.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from functools import lru_cache

import torch

from .attacks import AttackSpec, correct, craft, input_gradient_stats, model_to_attack
from .checks import LARGE_EPS, Measurements, run_checks
from .compression import build_compressor
from .datasets import load_split
from .spec import DataSpec, JobSpec
from .training import TrainConfig, cache_dir, train_model

__all__ = ["Cell", "plan", "split_for", "train_config", "dense_model", "run_cell", "CHECK_IMAGES"]

CHECK_IMAGES = 250


@dataclass(frozen=True)
class Cell:
    seed: int
    comp: int  # index into spec.compression; -1 for the dense model
    level: float | None

    @property
    def key(self) -> str:
        return f"seed{self.seed}/dense" if self.comp < 0 else f"seed{self.seed}/c{self.comp}/{self.level if self.level is not None else 'default'}"


def plan(spec: JobSpec) -> list[Cell]:
    cells = []
    for s in spec.seeds:
        cells.append(Cell(s, -1, None))
        for i, c in enumerate(spec.compression):
            for lvl in (c.levels or [None]):
                cells.append(Cell(s, i, lvl))
    return cells


@lru_cache(maxsize=4)
def _split(data_json: str):
    d = DataSpec.model_validate_json(data_json)
    return load_split(d.name, test_fraction=d.test_fraction, seed=d.split_seed, n_train=d.n_train, n_test=d.n_test)


def split_for(spec: JobSpec):
    """The spec's split, loaded once per process (a worker evaluates many cells of one job)."""
    return _split(spec.data.model_dump_json())


def train_config(spec: JobSpec) -> TrainConfig:
    t = spec.train
    return TrainConfig(epochs=t.epochs, lr=t.lr, batch_size=t.batch_size, adversarial=t.adversarial, adv_eps=t.adv_eps, adv_steps=t.adv_steps)


_DENSE: dict = {}


def dense_model(spec: JobSpec, seed: int, split=None, progress=None):
    """The seed's trained dense model: from this process's memory, the disk cache, or trained now.
    Callers never modify it (compressors work on copies)."""
    key = (spec.data.model_dump_json(), spec.model, spec.train.model_dump_json(), seed)
    if key not in _DENSE:
        split = split or split_for(spec)
        if len(_DENSE) > 8:
            _DENSE.clear()
        _DENSE[key] = train_model(split, spec.model, train_config(spec), seed, progress=progress)
    return _DENSE[key]


def _compressor(spec: JobSpec, cell: Cell):
    c = spec.compression[cell.comp]
    if c.kind == "prune":
        return build_compressor("prune", method=c.method, amount=float(cell.level), iterations=c.iterations, finetune=c.finetune,
                                finetune_epochs=c.finetune_epochs, adv_eps=spec.train.adv_eps)
    if c.kind == "quantize":
        return build_compressor("quantize", bits=int(cell.level), act_bits=c.act_bits, qat_epochs=c.qat_epochs,
                                adversarial=spec.train.adversarial, adv_eps=spec.train.adv_eps)
    return build_compressor("int8")


def _transfer_examples(spec: JobSpec, dense, a: AttackSpec, x, y, n_classes: int, seed: int) -> torch.Tensor:
    """PGD examples crafted on a seed's dense model: computed once and cached on disk for every cell."""
    path = cache_dir() / f"transfer-{spec.spec_hash()}-s{seed}-{a.eps}-{a.steps}-{len(y)}.pt"
    if path.exists():
        return torch.load(path, weights_only=True)
    x_adv = craft(dense, AttackSpec("pgd", a.eps, a.steps, a.restarts), x, y, n_classes=n_classes, seed=seed)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    torch.save(x_adv, tmp)
    os.replace(tmp, path)
    return x_adv


def run_cell(spec_json: str, cell: Cell, cancelled=None, threads: int = 1) -> dict:
    """Evaluate one cell; returns a JSON-serialisable payload (measurements, checks, timings).

    The spec's attacks are measured on every test image. The rigour checks' extra attacks (PGD at
    eps 0.5, FGSM, PGD with twice the steps, transfer, Square on a non-differentiable model) run on
    the first ``CHECK_IMAGES`` test images, and are compared with the spec's attacks restricted to
    the same images (per-image correctness is kept), so every comparison is paired.
    """
    spec = JobSpec.model_validate_json(spec_json)
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    try:
        split = split_for(spec)
        dense, train_info = dense_model(spec, cell.seed, split)
        if cell.comp < 0:
            model, attacked, info = dense, dense, {"method": "dense (uncompressed)", "family": None, "sparsity": 0.0, "bits": None,
                                                   "attacked_model": "the dense model"}
        else:
            comp = _compressor(spec, cell).compress(dense, split, cell.seed)
            model, attacked, info = comp.model, comp.attacked, comp.info
        x, y = split.x_test, split.y_test
        nc = split.n_classes
        nd = bool(info.get("non_differentiable"))
        sub = min(CHECK_IMAGES, len(y))
        clean_vec = correct(model, x, y)
        meas = Measurements(n=sub, n_classes=nc, clean=100.0 * float(clean_vec[:sub].float().mean()), non_differentiable=nd)
        rows = []

        def measure(a: AttackSpec, check_only: bool):
            if cancelled and cancelled():
                raise InterruptedError("job cancelled")
            if a.name == "transfer" and cell.comp < 0:
                return  # transfer from the dense model to itself is the white-box attack
            xs, ys = (x[:sub], y[:sub]) if check_only else (x, y)
            if a.name == "transfer":
                x_adv = _transfer_examples(spec, dense, a, x, y, nc, cell.seed)[: len(ys)]
            else:
                x_adv = craft(model_to_attack(a, model, attacked), a, xs, ys, n_classes=nc, seed=cell.seed)
            vec = correct(model, x_adv, ys)
            meas.acc[(a.name, a.eps, a.steps)] = 100.0 * float(vec[:sub].float().mean())
            if not check_only:
                rows.append({"attack": a.name, "eps": a.eps, "steps": a.steps, "acc": 100.0 * float(vec.float().mean()), "label": a.label(),
                             "threat": a.threat_model, "norm": a.norm, "enum": a.enum, "check_only": False})

        for g in spec.attacks:
            for e in (g.eps or [None]):
                measure(AttackSpec(g.name, e, g.steps, g.restarts, queries=g.queries), False)
        checks, masking = [], None
        if spec.checks:
            linf = [e for g in spec.attacks if g.name in ("pgd", "transfer", "fgsm") for e in g.eps]
            steps = next((g.steps for g in spec.attacks if g.name == "pgd"), 10)
            top = max(linf) if linf else 0.1
            for a in (AttackSpec("pgd", LARGE_EPS, 5), AttackSpec("pgd", top, steps), AttackSpec("fgsm", top),
                      AttackSpec("pgd", top, 2 * steps), AttackSpec("transfer", top, steps)):
                if (a.name, a.eps, a.steps) not in meas.acc and not (a.name == "pgd" and a.eps == LARGE_EPS and meas.get("pgd", LARGE_EPS) is not None):
                    measure(a, True)
            if nd:
                measure(AttackSpec("square", top, queries=200 if spec.quick_mode else 400), True)
            g = input_gradient_stats(attacked, x[:256], y[:256])
            meas.grad_mean_abs, meas.grad_zero_fraction = g["grad_mean_abs"], g["grad_zero_fraction"]
            checks, masking = run_checks(meas)
        return {"cell": cell.key, "seed": cell.seed, "comp": cell.comp, "level": cell.level, "info": info, "train": train_info,
                "clean": 100.0 * float(clean_vec.float().mean()), "n_test": len(y), "check_images": sub, "measurements": rows,
                "checks": checks, "possible_gradient_masking": masking, "grad": {"mean_abs": meas.grad_mean_abs, "zero_fraction": meas.grad_zero_fraction},
                "split": split.provenance(), "seconds": time.perf_counter() - t0, "cell_def": asdict(cell)}
    finally:
        torch.set_num_threads(saved)
