"""Launching a job in the background (for the app): a separate process, recorded in the database,
whose progress the caller polls and which the launcher or a curator can cancel.

Security (issue 12): the database URL, which may hold a password, never appears on the child's
command line (readable by every local user in ``ps``); it is passed in the child's environment
(``CREV_DB``; ``/proc/<pid>/environ`` is readable only by the same user). The number of jobs a user
may have queued or running is capped (:data:`QUOTA_ENV`, default 2) as is the total
(:data:`LIMIT_ENV`, default 4), so a visitor cannot fill the machine; and only the launcher or a
curator may cancel a job.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from evidence import Job, Submission
from evidence.errors import NotAuthorized

from .jobs import create_job, read_summary, request_cancel
from .spec import JobSpec
from .training import cache_dir
from .verdict import Verdict

__all__ = ["launch_background", "cancel_job", "active_jobs", "job_quota", "job_verdicts", "child_command", "QUOTA_ENV", "LIMIT_ENV"]

QUOTA_ENV = "CREV_JOB_QUOTA"  # jobs one user may have queued or running at once
LIMIT_ENV = "CREV_JOB_LIMIT"  # jobs all users together may have queued or running at once
_ACTIVE = ("queued", "running")


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a whole number") from None
    if value < 0:
        raise ValueError(f"{name}={raw!r} is negative")
    return value


def job_quota() -> tuple[int, int]:
    """``(per user, in total)`` limits on queued or running jobs."""
    return _env_int(QUOTA_ENV, 2), _env_int(LIMIT_ENV, 4)


def active_jobs(engine: Engine, by: str | None = None) -> int:
    """Jobs queued or running (of ``by`` if given).

    A job whose process was killed stays ``running`` until the stale-job rule of ``replicate.jobs``
    marks it; until then it counts against the quota.
    """
    stmt = sa.select(sa.func.count()).select_from(Job).where(Job.status.in_(_ACTIVE))
    if by is not None:
        stmt = stmt.where(Job.created_by == by)
    with engine.connect() as conn:
        return int(conn.execute(stmt).scalar_one())


def child_command(spec_file: Path, job_id: int, *, executor: str, by: str) -> list[str]:
    """The child's command line: no database URL on it (that travels in the environment)."""
    return [sys.executable, "-m", "crev_cli", "replicate", "run", str(spec_file), "--job-id", str(job_id),
            "--executor", executor, "--json", "--by", by]


def launch_background(engine: Engine, spec: JobSpec, *, by: str, executor: str = "local") -> int:
    """Record the job, start ``crev replicate run`` for it in a new process session, return its id.

    ``NotAuthorized`` when ``by`` already has their quota of jobs queued or running, or the machine
    its total.
    """
    per_user, total = job_quota()
    mine, everyone = active_jobs(engine, by), active_jobs(engine)
    if mine >= per_user:
        raise NotAuthorized(f"{by} already has {mine} job(s) queued or running (limit {per_user}, {QUOTA_ENV}); wait or cancel one")
    if everyone >= total:
        raise NotAuthorized(f"{everyone} jobs are queued or running (limit {total}, {LIMIT_ENV}); try again when one finishes")
    job = create_job(engine, spec, executor=executor, by=by)
    folder = cache_dir() / "jobs"
    folder.mkdir(parents=True, exist_ok=True)
    spec_file = folder / f"job-{job.id}.json"
    spec_file.write_text(spec.model_dump_json(), encoding="utf-8")
    log_path = folder / f"job-{job.id}.log"
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    env = dict(os.environ, CREV_DB=engine.url.render_as_string(hide_password=False))
    with os.fdopen(fd, "w") as log:
        subprocess.Popen(child_command(spec_file, job.id, executor=executor, by=by), stdout=log, stderr=subprocess.STDOUT,
                         start_new_session=True, env=env, cwd=str(Path(__file__).resolve().parent.parent))
    return job.id


def cancel_job(engine: Engine, job_id: int, *, by: str, curator: bool = False) -> Job:
    """Ask a job to stop; only its launcher (``by`` equal to the job's ``created_by``) or a curator may."""
    with Session(engine) as s:
        job = s.get(Job, job_id)
        if job is None:
            raise LookupError(f"no job {job_id}")
        owner = job.created_by
    if not curator and by != owner:
        raise NotAuthorized(f"job {job_id} was launched by {owner}; only they or a curator can cancel it")
    return request_cancel(engine, job_id)


def job_verdicts(engine: Engine, job_id: int) -> list[Verdict]:
    """The verdicts a finished job wrote (empty before it finishes), read through :class:`JobSummary`."""
    with Session(engine) as s:
        job = s.get(Job, job_id)
        if job is None or job.submission_id is None:
            return []
        sub = s.get(Submission, job.submission_id)
    return list(read_summary(sub.summary).verdicts) if sub is not None else []
