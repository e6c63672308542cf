"""The grid of a job, and the evaluation of one cell.

A cell is one seed × one compression setting (or the dense model of that seed); every attack and
epsilon of the spec, and the rigour checks, are measured on it. Dense models (and, for the dense
cells' transfer check, an independently trained surrogate) are trained once per seed before the
grid runs and cached on disk, so cells only load them. :func:`run_cell` is a pure function of the
spec and the cell and returns a typed :class:`CellResult` holding counts and per-image correctness
(so every comparison downstream is paired and exact). The local and the Dask executors call the
same code with the same number of torch threads (``threads``, default 1), so both give the same
numbers for the same seeds; with more threads, floating-point reductions may differ in the last bits.
"""

from __future__ import annotations

import base64
import os
import time
from functools import lru_cache

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict

from evidence.vocab import Attack, Norm, ThreatModel

from ..attacks import AttackName, AttackSpec, correct, craft, gradient_consistency, input_gradient_stats, model_to_attack
from ..checks import LARGE_EPS, CheckOutcome, Measurements, run_checks
from ..compress import DENSE_INFO, CompressionInfo, compressor_for
from ..train.datasets import load_split
from ..train.device import attack_autocast, configure, move_split, resolve_device
from .spec import DataSpec, JobSpec
from ..train.training import TrainConfig, cache_dir, train_model

__all__ = ["Cell", "plan", "split_for", "train_config", "dense_model", "surrogate_model", "run_cell", "CHECK_IMAGES", "CellResult",
           "AttackOutcome", "TrainRecord", "SURROGATE_SEED_OFFSET", "SQUARE_CHECK_QUERIES", "pack_bits", "unpack_bits"]

CHECK_IMAGES = 250
SURROGATE_SEED_OFFSET = 10_000  # the dense cells' transfer source: same recipe, seed + offset
SQUARE_CHECK_QUERIES = 1000  # the query check only flags a Square attack that beats the white-box one, so any budget is a real test


class Cell(BaseModel):
    """One seed × one compression setting; ``compression`` is the index into ``spec.compression``,
    ``None`` for the seed's dense model."""

    model_config = ConfigDict(frozen=True)

    seed: int
    compression: int | None = None
    level: float | None = None

    @property
    def dense(self) -> bool:
        return self.compression is None

    @property
    def key(self) -> str:
        if self.dense:
            return f"seed{self.seed}/dense"
        return f"seed{self.seed}/c{self.compression}/{self.level if self.level is not None else 'default'}"


def pack_bits(vec) -> str:
    """Per-image booleans as base64 of numpy.packbits (compact, exact)."""
    vec = vec.cpu().numpy() if isinstance(vec, torch.Tensor) else vec
    return base64.b64encode(np.packbits(np.asarray(vec, bool)).tobytes()).decode()


def unpack_bits(text: str, n: int) -> np.ndarray:
    return np.unpackbits(np.frombuffer(base64.b64decode(text), np.uint8))[:n].astype(bool)


class AttackOutcome(BaseModel):
    """One spec attack at one epsilon on all test images of a cell."""

    model_config = ConfigDict(frozen=True)

    attack: AttackName
    eps: float | None
    steps: int  # as the spec gave it (identity of the setting)
    restarts: int = 1
    real_steps: int | None  # iterations the attack really ran (AutoAttack standard: 100)
    queries: int | None
    label: str
    vocab: Attack
    norm: Norm
    threat_model: ThreatModel
    n_correct: int
    correct_bits: str


class TrainRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    cache: str
    cache_key: str
    weights_hash: str


class CellResult(BaseModel):
    """Everything a cell measured (stored whole in the job's cell table, read back through this model)."""

    model_config = ConfigDict(frozen=True)

    cell: Cell
    info: CompressionInfo
    train: TrainRecord
    n_test: int
    n_clean_correct: int
    clean_bits: str
    outcomes: list[AttackOutcome]
    check_images: int
    checks: list[CheckOutcome]
    possible_gradient_masking: bool
    grad_mean_abs: float | None = None
    grad_zero_fraction: float | None = None
    grad_consistency: float | None = None
    split: dict
    seconds: float
    runtime: dict = {}  # device, threads and deterministic flags (replicate/train/device.py Runtime.provenance())

    @property
    def key(self) -> str:
        return self.cell.key

    def correct_vector(self, outcome: AttackOutcome) -> np.ndarray:
        return unpack_bits(outcome.correct_bits, self.n_test)

    def clean_vector(self) -> np.ndarray:
        return unpack_bits(self.clean_bits, self.n_test)

    def failed_checks(self) -> list[str]:
        return [c.name for c in self.checks if c.informative and not c.passed]


