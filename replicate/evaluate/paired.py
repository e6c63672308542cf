"""Paired evaluation of a dense model and its compressed child on the same test images.

Both models see the same images, the same attacks and the same seeds, so every comparison is
paired: per attack, the exact counts of images each model classifies correctly, and the discordant
images (robust under the dense model only, under the compressed model only) that McNemar's exact
test reads (McNemar 1947; Agresti 2013, *Categorical Data Analysis* §10.1). The rigour checks of
:mod:`replicate.checks` run on each model on the first ``CHECK_IMAGES`` images (Carlini et al. 2019,
"On Evaluating Adversarial Robustness", §5; Athalye, Carlini & Wagner 2018): a reference PGD at the
evaluated epsilon and its step/restart sweep, PGD and random noise at a large epsilon, FGSM, noise
at epsilon, Square (score-based, Andriushchenko et al. 2020) and a transfer attack crafted on the
*other* model of the pair, plus the input-gradient statistics. Parameters, MACs and latency come from
:mod:`replicate.compress.efficiency`, measured in this process.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from evidence.vocab import Norm

from ..attacks import AttackName, AttackSpec, correct, craft, gradient_consistency, input_gradient_stats, model_to_attack
from ..checks import LARGE_EPS, CheckOutcome, Measurements, run_checks
from ..compress.efficiency import count_params_macs, latency_ms
from ..jobs.cells import CHECK_IMAGES, SQUARE_CHECK_QUERIES, AttackOutcome, pack_bits, unpack_bits
from ..train.datasets import Split
from ..train.device import Runtime, attack_autocast

__all__ = ["ModelEvaluation", "PairEvaluation", "ModelCost", "evaluate_pair", "check_attacks", "REFERENCE_STEPS"]

REFERENCE_STEPS = 20  # the rigour checks' reference PGD (its sweep runs 40 steps and 3 restarts)


class ModelCost(BaseModel):
    """Measured size and speed of one model (torch-pruning's counter; median latency of a batch)."""

    model_config = ConfigDict(frozen=True)

    params: int
    params_nonzero: int
    macs: int | None  # None: not countable (torch-pruning cannot trace a TorchScript or exported graph)
    latency_ms: float
    batch: int
    device: str
    threads: int


class ModelEvaluation(BaseModel):
    """One model's clean and robust per-image correctness, its rigour checks and its cost."""

    model_config = ConfigDict(frozen=True)

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
    cost: ModelCost
    seconds: float

    def clean_vector(self) -> np.ndarray:
        return unpack_bits(self.clean_bits, self.n_test)

    def vector(self, outcome: AttackOutcome) -> np.ndarray:
        return unpack_bits(outcome.correct_bits, self.n_test)

    def failed_checks(self) -> list[str]:
        return [c.name for c in self.checks if c.informative and not c.passed]


class PairEvaluation(BaseModel):
    """Both models of a pair, evaluated on the same images (``split`` is the split's provenance)."""

    model_config = ConfigDict(frozen=True)

    dense: ModelEvaluation
    compressed: ModelEvaluation
    split: dict
    runtime: dict
    seed: int

    def paired_counts(self, i: int) -> dict[str, int]:
        """The results table's exact counts for the ``i``-th attack (the field names of ``evidence.Result``)."""
        d, c = self.dense, self.compressed
        vd, vc = d.vector(d.outcomes[i]), c.vector(c.outcomes[i])
        return {"n_test": d.n_test, "n_clean_correct_dense": d.n_clean_correct, "n_robust_correct_dense": int(vd.sum()),
                "n_clean_correct_compressed": c.n_clean_correct, "n_robust_correct_compressed": int(vc.sum()),
                "n_robust_dense_only": int((vd & ~vc).sum()), "n_robust_compressed_only": int((~vd & vc).sum())}


def check_attacks(norm: Norm, eps: float) -> tuple[dict[str, AttackSpec], list[AttackSpec]]:
    """The reference setting per norm and the checks' attacks at the evaluated ``eps`` (see the module text)."""
    extra = [AttackSpec(AttackName.pgd, LARGE_EPS, REFERENCE_STEPS), AttackSpec(AttackName.noise, LARGE_EPS, restarts=10)]
    if norm == Norm.l2:
        ref = AttackSpec(AttackName.pgdl2, eps, REFERENCE_STEPS)
        extra += [ref, AttackSpec(AttackName.pgdl2, eps, 2 * REFERENCE_STEPS, alpha=ref.step_size / 2),
                  AttackSpec(AttackName.pgdl2, eps, REFERENCE_STEPS, restarts=3), AttackSpec(AttackName.noise_l2, eps, restarts=10)]
        return {"l2": ref}, extra
    ref = AttackSpec(AttackName.pgd, eps, REFERENCE_STEPS)
    extra += [ref, AttackSpec(AttackName.fgsm, eps, 1), AttackSpec(AttackName.pgd, eps, 2 * REFERENCE_STEPS, alpha=ref.step_size / 2),
              AttackSpec(AttackName.pgd, eps, REFERENCE_STEPS, alpha=2 * ref.step_size), AttackSpec(AttackName.pgd, eps, REFERENCE_STEPS, restarts=3),
              AttackSpec(AttackName.noise, eps, restarts=10), AttackSpec(AttackName.transfer, eps, REFERENCE_STEPS),
              AttackSpec(AttackName.square, eps, queries=SQUARE_CHECK_QUERIES)]
    return {"linf": ref}, extra


def _cost(model: nn.Module, x: torch.Tensor, batch: int) -> ModelCost:
    xb = x[:batch]
    try:
        params, macs = count_params_macs(model, xb)
    except Exception:  # noqa: BLE001 - torch-pruning traces eager modules only; a scripted or exported graph is not countable
        params, macs = sum(p.numel() for p in model.parameters()), None
    nonzero = int(sum(int((p != 0).sum()) for p in model.parameters()))
    return ModelCost(params=params, params_nonzero=nonzero, macs=macs, latency_ms=latency_ms(model, xb), batch=len(xb), device=str(x.device),
                     threads=torch.get_num_threads())


def _evaluate(model: nn.Module, other: nn.Module, attacks: list[AttackSpec], x, y, n_classes: int, seed: int, rt: Runtime, checks: bool,
              batch: int) -> ModelEvaluation:
    t0 = time.perf_counter()
    model.eval()
    sub = min(CHECK_IMAGES, len(y))
    clean = correct(model, x, y)
    meas = Measurements(n_classes=n_classes, clean=clean[:sub].numpy())

    def measure(a: AttackSpec, xs, ys):
        with attack_autocast(rt):
            x_adv = craft(model_to_attack(a, model, source=other), a, xs, ys, n_classes=n_classes, seed=seed)
        return correct(model, x_adv, ys)

    outcomes = []
    for a in attacks:
        vec = measure(a, x, y)
        meas.add(a, vec[:sub].numpy())
        outcomes.append(AttackOutcome(attack=a.name, eps=a.eps, steps=a.steps, restarts=a.restarts, real_steps=a.real_steps, queries=a.real_queries,
                                      label=a.label(), vocab=a.vocab, norm=a.norm, threat_model=a.threat_model, n_correct=int(vec.sum()),
                                      correct_bits=pack_bits(vec)))
    outs, masking, g, consistency = [], False, {"grad_mean_abs": None, "grad_zero_fraction": None}, None
    if checks:
        refs, extra = check_attacks(attacks[0].norm, attacks[0].eps)
        meas.reference = refs
        for a in extra:
            if a.key not in meas.vectors:
                meas.add(a, measure(a, x[:sub], y[:sub]).numpy())
        g = input_gradient_stats(model, x[:sub], y[:sub])
        consistency = gradient_consistency(model, x[:sub], y[:sub], radius=0.01, seed=seed)
        meas.grad_mean_abs, meas.grad_zero_fraction, meas.grad_consistency = g["grad_mean_abs"], g["grad_zero_fraction"], consistency
        outs, masking = run_checks(meas)
    return ModelEvaluation(n_test=len(y), n_clean_correct=int(clean.sum()), clean_bits=pack_bits(clean), outcomes=outcomes, check_images=sub,
                           checks=outs, possible_gradient_masking=masking, grad_mean_abs=g["grad_mean_abs"], grad_zero_fraction=g["grad_zero_fraction"],
                           grad_consistency=consistency, cost=_cost(model, x, batch), seconds=time.perf_counter() - t0)


def evaluate_pair(dense: nn.Module, compressed: nn.Module, split: Split, attacks: list[AttackSpec], rt: Runtime, *, seed: int = 0,
                  checks: bool = True, latency_batch: int = 128) -> PairEvaluation:
    """Evaluate both models on ``split``'s test images (already on ``rt``'s device) under ``attacks``
    (all at one norm and epsilon), with the rigour checks unless ``checks`` is False."""
    if not attacks:
        raise ValueError("no attacks to evaluate")
    if len({(a.norm, a.eps) for a in attacks}) != 1:
        raise ValueError("every attack of one evaluation must share its norm and epsilon: "
                         + ", ".join(f"{a.name.value} ({a.norm.value}, eps {a.eps})" for a in attacks))
    dev = rt.torch_device
    dense, compressed = dense.to(dev), compressed.to(dev)
    x, y = split.x_test.to(dev), split.y_test.to(dev)
    args = (x, y, split.n_classes, seed, rt, checks, latency_batch)
    d = _evaluate(dense, compressed, attacks, *args)
    c = _evaluate(compressed, dense, attacks, *args)
    return PairEvaluation(dense=d, compressed=c, split=split.provenance(), runtime=rt.provenance(), seed=seed)
