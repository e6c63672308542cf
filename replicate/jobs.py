"""Jobs in the evidence database: their state, their finished cells, and their results.

A finished cell is stored whole, in one transaction, keyed by the spec's hash: a job killed half-way
leaves complete cells and no results, and a rerun of the same spec skips the cells it finds. The
results are written at the end, all in one transaction with their submission, as ``Result`` rows of
the replication source (pending review like any addition), labelled with the spec hash, seed, code,
torch and torchattacks versions, the dataset split and the attacked model.
"""

from __future__ import annotations

import json
from dataclasses import asdict

import pandas as pd
import sqlalchemy as sa
import torch
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from evidence import Job, JobCell, Study, list_claims, session_scope
from evidence.models import Submission, utcnow
from evidence.rows import fingerprint, result_warnings
from evidence.store import insert_results
from evidence.vocab import ReviewStatus, SubmissionKind

from .spec import JobSpec
from .verdict import decide

__all__ = ["job_results", "REPLICATION_STUDY", "create_job", "finished_cells", "store_cell", "update_job", "cancel_requested", "request_cancel",
           "job_table", "get_job", "assemble", "verdicts", "write_results", "CODE_VERSION"]

REPLICATION_STUDY = "crev_replications"
CODE_VERSION = "crev-replicate 0.1.0"


def create_job(engine: Engine, spec: JobSpec, *, executor: str, by: str) -> Job:
    with session_scope(engine) as s:
        job = Job(name=spec.title or spec.id, claim_id=spec.id, spec_json=spec.model_dump_json(), spec_hash=spec.spec_hash(), quick=spec.quick_mode,
                  executor=executor, status="running", created_by=by, started_at=utcnow())
        s.add(job)
        s.flush()
        return job


def get_job(engine: Engine, job_id: int) -> Job:
    with Session(engine) as s:
        job = s.get(Job, job_id)
    if job is None:
        raise LookupError(f"no job {job_id}")
    return job


def update_job(engine: Engine, job_id: int, **fields) -> None:
    with session_scope(engine) as s:
        job = s.get(Job, job_id)
        if "log_line" in fields:
            line = fields.pop("log_line")
            job.log = (job.log + f"{utcnow():%H:%M:%S} {line}\n")[-20000:]
        for k, v in fields.items():
            setattr(job, k, v)
        s.add(job)


def request_cancel(engine: Engine, job_id: int) -> Job:
    with session_scope(engine) as s:
        job = s.get(Job, job_id)
        if job is None:
            raise LookupError(f"no job {job_id}")
        if job.status not in ("running", "queued"):
            raise ValueError(f"job {job_id} is {job.status}: nothing to cancel")
        job.cancel_requested = True
        s.add(job)
        return job


def cancel_requested(engine: Engine, job_id: int) -> bool:
    with engine.connect() as c:
        return bool(c.execute(sa.select(Job.cancel_requested).where(Job.id == job_id)).scalar_one())


def finished_cells(engine: Engine, spec_hash: str) -> dict[str, dict]:
    with engine.connect() as c:
        rows = c.execute(sa.select(JobCell.cell_key, JobCell.payload_json).where(JobCell.job_key == spec_hash)).all()
    return {k: json.loads(p) for k, p in rows}


def store_cell(engine: Engine, spec_hash: str, payload: dict) -> None:
    with session_scope(engine) as s:
        exists = s.exec(select(JobCell).where(JobCell.job_key == spec_hash, JobCell.cell_key == payload["cell"])).first()
        if exists is None:
            s.add(JobCell(job_key=spec_hash, cell_key=payload["cell"], payload_json=json.dumps(payload), seconds=payload.get("seconds", 0.0)))


def job_table(engine: Engine) -> pd.DataFrame:
    with engine.connect() as c:
        res = c.execute(sa.select(Job.id, Job.claim_id, Job.status, Job.stage, Job.progress, Job.cells_done, Job.cells_total, Job.quick,
                                  Job.executor, Job.created_by, Job.created_at, Job.finished_at, Job.submission_id).order_by(Job.id.desc()))
        return pd.DataFrame(res.fetchall(), columns=list(res.keys()))