def plan(spec: JobSpec) -> list[Cell]:
    cells = []
    for s in spec.seeds:
        cells.append(Cell(seed=s))
        for i, c in enumerate(spec.compression):
            for lvl in (c.levels or [None]):
                cells.append(Cell(seed=s, compression=i, level=lvl))
    return cells


@lru_cache(maxsize=4)
def _split(data_json: str):
    d = DataSpec.model_validate_json(data_json)
    return load_split(d.name, test_fraction=d.test_fraction, seed=d.split_seed, n_train=d.n_train, n_test=d.n_test)


@lru_cache(maxsize=2)
def _split_on(data_json: str, device: str):
    return move_split(_split(data_json), device)


def split_for(spec: JobSpec):
    """The spec's split, loaded once per process (a worker evaluates many cells of one job)."""
    return _split(spec.data.model_dump_json())


def train_config(spec: JobSpec) -> TrainConfig:
    t = spec.train
    return TrainConfig(epochs=t.epochs, lr=t.lr, batch_size=t.batch_size, adversarial=t.adversarial, adv_eps=t.adv_eps, adv_steps=t.adv_steps,
                       width=t.width, recipe=t.recipe.value, trades_beta=t.trades_beta)


_DENSE: dict = {}


def dense_model(spec: JobSpec, seed: int, split=None, progress=None):
    """The seed's trained dense model and its :class:`TrainRecord`: from this process's memory, the
    disk cache, or trained now. Callers never modify it (compressors work on copies)."""
    device = resolve_device(spec.device)
    key = (spec.data.model_dump_json(), spec.model, spec.train.model_dump_json(), seed, str(device), torch.get_num_threads())
    if key not in _DENSE:
        split = split or split_for(spec)
        if len(_DENSE) > 8:
            _DENSE.clear()
        model, rec = train_model(split, spec.model, train_config(spec), seed, progress=progress, device=device)
        _DENSE[key] = (model, TrainRecord(**rec))
    return _DENSE[key]


def surrogate_model(spec: JobSpec, seed: int, split=None, progress=None):
    """An independently trained dense model (seed + SURROGATE_SEED_OFFSET): the transfer source of the dense cells."""
    return dense_model(spec, seed + SURROGATE_SEED_OFFSET, split, progress)


def _transfer_examples(spec: JobSpec, source, source_name: str, a: AttackSpec, x, y, n_classes: int, seed: int) -> torch.Tensor:
    """PGD examples crafted on a source model: computed once and cached on disk for every cell."""
    path = cache_dir() / f"transfer-{spec.spec_hash()}-{source_name}-s{seed}-{a.eps}-{a.steps}-{a.restarts}-{len(y)}.pt"
    if path.exists():
        return torch.load(path, weights_only=True, map_location=x.device)
    x_adv = craft(source, AttackSpec(a.method.source_attack, a.eps, a.steps, a.restarts), x, y, n_classes=n_classes, seed=seed)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    torch.save(x_adv, tmp)
    os.replace(tmp, path)
    return x_adv


def _check_attacks(spec: JobSpec, nd: bool) -> tuple[dict[str, AttackSpec], list[AttackSpec]]:
    """The reference white-box settings (per norm) and the checks' extra attacks: PGD at eps 0.5 and
    random noise there, FGSM, the step-size and restart sweep (twice the steps at half the step,
    twice the step, 3 restarts), random noise, transfer and Square at the largest spec epsilon."""
    refs, extra = {}, []
    pgd = next((g for g in spec.attacks if g.name == AttackName.pgd and g.eps), None)
    linf_eps = [e for g in spec.attacks if g.name in (AttackName.pgd, AttackName.transfer, AttackName.fgsm) for e in g.eps]
    steps = pgd.steps if pgd else 10
    top = max(pgd.eps) if pgd else (max(linf_eps) if linf_eps else 0.1)
    ref = AttackSpec(AttackName.pgd, top, steps)
    refs["linf"] = ref
    q = 200 if spec.quick_mode else SQUARE_CHECK_QUERIES
    extra += [ref, AttackSpec(AttackName.pgd, LARGE_EPS, steps), AttackSpec(AttackName.noise, LARGE_EPS, restarts=10),
              AttackSpec(AttackName.fgsm, top, 1),
              AttackSpec(AttackName.pgd, top, 2 * steps, alpha=ref.step_size / 2), AttackSpec(AttackName.pgd, top, steps, alpha=2 * ref.step_size),
              AttackSpec(AttackName.pgd, top, steps, restarts=3), AttackSpec(AttackName.noise, top, restarts=10),
              AttackSpec(AttackName.transfer, top, steps), AttackSpec(AttackName.square, top, queries=q)]
    l2 = next((g for g in spec.attacks if g.name == AttackName.pgdl2 and g.eps), None)
    if l2:
        e2 = max(l2.eps)
        r2 = AttackSpec(AttackName.pgdl2, e2, l2.steps)
        refs["l2"] = r2
        extra += [r2, AttackSpec(AttackName.pgdl2, e2, 2 * l2.steps, alpha=r2.step_size / 2), AttackSpec(AttackName.pgdl2, e2, l2.steps, restarts=3),
                  AttackSpec(AttackName.noise_l2, e2, restarts=10)]
    return refs, extra


