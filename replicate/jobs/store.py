"""Jobs in the evidence database: their state, their finished cells, and their results.

A finished cell is stored whole (a :class:`~replicate.jobs.cells.CellResult` as JSON, read back through
the same model), in one transaction, keyed by the spec's hash: a job killed half-way leaves complete
cells and no results, and a rerun of the same spec skips the cells it finds.

Liveness. While a job runs, a daemon thread in its own process (:class:`replicate.jobs.heartbeat.Heartbeat`,
started by :func:`replicate.run_job` for local, Dask and SLURM/PBS jobs alike) writes the job's
``heartbeat_at`` every :data:`HEARTBEAT_EVERY` (30 s; ``CREV_HEARTBEAT_EVERY`` seconds overrides it).
A job still marked running or queued is *stale* (its process is gone: killed, out of memory, the
machine restarted) when its newest sign of life is older than :data:`HEARTBEAT_STALE_AFTER` (5 min,
ten beats) if it has ever written a heartbeat; a job without one (a row from before migration 0004,
or a job whose process has not started yet) keeps the old rule, its start or newest finished cell
older than :data:`STALE_AFTER` (30 min). So a healthy job that trains one CIFAR-10 model for hours
is never stale, and a dead one is noticed within minutes. A stale job is shown as such
(:func:`job_table`), marked failed by :func:`reap_stale_jobs` (which :func:`replicate.launch_background`
runs before it counts a user's quota), or cancelled at once by :func:`request_cancel`.

The results are written at the end through the one write path,
:func:`evidence.submit`, as one pending submission of ``ResultCreate`` rows (counts stored, the
percentages derived from them exactly), each labelled with the spec hash, seed, code version, the
installed crev, torch and torchattacks versions, the dataset split and the attacked model. Rows a
previous run of the same spec already stored (same fingerprints) are not written again.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pandas as pd
import sqlalchemy as sa
import torch
from pydantic import BaseModel, ConfigDict
from sqlalchemy.engine import Engine
from sqlmodel import Session

from evidence import (Job, JobCell, ResultCreate, Study, StudyCreate, SubmissionCreate, list_claims, session_scope, stored_duplicates,
                      submit)
from evidence.db import writer
from evidence.models import utcnow
from evidence.vocab import AdvTraining, CompressionFamily, Direction, Executor, JobStatus, Provenance, ReviewStatus, SourceKind, SubmissionKind

from ..attacks import ATTACKS
from .cells import AttackOutcome, CellResult
from .spec import JobSpec
from ..train.training import CODE_VERSION, package_version
from .verdict import EFFECT_COLUMNS, ReplicationVerdict, decide

__all__ = ["JobStatus", "JobSummary", "Assembled", "job_results", "REPLICATION_STUDY", "create_job", "finished_cells", "store_cell", "update_job",
           "cancel_requested", "request_cancel", "job_table", "get_job", "assemble", "verdicts", "write_results", "is_stale", "reap_stale_jobs",
           "STALE_AFTER", "read_summary", "HEARTBEAT_EVERY", "HEARTBEAT_STALE_AFTER", "HEARTBEAT_ENV", "heartbeat_interval", "beat"]

REPLICATION_STUDY = "crev_replications"
STALE_AFTER = timedelta(minutes=30)  # jobs without a heartbeat (before migration 0004): longer than any catalogue cell on one core
HEARTBEAT_EVERY = timedelta(seconds=30)  # how often a running job's process writes heartbeat_at
HEARTBEAT_STALE_AFTER = timedelta(minutes=5)  # no heartbeat for this long: the process is gone (10 missed beats)
HEARTBEAT_ENV = "CREV_HEARTBEAT_EVERY"  # seconds; overrides HEARTBEAT_EVERY (tests; a background job inherits it)
_ACTIVE = JobStatus.active()


class JobSummary(BaseModel):
    """What a job's submission records about it (its ``summary``), written and read through this model."""

    model_config = ConfigDict(frozen=True)

    job: int
    spec_id: str
    spec_hash: str
    verdicts: list[ReplicationVerdict]
    skipped_existing: int = 0