def assemble(spec: JobSpec, payloads: dict[str, dict]) -> list[dict]:
    """Result records: each compressed cell's measurements against its seed's dense model."""
    dense = {p["seed"]: p for p in payloads.values() if p["comp"] < 0}
    out = []
    versions = {"code": CODE_VERSION, "torch": torch.__version__, "torchattacks": _ta_version()}
    for p in sorted(payloads.values(), key=lambda q: (q["seed"], q["comp"], q["level"] or 0)):
        if p["comp"] < 0:
            continue
        d = dense[p["seed"]]
        dm = {(m["attack"], m["eps"], m["steps"]): m for m in d["measurements"]}
        info = p["info"]
        for m in p["measurements"]:
            if m["check_only"]:
                continue
            key = ("pgd", m["eps"], m["steps"]) if m["attack"] == "transfer" else (m["attack"], m["eps"], m["steps"])
            base = dm.get(key)
            if base is None:
                continue
            level_text = f"{int(p['level'])}-bit" if info.get("bits") and p["level"] is not None else (
                "8-bit (int8)" if info.get("bits") == 8 else f"{p['level']:.4g}" if p["level"] is not None else "")
            rec = {
                "study_id": REPLICATION_STUDY, "dataset": spec.data.name, "architecture": spec.model, "compression_family": info["family"],
                "compression_method": info["method"], "compression_level_text": level_text,
                "sparsity": info.get("sparsity") if info["family"] and "pruning" in info["family"] else None, "bits": info.get("bits"),
                "adversarial_training": "yes" if spec.train.adversarial else "no",
                "adversarial_training_text": f"PGD adversarial training eps {spec.train.adv_eps}" if spec.train.adversarial else "standard training",
                "attack": m["enum"], "attack_text": m["label"], "norm": m["norm"], "norm_text": m["norm"], "epsilon": m["eps"],
                "epsilon_text": "" if m["eps"] is None else repr(float(m["eps"])), "steps": m["steps"], "steps_text": str(m["steps"]),
                "threat_model": m["threat"], "threat_model_text": m["threat"].replace("_", "-"),
                "clean_acc_dense": d["clean"], "robust_acc_dense": base["acc"], "clean_acc_compressed": p["clean"], "robust_acc_compressed": m["acc"],
                "n_test": p["n_test"], "provenance": "replication", "url_or_path": f"crev replicate: spec {spec.spec_hash()} ({spec.id})",
                "source_location": f"cell {p['cell']}, attack {m['attack']} eps {m['eps']}", "notes": "",
                "cluster": f"replication:{spec.spec_hash()}:seed{p['seed']}", "source_kind": "replication", "quick": spec.quick_mode,
                "gradient_masking": p["possible_gradient_masking"], "checks_json": json.dumps(p["checks"]),
                "replication_json": json.dumps({"spec_hash": spec.spec_hash(), "spec_id": spec.id, "seed": p["seed"], **versions, "split": p["split"],
                                                "attacked_model": info.get("attacked_model"), "target_sparsity": info.get("target_sparsity"),
                                                "twin_agreement": info.get("twin_agreement"), "dense_weights": d["train"].get("weights_hash")}),
                "_seed": p["seed"], "_level": p["level"], "_comp": p["comp"], "_attack": m["attack"],
            }
            if p["possible_gradient_masking"]:
                rec["notes"] = "possible gradient masking: " + "; ".join(c["name"] for c in p["checks"] if not c["passed"])
            out.append(rec)
    return out


def _ta_version() -> str:
    try:
        import torchattacks

        return torchattacks.__version__
    except ImportError:  # pragma: no cover
        return "missing"