def run_cell(spec_json: str, cell: Cell, cancelled=None, threads: int = 1) -> CellResult:
    """Evaluate one cell: the spec's attacks on every test image (counts and per-image correctness),
    the rigour checks on the first ``CHECK_IMAGES`` test images, paired with the spec's attacks
    restricted to the same images."""
    spec = JobSpec.model_validate_json(spec_json)
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    try:
        rt = configure(spec.device, attack_mixed_precision=spec.attack_mixed_precision)
        split = _split_on(spec.data.model_dump_json(), rt.device) if rt.device != "cpu" else split_for(spec)
        dense, train = dense_model(spec, cell.seed, split)
        if cell.dense:
            model, attacked, info = dense, dense, DENSE_INFO
            source, source_name = surrogate_model(spec, cell.seed, split)[0], "surrogate"
        else:
            comp = compressor_for(spec.compression[cell.compression], cell.level, spec.train).compress(dense, split, cell.seed)
            model, attacked, info = comp.model, comp.attacked, comp.info
            source, source_name = dense, "dense"
        x, y = split.x_test, split.y_test
        nc = split.n_classes
        sub = min(CHECK_IMAGES, len(y))
        clean_vec = correct(model, x, y)
        meas = Measurements(n_classes=nc, clean=clean_vec[:sub].cpu().numpy(), non_differentiable=info.non_differentiable)
        outcomes: list[AttackOutcome] = []

        def measure(a: AttackSpec, xs, ys):
            if cancelled and cancelled():
                raise InterruptedError("job cancelled")
            if a.method.source_attack is not None:
                x_adv = _transfer_examples(spec, source, source_name, a, x, y, nc, cell.seed)[: len(ys)]
            else:
                with attack_autocast(rt):
                    x_adv = craft(model_to_attack(a, model, attacked), a, xs, ys, n_classes=nc, seed=cell.seed)
            return correct(model, x_adv, ys)

        for g in spec.attacks:
            for e in (g.eps or [None]):
                a = AttackSpec(g.name, e, g.steps, g.restarts, queries=g.queries, temperature=g.temperature, eot_samples=g.eot_samples)
                vec = measure(a, x, y)
                meas.add(a, vec[:sub].cpu().numpy())
                threat = info.threat_model if (a.threat_model == ThreatModel.white_box and info.non_differentiable) else a.threat_model
                outcomes.append(AttackOutcome(
                    attack=a.name, eps=e, steps=g.steps, restarts=g.restarts, real_steps=a.real_steps, queries=a.real_queries, label=a.label(),
                    vocab=a.vocab, norm=a.norm, threat_model=threat, n_correct=int(vec.sum()), correct_bits=pack_bits(vec)))
        checks, masking = [], False
        g = {"grad_mean_abs": None, "grad_zero_fraction": None}
        consistency = None
        if spec.checks:
            refs, extra = _check_attacks(spec, info.non_differentiable)
            meas.reference = refs
            for a in extra:
                if a.key not in meas.vectors:
                    meas.add(a, measure(a, x[:sub], y[:sub]).cpu().numpy())
            g = input_gradient_stats(attacked, x[:sub], y[:sub])
            consistency = gradient_consistency(attacked, x[:sub], y[:sub], radius=0.01, seed=cell.seed)
            meas.grad_mean_abs, meas.grad_zero_fraction, meas.grad_consistency = g["grad_mean_abs"], g["grad_zero_fraction"], consistency
            checks, masking = run_checks(meas)
        return CellResult(cell=cell, info=info, train=train, n_test=len(y), n_clean_correct=int(clean_vec.sum()), clean_bits=pack_bits(clean_vec),
                          outcomes=outcomes, check_images=sub, checks=checks, possible_gradient_masking=masking,
                          grad_mean_abs=g["grad_mean_abs"], grad_zero_fraction=g["grad_zero_fraction"], grad_consistency=consistency,
                          split=split.provenance(), seconds=time.perf_counter() - t0, runtime=rt.provenance())
    finally:
        torch.set_num_threads(saved)