def read_summary(text: str) -> JobSummary:
    return JobSummary.model_validate_json(text)


def create_job(engine: Engine, spec: JobSpec, *, executor: Executor | str, by: str) -> Job:
    with session_scope(engine) as s:
        job = Job(name=spec.title or spec.id, claim_id=spec.id, spec_json=spec.model_dump_json(), spec_hash=spec.spec_hash(), quick=spec.quick_mode,
                  executor=Executor(executor), status=JobStatus.running, created_by=by, started_at=utcnow())
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
            job.log = (job.log + f"{utcnow():%Y-%m-%d %H:%M:%S} {line}\n")[-20000:]
        for k, v in fields.items():
            setattr(job, k, JobStatus(v) if k == "status" else v)
        s.add(job)


def heartbeat_interval() -> float:
    """Seconds between two heartbeats: ``CREV_HEARTBEAT_EVERY`` if set, else :data:`HEARTBEAT_EVERY`.

    ``ValueError`` for a value that is not a positive number, or so long that a live job would miss the
    three beats :data:`HEARTBEAT_STALE_AFTER` allows (more than a third of it)."""
    raw = os.environ.get(HEARTBEAT_ENV, "").strip()
    if not raw:
        seconds = HEARTBEAT_EVERY.total_seconds()
    else:
        try:
            seconds = float(raw)
        except ValueError:
            raise ValueError(f"{HEARTBEAT_ENV}={raw!r} is not a number of seconds") from None
    limit = HEARTBEAT_STALE_AFTER.total_seconds() / 3
    if not 0 < seconds <= limit:
        raise ValueError(f"heartbeat interval {seconds:g} s ({HEARTBEAT_ENV}): must be above 0 and at most {limit:g} s "
                         f"(a third of HEARTBEAT_STALE_AFTER, {HEARTBEAT_STALE_AFTER}), or live jobs would read as stale")
    return seconds


def beat(engine: Engine, job_id: int, *, now: datetime | None = None) -> bool:
    """Write ``heartbeat_at = now`` for a job still running or queued (one short transaction of its
    own); returns whether it did (False once the job has finished, failed or been cancelled)."""
    t = Job.__table__
    with writer(engine).begin() as c:
        n = c.execute(sa.update(t).where(t.c.id == job_id, t.c.status.in_(_ACTIVE)).values(heartbeat_at=now or utcnow())).rowcount
    return n > 0


def _utc(t: datetime) -> datetime:
    return t.replace(tzinfo=timezone.utc) if t.utcoffset() is None else t.astimezone(timezone.utc)


@dataclass(frozen=True)
class _Liveness:
    """What staleness is judged on: the heartbeat (None before migration 0004 or before the process
    started) and the other signs of life (creation, start, the spec's newest finished cell)."""

    heartbeat: datetime | None
    activity: datetime

    def stale(self, now: datetime, after: timedelta, heartbeat_after: timedelta) -> bool:
        if self.heartbeat is not None:  # a process that beats: judged on its newest sign of life, beats included
            return now - max(self.heartbeat, self.activity) > heartbeat_after
        return now - self.activity > after

    def reason(self, after: timedelta, heartbeat_after: timedelta) -> str:
        if self.heartbeat is not None:
            return f"no heartbeat within {heartbeat_after} (the last at {self.heartbeat:%Y-%m-%d %H:%M:%S} UTC)"
        return f"no heartbeat, and no finished cell or start within {after}"


def _liveness(job, newest_cell: datetime | None) -> _Liveness:
    times = [_utc(t) for t in (job.started_at, job.created_at, newest_cell) if t is not None]
    return _Liveness(_utc(job.heartbeat_at) if job.heartbeat_at is not None else None, max(times))


