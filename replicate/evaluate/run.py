"""``crev replicate evaluate`` end to end: load both checkpoints, load the test images, evaluate the
pair, submit it (one pending submission), and describe what was measured.

The test images are the dataset's official test set where it has one (CIFAR-10, SVHN), otherwise
the stratified split of :func:`replicate.train.load_split` with ``split_seed`` (its test-index hash is
stored): ``n`` subsamples it, stratified. ``eps`` is read as a number or a fraction (``8/255``).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from sqlalchemy.engine import Engine

from evidence.vocab import AdvTraining, Attack, CompressionFamily, Norm, ThreatModel

from ..attacks import ATTACKS, AttackName, AttackSpec
from ..train.datasets import load_split
from ..train.device import configure, move_split
from .loading import LoadedModel, load_checkpoint
from .paired import PairEvaluation, evaluate_pair
from .submission import submit_pair

__all__ = ["parse_eps", "parse_attacks", "EvaluationRun", "run_evaluation"]


def parse_eps(text: str) -> float:
    """``8/255`` or ``0.03`` as a float; a clear error otherwise."""
    try:
        value = float(Fraction(text.strip()))
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"--eps {text!r}: not a number or a fraction such as 8/255") from None
    if not value > 0:
        raise ValueError(f"--eps {text!r}: must be above 0")
    return value


def parse_attacks(text: str, *, eps: float, norm: Norm, steps: int, restarts: int = 1, queries: int = 5000) -> list[AttackSpec]:
    """The comma-separated attack names as specs at ``eps``; every one must attack ``norm``."""
    out = []
    for name in [t.strip() for t in text.split(",") if t.strip()]:
        try:
            key = AttackName(name)
        except ValueError:
            raise ValueError(f"--attacks: unknown attack {name!r}; use one of {', '.join(ATTACKS)}") from None
        spec = AttackSpec(key, eps, steps, restarts, queries=queries)
        if spec.vocab == Attack.other:  # the registry's random-noise baselines have no attack of the evidence vocabulary
            raise ValueError(f"--attacks: {name} is a rigour-check baseline, not an evaluation attack")
        if spec.threat_model == ThreatModel.transfer:
            raise ValueError(f"--attacks: {name} needs a source model; the rigour checks already transfer each model's PGD examples to the other")
        if spec.norm != norm:
            raise ValueError(f"--attacks: {name} attacks the {spec.norm.value} norm, not --norm {norm.value}")
        out.append(spec)
    if not out:
        raise ValueError("--attacks: name at least one attack")
    return out


@dataclass(frozen=True)
class EvaluationRun:
    """What one ``evaluate`` did: the loaded models, the evaluation, and the submission it wrote."""

    dense: LoadedModel
    compressed: LoadedModel
    evaluation: PairEvaluation
    attacks: list[AttackSpec]
    dataset: str
    submission_id: int | None
    study_id: str | None
    seconds: float

    def to_dict(self) -> dict:
        ev = self.evaluation
        per_attack = []
        for i, a in enumerate(self.attacks):
            o = ev.dense.outcomes[i]
            per_attack.append({"attack": a.name.value, "label": o.label, "eps": a.eps, "norm": a.norm.value, "real_steps": o.real_steps,
                               "restarts": o.restarts, "queries": o.queries, "threat_model": o.threat_model.value, **ev.paired_counts(i)})
        return {"submission_id": self.submission_id, "study_id": self.study_id, "dataset": self.dataset, "split": ev.split, "runtime": ev.runtime,
                "dense": {**self.dense.provenance(), "cost": ev.dense.cost.model_dump(), "possible_gradient_masking": ev.dense.possible_gradient_masking,
                          "checks": [c.model_dump() for c in ev.dense.checks], "seconds": ev.dense.seconds},
                "compressed": {**self.compressed.provenance(), "cost": ev.compressed.cost.model_dump(),
                               "possible_gradient_masking": ev.compressed.possible_gradient_masking,
                               "checks": [c.model_dump() for c in ev.compressed.checks], "seconds": ev.compressed.seconds},
                "results": per_attack, "seconds": self.seconds}


def run_evaluation(engine: Engine | None, *, dense: str, compressed: str, dataset: str, eps: float, norm: Norm, attacks: str, n: int | None = 1000,
                   steps: int = 100, device: str = "auto", arch: str | None = None, width: int | None = None, study: str | None = None,
                   family: CompressionFamily = CompressionFamily.other, method: str = "", bits: int | None = None,
                   adversarial_training: AdvTraining = AdvTraining.unknown, split_seed: int = 0, seed: int = 0, checks: bool = True,
                   by: str = "unknown") -> EvaluationRun:
    """Evaluate the pair and, with an ``engine``, submit it (pending)."""
    import time

    t0 = time.perf_counter()
    specs = parse_attacks(attacks, eps=eps, norm=norm, steps=steps)
    split = load_split(dataset, seed=split_seed, n_test=n)
    kw = {"arch": arch, "shape": split.shape, "n_classes": split.n_classes, "width": width}
    d, c = load_checkpoint(dense, **kw), load_checkpoint(compressed, **kw)
    rt = configure(device)
    if rt.device != "cpu":
        split = move_split(split, rt.device)
    ev = evaluate_pair(d.module, c.module, split, specs, rt, seed=seed, checks=checks)
    sub_id = study_id = None
    if engine is not None:
        sub_id, study_id, _ = submit_pair(engine, ev, d, c, by=by, study_id=study, dataset=split.name, family=family, method=method, bits=bits,
                                          adversarial_training=adversarial_training)
    return EvaluationRun(d, c, ev, specs, split.name, sub_id, study_id, time.perf_counter() - t0)
