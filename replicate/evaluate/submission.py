"""Writing an evaluated pair as evidence: one pending submission through :func:`evidence.submit`.

One result row per attack, with the results table's exact counts (percentages are derived from them
by :class:`evidence.ResultCreate`), the attack's real steps and queries, the rigour checks of both
models (``checks_json``) and ``gradient_masking`` when an informative check failed on either model,
which the analyses count as a high-risk evaluation. ``replication_json`` holds the provenance: both
files' SHA-256 and formats, the attack configuration, the data split, the runtime and the versions.
The rows go to the user's study (``--study``) or to a stub study named after the compressed file's
hash, to be filled in at review. Nothing is approved here: the submission is reviewed like any other.
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from evidence import ResultCreate, Study, StudyCreate, SubmissionCreate, submit
from evidence.vocab import AdvTraining, CompressionFamily, Provenance, ReviewStatus, SourceKind, SubmissionKind

from ..train.training import CODE_VERSION, package_version
from .loading import LoadedModel
from .paired import PairEvaluation

__all__ = ["EVALUATED_KIND", "build_rows", "stub_study_id", "submit_pair", "versions"]

EVALUATED_KIND = "evaluate"  # replication_json["kind"] of an evaluated pair (a replication job's rows have a spec_hash instead)


def versions() -> dict:
    """The code and library versions a row was measured with."""
    import torch
    import torchattacks

    return {"code_version": CODE_VERSION, "crev": package_version(), "torch": torch.__version__, "torchattacks": torchattacks.__version__}


def stub_study_id(compressed: LoadedModel) -> str:
    return f"evaluated-{compressed.sha256[:12]}"


def _stub(study_id: str, dense: LoadedModel, compressed: LoadedModel) -> StudyCreate:
    return StudyCreate(study_id=study_id, title=f"Checkpoint pair evaluated by crev: {compressed.provenance()['file']} "
                       f"(dense parent {dense.provenance()['file']}); stub, fill in the paper at review",
                       source_of_info=f"crev replicate evaluate; compressed sha256 {compressed.sha256}, dense sha256 {dense.sha256}")


def _study_exists(engine: Engine, study_id: str) -> bool:
    t = Study.__table__
    with engine.connect() as c:
        return bool(c.execute(sa.select(sa.func.count()).select_from(t).where(
            t.c.study_id == study_id, t.c.review_status != ReviewStatus.rejected.value)).scalar_one())


def build_rows(ev: PairEvaluation, dense: LoadedModel, compressed: LoadedModel, *, study_id: str, dataset: str,
               family: CompressionFamily, method: str = "", bits: int | None = None,
               adversarial_training: AdvTraining = AdvTraining.unknown) -> list[ResultCreate]:
    """One typed result row per attack of ``ev``."""
    d, c = ev.dense, ev.compressed
    masking = d.possible_gradient_masking or c.possible_gradient_masking
    sparsity = None
    if family in (CompressionFamily.unstructured_pruning, CompressionFamily.structured_pruning) and c.cost.params:
        sparsity = min(1 - c.cost.params_nonzero / d.cost.params_nonzero, 0.999999) if d.cost.params_nonzero else None
        sparsity = None if sparsity is None or sparsity < 0 else sparsity
    level = (f"measured sparsity {100 * sparsity:.1f}% of the dense parent's nonzero parameters" if sparsity is not None
             else f"{bits} bits" if bits else "user checkpoint")
    notes = []
    if masking:
        notes.append("possible gradient masking: " + "; ".join([f"compressed: {n}" for n in c.failed_checks()] + [f"dense: {n}" for n in d.failed_checks()]))
    rows = []
    for i, o in enumerate(d.outcomes):
        counts = ev.paired_counts(i)
        prov = {"kind": EVALUATED_KIND, "dense": dense.provenance(), "compressed": compressed.provenance(),
                "attack": {"name": o.attack.value, "eps": o.eps, "norm": o.norm.value, "steps": o.steps, "real_steps": o.real_steps,
                           "restarts": o.restarts, "queries": o.queries, "label": o.label, "seed": ev.seed},
                "split": ev.split, "runtime": ev.runtime, **versions(),
                "cost": {"dense": d.cost.model_dump(), "compressed": c.cost.model_dump()},
                "check_images": d.check_images}
        rows.append(ResultCreate(
            study_id=study_id, dataset=dataset, architecture=compressed.arch, compression_family=family, compression_method=method or "user checkpoint",
            compression_level_text=level, sparsity=sparsity, bits=bits, adversarial_training=adversarial_training,
            attack=o.vocab, attack_text=o.label, norm=o.norm, norm_text=o.norm.value, epsilon=o.eps, epsilon_text="" if o.eps is None else repr(float(o.eps)),
            steps=o.real_steps, steps_text=str(o.real_steps) if o.real_steps is not None else f"score-based, {o.queries} queries",
            threat_model=o.threat_model, threat_model_text=o.threat_model.value.replace("_", "-"), attack_queries=o.queries, **counts,
            provenance=Provenance.replication, provenance_text="measured by crev replicate evaluate on the user's checkpoints",
            url_or_path=f"sha256:{compressed.sha256}", source_location=f"attack {o.attack.value} eps {o.eps}", notes="; ".join(notes),
            cluster=f"evaluate:{dense.sha256[:12]}:{compressed.sha256[:12]}", source_kind=SourceKind.replication, gradient_masking=masking,
            checks_json=json.dumps({"compressed": [x.model_dump() for x in c.checks], "dense": [x.model_dump() for x in d.checks]}),
            replication_json=json.dumps(prov)))
    return rows


def submit_pair(engine: Engine, ev: PairEvaluation, dense: LoadedModel, compressed: LoadedModel, *, by: str, study_id: str | None = None,
                dataset: str, family: CompressionFamily, method: str = "", bits: int | None = None,
                adversarial_training: AdvTraining = AdvTraining.unknown) -> tuple[int, str, list[ResultCreate]]:
    """Submit the pair's rows as one pending submission; returns (submission id, study id, rows).
    A named study must exist (pending or approved); without one a stub study is added with the rows."""
    studies = []
    if study_id is not None:
        if not _study_exists(engine, study_id):
            raise ValueError(f"--study {study_id!r}: no such study in the database (add it first, or leave --study out for a stub)")
    else:
        study_id = stub_study_id(compressed)
        if not _study_exists(engine, study_id):
            studies = [_stub(study_id, dense, compressed)]
    rows = build_rows(ev, dense, compressed, study_id=study_id, dataset=dataset, family=family, method=method, bits=bits,
                      adversarial_training=adversarial_training)
    sub = submit(engine, SubmissionCreate(kind=SubmissionKind.replication, submitted_by=by, studies=studies, results=rows,
                                          summary=f"crev replicate evaluate: {compressed.provenance()['file']} vs dense {dense.provenance()['file']}",
                                          source_file=f"evaluate {compressed.sha256[:12]}"))
    return sub.id, study_id, rows