def _newest_cells(conn, spec_hashes) -> dict[str, datetime]:
    hashes = sorted(set(spec_hashes))
    if not hashes:
        return {}
    rows = conn.execute(sa.select(JobCell.job_key, sa.func.max(JobCell.created_at)).where(JobCell.job_key.in_(hashes)).group_by(JobCell.job_key))
    return {k: t for k, t in rows if t is not None}


def is_stale(engine: Engine, job: Job, *, now: datetime | None = None, after: timedelta = STALE_AFTER,
             heartbeat_after: timedelta = HEARTBEAT_STALE_AFTER) -> bool:
    """Whether a job marked running (or queued) has lost its process (killed, out of memory, machine
    restarted): its newest sign of life is older than ``heartbeat_after`` when it has a heartbeat,
    else (no heartbeat: a row from before migration 0004) its start or newest finished cell is older
    than ``after``. A finished, failed or cancelled job is never stale."""
    if job.status not in _ACTIVE:
        return False
    with engine.connect() as c:
        live = _liveness(job, _newest_cells(c, [job.spec_hash]).get(job.spec_hash))
    return live.stale(_utc(now or utcnow()), after, heartbeat_after)


def reap_stale_jobs(engine: Engine, *, now: datetime | None = None, after: timedelta = STALE_AFTER,
                    heartbeat_after: timedelta = HEARTBEAT_STALE_AFTER) -> list[int]:
    """Mark stale jobs (:func:`is_stale`) failed, with the reason in their error and log; returns their ids."""
    with Session(engine) as s:
        active = s.exec(sa.select(Job).where(Job.status.in_(_ACTIVE))).scalars().all()
    with engine.connect() as c:
        newest = _newest_cells(c, [j.spec_hash for j in active])
    when = _utc(now or utcnow())
    reaped = []
    for j in active:
        live = _liveness(j, newest.get(j.spec_hash))
        if not live.stale(when, after, heartbeat_after):
            continue
        with session_scope(engine) as s:  # only if it is still active and has not beaten since it was read
            row = s.get(Job, j.id)
            if row.status not in _ACTIVE or row.heartbeat_at is not None and _utc(row.heartbeat_at) != live.heartbeat:
                continue
            row.status, row.finished_at, row.stage = JobStatus.failed, utcnow(), "stale"
            row.error = f"stale: {live.reason(after, heartbeat_after)}; its process is gone"
            row.log = (row.log + f"{utcnow():%Y-%m-%d %H:%M:%S} marked failed: stale ({live.reason(after, heartbeat_after)})\n")[-20000:]
            s.add(row)
        reaped.append(j.id)
    return reaped


def request_cancel(engine: Engine, job_id: int) -> Job:
    """Ask a running job to stop; a stale one (its process gone) is marked cancelled at once."""
    job = get_job(engine, job_id)
    if job.status not in _ACTIVE:
        raise ValueError(f"job {job_id} is {job.status}: nothing to cancel")
    stale = is_stale(engine, job)
    with session_scope(engine) as s:
        j = s.get(Job, job_id)
        j.cancel_requested = True
        if stale:
            j.status, j.finished_at, j.stage = JobStatus.cancelled, utcnow(), "cancelled"
            j.log += f"{utcnow():%Y-%m-%d %H:%M:%S} cancelled while stale (no process was running it)\n"
        s.add(j)
    return get_job(engine, job_id)


def cancel_requested(engine: Engine, job_id: int) -> bool:
    with engine.connect() as c:
        return bool(c.execute(sa.select(Job.cancel_requested).where(Job.id == job_id)).scalar_one())


def finished_cells(engine: Engine, spec_hash: str) -> dict[str, CellResult]:
    with engine.connect() as c:
        rows = c.execute(sa.select(JobCell.cell_key, JobCell.payload_json).where(JobCell.job_key == spec_hash)).all()
    out = {}
    for k, p in rows:
        try:
            out[k] = CellResult.model_validate_json(p)
        except ValueError:  # a cell stored by an older engine version: run it again
            continue
    return out