def verdicts(engine: Engine, spec: JobSpec, records: list[dict]) -> list[dict]:
    """A verdict for the claim the spec checks and for each compared study's claim on the question."""
    primary = spec.attacks[0].name
    df = pd.DataFrame([{"seed": r["_seed"], "level": r["_level"], "effect": r["robust_acc_compressed"] - r["robust_acc_dense"]}
                       for r in records if r["_attack"] == primary])
    claims = list_claims(engine)
    out = []
    for study in [spec.claim.study, *spec.claim.compare]:
        if study == spec.claim.study:
            direction = spec.claim.direction
        else:
            row = claims[(claims["study_id"] == study) & (claims["question_id"] == spec.claim.question_id)]
            if row.empty:
                continue
            direction = row["direction"].iloc[0]
        out.append(asdict(decide(df, study, direction, margin=spec.neutral_margin, quick=spec.quick_mode)))
    return out


def _claim_uid(engine: Engine, spec: JobSpec) -> str | None:
    claims = list_claims(engine)
    row = claims[(claims["study_id"] == spec.claim.study) & (claims["question_id"] == spec.claim.question_id)]
    return None if row.empty else row["uid"].iloc[0]


def write_results(engine: Engine, job_id: int, spec: JobSpec, records: list[dict], verdict_list: list[dict], by: str) -> int:
    """One transaction: the replication study (if new), the results, the submission, the job's end."""
    main = verdict_list[0]["verdict"] if verdict_list else None
    claim_uid = _claim_uid(engine, spec)
    with session_scope(engine) as s:
        sub = Submission(kind=SubmissionKind.replication, submitted_by=by, summary=json.dumps({"job": job_id, "spec": spec.id,
                         "spec_hash": spec.spec_hash(), "verdicts": verdict_list}, default=str), source_file=f"job {job_id}")
        s.add(sub)
        s.flush()
        existing = s.exec(select(Study).where(Study.study_id == REPLICATION_STUDY, Study.review_status != ReviewStatus.rejected)).first()
        if existing is None:
            last = s.execute(sa.select(sa.func.max(Study.version)).where(Study.study_id == REPLICATION_STUDY)).scalar_one() or 0
            s.add(Study(study_id=REPLICATION_STUDY, title="Controlled replications run by crev (replicate engine)", authors="crev",
                        year=utcnow().year, year_text=str(utcnow().year), venue="crev", identifier="crev replicate",
                        compression_kind="both", main_claim="Replication evidence: see each result's claim and verdict",
                        source_of_info="measured by crev replicate; every row carries its spec hash, seed and library versions",
                        version=last + 1, submission_id=sub.id, created_by=by))
            sub.n_studies = 1
        clean = []
        for r in records:
            rec = {k: v for k, v in r.items() if not k.startswith("_")}
            rec["claim_uid"], rec["verdict"] = claim_uid, main
            rec["warnings"] = "; ".join(result_warnings(rec))
            # the run's cell and seed are part of a replication row's identity
            rec["fingerprint"] = fingerprint({**rec, "architecture": f"{rec['architecture']}|{rec['cluster']}|{rec['source_location']}"})
            clean.append(rec)
        insert_results(s, clean, submission_id=sub.id, by=by)
        sub.n_results = len(clean)
        s.add(sub)
        job = s.get(Job, job_id)
        job.status, job.finished_at, job.submission_id, job.progress, job.stage = "done", utcnow(), sub.id, 1.0, "done"
        s.add(job)
        return sub.id


def job_results(engine: Engine, job_id: int) -> pd.DataFrame:
    """The result rows a job wrote (any review status), empty before it finishes."""
    from evidence import ResultFilter, query_results

    job = get_job(engine, job_id)
    if job.submission_id is None:
        return pd.DataFrame()
    df = query_results(engine, ResultFilter(status="all", study_ids=[REPLICATION_STUDY], include_quick=True))
    return df[df["submission_id"] == job.submission_id].reset_index(drop=True)
