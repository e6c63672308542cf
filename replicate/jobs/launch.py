"""Launching a job in the background (for the app): a separate process, recorded in the database,
whose progress the caller polls and which the launcher or a curator can cancel.

Security (issue 12): the database URL, which may hold a password, never appears on the child's
command line (readable by every local user in ``ps``); it is passed in the child's environment
(``CREV_DB``; ``/proc/<pid>/environ`` is readable only by the same user). The number of jobs a user
may have queued or running is capped (:data:`QUOTA_ENV`, default 2) as is the total
(:data:`LIMIT_ENV`, default 4), so a visitor cannot fill the machine; and only the launcher or a
curator may cancel a job.

Errors that would get lost (issue 13): the child's output goes to ``<cache>/jobs/job-<id>.log``
(:func:`job_log_path`, :func:`job_output`), and a watcher thread waits for the child. If the child
exits while its job still reads queued or running (it died before ``run_job`` could record anything:
a missing dependency, an unreadable spec, a database it cannot open; or it was killed), the job is
marked failed at once with the end of that output as its error, instead of staying "running" until
the stale-job rule notices.

A job whose process dies later, or runs on another machine (the app restarted, the watcher thread
gone with it), stops writing its heartbeat (``replicate.jobs.heartbeat``); :func:`launch_background`
first marks such stale jobs failed (:func:`replicate.jobs.store.reap_stale_jobs`), so a dead job does not
hold a place in anyone's quota.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from evidence import Job, Submission, same_identity
from evidence.errors import NotAuthorized
from evidence.models import utcnow
from evidence.vocab import JobStatus

from .store import create_job, get_job, read_summary, reap_stale_jobs, request_cancel, update_job
from .spec import JobSpec
from ..train.training import cache_dir
from .verdict import ReplicationVerdict

__all__ = ["launch_background", "cancel_job", "active_jobs", "job_quota", "job_verdicts", "child_command", "QUOTA_ENV", "LIMIT_ENV",
           "job_log_path", "job_output", "settle_exited", "OUTPUT_TAIL"]

log = logging.getLogger(__name__)
OUTPUT_TAIL = 4000  # characters of a dead child's output kept in its job's error

QUOTA_ENV = "CREV_JOB_QUOTA"  # jobs one user may have queued or running at once
LIMIT_ENV = "CREV_JOB_LIMIT"  # jobs all users together may have queued or running at once
_ACTIVE = JobStatus.active()


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

    A job whose process was killed stays ``running`` until the stale-job rule of ``replicate.jobs.store``
    marks it (:func:`launch_background` applies it first); until then it counts against the quota.
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
    its total. Stale jobs (their process gone: no heartbeat for ``HEARTBEAT_STALE_AFTER``) are marked
    failed first and do not count.
    """
    per_user, total = job_quota()
    for stale in reap_stale_jobs(engine):
        log.warning("job %s marked failed: stale (its process is gone)", stale)
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
    log_path = job_log_path(job.id)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    env = dict(os.environ, CREV_DB=engine.url.render_as_string(hide_password=False))
    with os.fdopen(fd, "w") as out:  # the child holds its own copy; this process's handle closes here
        proc = subprocess.Popen(child_command(spec_file, job.id, executor=executor, by=by), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, env=env, cwd=str(Path(__file__).resolve().parents[2]))
    update_job(engine, job.id, log_line=f"process {proc.pid} started; its output goes to {log_path}")
    threading.Thread(target=_watch, args=(engine, job.id, proc, log_path), name=f"crev-job-{job.id}", daemon=True).start()
    return job.id


def job_log_path(job_id: int) -> Path:
    """Where a background job's process writes its output (stdout and stderr)."""
    return cache_dir() / "jobs" / f"job-{job_id}.log"


def job_output(job_id: int, max_chars: int = OUTPUT_TAIL) -> str:
    """The end of a background job's output ("" when it has none, e.g. a job run from the CLI)."""
    path = job_log_path(job_id)
    if not path.exists():
        return ""
    with open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - max_chars))
        return f.read().decode("utf-8", errors="replace")


def settle_exited(engine: Engine, job_id: int, returncode: int) -> bool:
    """Mark a job failed, with the end of its output, if its process has exited while the job still
    reads queued or running. Returns whether it did (False when the job had finished, failed or been
    cancelled on its own)."""
    if get_job(engine, job_id).status not in _ACTIVE:
        return False
    how = f"was killed by signal {-returncode}" if returncode < 0 else f"exited with status {returncode}"
    output = job_output(job_id).strip() or "(no output)"
    update_job(engine, job_id, status=JobStatus.failed, stage="failed", finished_at=utcnow(),
               error=f"the job's process {how} before the job finished; the end of its output ({job_log_path(job_id)}):\n{output}",
               log_line=f"process {how} before the job finished")
    return True


def _watch(engine: Engine, job_id: int, proc: subprocess.Popen, log_path: Path) -> None:
    """Wait for a background job's process (in a daemon thread), then settle its job."""
    returncode = proc.wait()
    try:
        if settle_exited(engine, job_id, returncode):
            log.error("background job %s: process exited with %s before the job finished; output in %s", job_id, returncode, log_path)
    except Exception:  # the database went away: say so in the log; the stale-job rule marks the job later
        log.exception("background job %s: could not record the exit of its process", job_id)


def cancel_job(engine: Engine, job_id: int, *, by: str, curator: bool = False) -> Job:
    """Ask a job to stop; only its launcher (``by`` the same identity as the job's ``created_by``, compared
    by :func:`evidence.same_identity`) or a curator may."""
    with Session(engine) as s:
        job = s.get(Job, job_id)
        if job is None:
            raise LookupError(f"no job {job_id}")
        owner = job.created_by
    if not curator and not same_identity(by, owner):  # canonical form (TR39): a look-alike name is someone else
        raise NotAuthorized(f"job {job_id} was launched by {owner}; only they or a curator can cancel it")
    return request_cancel(engine, job_id)


def job_verdicts(engine: Engine, job_id: int) -> list[ReplicationVerdict]:
    """The verdicts a finished job wrote (empty before it finishes), read through :class:`JobSummary`."""
    with Session(engine) as s:
        job = s.get(Job, job_id)
        if job is None or job.submission_id is None:
            return []
        sub = s.get(Submission, job.submission_id)
    return list(read_summary(sub.summary).verdicts) if sub is not None else []