def store_cell(engine: Engine, spec_hash: str, payload: CellResult) -> None:
    with session_scope(engine) as s:
        old = s.execute(sa.select(JobCell).where(JobCell.job_key == spec_hash, JobCell.cell_key == payload.key)).scalars().first()
        if old is not None:  # unreadable by this version (finished_cells skipped it): replace
            old.payload_json, old.seconds, old.created_at = payload.model_dump_json(), payload.seconds, utcnow()
            s.add(old)
        else:
            s.add(JobCell(job_key=spec_hash, cell_key=payload.key, payload_json=payload.model_dump_json(), seconds=payload.seconds))


def job_table(engine: Engine, *, now: datetime | None = None) -> pd.DataFrame:
    """All jobs, newest first, with ``heartbeat_at`` (the last heartbeat of the job's process, UTC) and a
    ``stale`` column (:func:`is_stale`: running or queued, and its process is gone)."""
    with engine.connect() as c:
        res = c.execute(sa.select(Job.id, Job.claim_id, Job.status, Job.stage, Job.progress, Job.cells_done, Job.cells_total, Job.quick,
                                  Job.executor, Job.created_by, Job.created_at, Job.started_at, Job.finished_at, Job.heartbeat_at,
                                  Job.submission_id, Job.spec_hash).order_by(Job.id.desc()))
        rows = res.fetchall()
        df = pd.DataFrame(rows, columns=list(res.keys()))
        newest = _newest_cells(c, [r.spec_hash for r in rows if r.status in _ACTIVE])
    when = _utc(now or utcnow())
    df["stale"] = [r.status in _ACTIVE and _liveness(r, newest.get(r.spec_hash)).stale(when, STALE_AFTER, HEARTBEAT_STALE_AFTER)
                   for r in rows]
    return df.drop(columns=["spec_hash", "started_at"])


@dataclass
class Assembled:
    """A job's result rows (typed, for the write path) and the paired counts the verdicts use."""

    results: list[ResultCreate]
    effects: pd.DataFrame  # EFFECT_COLUMNS plus attack


def _versions() -> dict:
    try:
        import torchattacks

        ta = torchattacks.__version__
    except ImportError:  # pragma: no cover
        ta = "missing"
    return {"code_version": CODE_VERSION, "crev": package_version(), "torch": torch.__version__, "torchattacks": ta}


def _strength(info, level) -> float:
    if info.bits is not None:
        return float(32 - info.bits)
    return float(level if level is not None else 0.0)


def _baseline(spec: JobSpec, dense: CellResult, o: AttackOutcome) -> AttackOutcome | None:
    """The dense model's outcome paired with a compressed outcome: the same attack, or for a transfer
    attack the dense model's own PGD at the same setting (the very examples that are transferred)."""
    name = ATTACKS[o.attack].source_attack or o.attack
    return next((d for d in dense.outcomes if d.attack == name and d.eps == o.eps and d.steps == o.steps and d.restarts == o.restarts), None)


def assemble(spec: JobSpec, payloads: dict[str, CellResult]) -> Assembled:
    """Result rows: each compressed cell's measurements against its seed's dense model, with counts."""
    dense = {p.cell.seed: p for p in payloads.values() if p.cell.dense}
    versions = _versions()
    results, effects = [], []
    h = spec.spec_hash()
    for p in sorted(payloads.values(), key=lambda q: (q.cell.seed, -1 if q.cell.dense else q.cell.compression, q.cell.level or 0)):
        if p.cell.dense:
            continue
        d = dense[p.cell.seed]
        info = p.info
        masking = p.possible_gradient_masking or d.possible_gradient_masking
        dvec_clean = d.clean_vector()
        for o in p.outcomes:
            base = _baseline(spec, d, o)
            if base is None:
                continue
            dv, cv = d.correct_vector(base), p.correct_vector(o)
            if len(dv) != len(cv):
                continue
            dense_only, comp_only = int((dv & ~cv).sum()), int((~dv & cv).sum())
            attack_text = o.label + (f"; {info.attacked_model}" if o.threat_model.value == "transfer" and info.non_differentiable else "")
            notes = []
            if info.zero_share_per_layer:
                notes.append("measured zero share of quantized weights per layer: " + ", ".join(f"{100 * z:.1f}%" for z in info.zero_share_per_layer))
            if info.twin_agreement is not None:
                notes.append(f"fake-quantized twin agrees with the int8 model on {100 * info.twin_agreement:.1f}% of test images")
            if masking:
                notes.append("possible gradient masking: " + "; ".join(
                    [f"compressed: {c}" for c in p.failed_checks()] + [f"dense: {c}" for c in d.failed_checks()]))
            rec = ResultCreate(
                study_id=REPLICATION_STUDY, dataset=spec.data.name, architecture=spec.model.value, compression_family=info.family,
                compression_method=info.method, compression_level_text=info.level_text,
                sparsity=info.sparsity if info.family in (CompressionFamily.unstructured_pruning, CompressionFamily.structured_pruning) else None,
                bits=info.bits, adversarial_training=AdvTraining.yes if spec.train.adversarial else AdvTraining.no,
                adversarial_training_text=f"PGD adversarial training eps {spec.train.adv_eps}, {spec.train.adv_steps} steps" if spec.train.adversarial
                else "standard training",
                attack=o.vocab, attack_text=attack_text, norm=o.norm, norm_text=o.norm.value, epsilon=o.eps,
                epsilon_text="" if o.eps is None else repr(float(o.eps)), steps=o.real_steps,
                steps_text=str(o.real_steps) if o.real_steps is not None else f"score-based, {o.queries} queries",
                threat_model=o.threat_model, threat_model_text=o.threat_model.value.replace("_", "-"),
                n_test=p.n_test, n_clean_correct_dense=d.n_clean_correct, n_robust_correct_dense=base.n_correct,
                n_clean_correct_compressed=p.n_clean_correct, n_robust_correct_compressed=o.n_correct,
                n_robust_dense_only=dense_only, n_robust_compressed_only=comp_only, attack_queries=o.queries,
                provenance=Provenance.replication, url_or_path=f"crev replicate: spec {h} ({spec.id})",
                source_location=f"cell {p.key}, attack {o.attack.value} eps {o.eps}", notes="; ".join(notes),
                cluster=f"replication:{h}:seed{p.cell.seed}", source_kind=SourceKind.replication, quick=spec.quick_mode,
                gradient_masking=masking, checks_json=json.dumps({"compressed": [c.model_dump() for c in p.checks],
                                                                  "dense": [c.model_dump() for c in d.checks]}),
                replication_json=json.dumps({"spec_hash": h, "spec_id": spec.id, "seed": p.cell.seed, **versions, "split": p.split,
                                             "attacked_model": info.attacked_model, "target_sparsity": info.target_sparsity,
                                             "granularity": info.granularity.value if info.granularity else None,
                                             "zero_share_per_layer": info.zero_share_per_layer, "twin_agreement": info.twin_agreement,
                                             "dense_weights": d.train.weights_hash, "restarts": o.restarts, "spec_steps": o.steps,
                                             "runtime": p.runtime,
                                             "efficiency": info.efficiency.model_dump() if info.efficiency else None}),
            )
            results.append(rec)
            effects.append({"family": info.family.value, "level": p.cell.level, "strength": _strength(info, p.cell.level), "seed": p.cell.seed,
                            "eps": o.eps, "n_test": p.n_test, "robust_dense": base.n_correct, "robust_compressed": o.n_correct,
                            "dense_only": dense_only, "compressed_only": comp_only, "clean_dense": int(dvec_clean.sum()),
                            "clean_compressed": p.n_clean_correct, "masking": masking, "attack": o.attack.value})
    return Assembled(results, pd.DataFrame(effects, columns=[*EFFECT_COLUMNS, "attack"]))


def verdicts(engine: Engine, spec: JobSpec, assembled: Assembled) -> list[ReplicationVerdict]:
    """A verdict for the claim the spec checks and for each compared study's claim on the question,
    decided for the claim's compression family (the spec's first) under the spec's first attack."""
    primary = spec.attacks[0].name.value
    eff = assembled.effects[assembled.effects["attack"] == primary]
    family = eff["family"].iloc[0] if len(eff) else None
    claims = list_claims(engine)
    out = []
    for study in [spec.claim.study, *spec.claim.compare]:
        if study == spec.claim.study:
            direction = Direction(spec.claim.direction)
        else:
            row = claims[(claims["study_id"] == study) & (claims["question_id"] == spec.claim.question_id)]
            if row.empty or row["direction"].iloc[0] not in (Direction.up, Direction.down, Direction.neutral, Direction.mixed):
                continue
            direction = Direction(row["direction"].iloc[0])
        out.append(decide(eff, study, direction, margin=spec.neutral_margin, quick=spec.quick_mode, family=family))
    return out


def _claim_uid(engine: Engine, spec: JobSpec) -> str | None:
    claims = list_claims(engine)
    row = claims[(claims["study_id"] == spec.claim.study) & (claims["question_id"] == spec.claim.question_id)]
    return None if row.empty else row["uid"].iloc[0]


def _replication_study(engine: Engine) -> list[StudyCreate]:
    t = Study.__table__
    with engine.connect() as c:
        exists = c.execute(sa.select(sa.func.count()).select_from(t).where(t.c.study_id == REPLICATION_STUDY,
                                                                           t.c.review_status != ReviewStatus.rejected.value)).scalar_one()
    if exists:
        return []
    year = utcnow().year
    return [StudyCreate(study_id=REPLICATION_STUDY, title="Controlled replications run by crev (replicate engine)", authors="crev", year=year,
                        year_text=str(year), venue="crev", identifier="crev replicate", compression_kind="both",
                        main_claim="Replication evidence: see each result's claim and verdict",
                        source_of_info="measured by crev replicate; every row carries its spec hash, seed and library versions")]


def write_results(engine: Engine, job_id: int, spec: JobSpec, assembled: Assembled, verdict_list: list[ReplicationVerdict], by: str,
                  *, release: str = "", approved: bool = False, reviewed_by: str | None = None) -> tuple[int | None, int]:
    """Submit the job's results through :func:`evidence.submit` (one transaction), skipping rows an
    earlier run of the same spec stored; mark the job done. Returns (submission id or None, rows skipped)."""
    main = verdict_list[0].verdict.value if verdict_list else None
    claim_uid = _claim_uid(engine, spec)
    rows = [r.model_copy(update={"claim_uid": claim_uid, "verdict": main}) for r in assembled.results]
    with engine.connect() as conn:
        seen = stored_duplicates(conn, rows)  # evidence's own duplicate rule (a row an earlier run of the spec stored)
    new = [r for i, r in enumerate(rows) if i not in seen]
    sub_id = None
    if new:
        summary = JobSummary(job=job_id, spec_id=spec.id, spec_hash=spec.spec_hash(), verdicts=verdict_list, skipped_existing=len(rows) - len(new))
        sub = submit(engine, SubmissionCreate(kind=SubmissionKind.replication, submitted_by=by, studies=_replication_study(engine), results=new,
                                              summary=summary.model_dump_json(), source_file=f"job {job_id}", release=release, approved=approved,
                                              reviewed_by=reviewed_by))
        sub_id = sub.id
    update_job(engine, job_id, status=JobStatus.done, finished_at=utcnow(), submission_id=sub_id, progress=1.0, stage="done")
    return sub_id, len(rows) - len(new)


def job_results(engine: Engine, job_id: int) -> pd.DataFrame:
    """The result rows a job wrote (any review status), empty before it finishes."""
    from evidence import ResultFilter, query_results

    job = get_job(engine, job_id)
    if job.submission_id is None:
        return pd.DataFrame()
    df = query_results(engine, ResultFilter(status="all", study_ids=[REPLICATION_STUDY], include_quick=True))
    return df[df["submission_id"] == job.submission_id].reset_index(drop=True)

