"""Launching a job in the background (for the app): a separate process, recorded in the database,
whose progress the caller polls and which it can cancel."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session

from evidence import Job, Submission

from .jobs import create_job
from .spec import JobSpec
from .training import cache_dir

__all__ = ["launch_background", "job_verdicts"]


def launch_background(engine: Engine, spec: JobSpec, *, by: str, executor: str = "local") -> int:
    """Record the job, start ``crev replicate run`` for it in a new process session, return its id."""
    job = create_job(engine, spec, executor=executor, by=by)
    folder = cache_dir() / "jobs"
    folder.mkdir(parents=True, exist_ok=True)
    spec_file = folder / f"job-{job.id}.json"
    spec_file.write_text(spec.model_dump_json(), encoding="utf-8")
    log = open(folder / f"job-{job.id}.log", "w")
    url = engine.url.render_as_string(hide_password=False)
    subprocess.Popen([sys.executable, "-m", "crev_cli", "replicate", "run", str(spec_file), "--job-id", str(job.id), "--db", url,
                      "--executor", executor, "--json", "--by", by], stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                     cwd=str(Path(__file__).resolve().parent.parent))
    return job.id


def job_verdicts(engine: Engine, job_id: int) -> list[dict]:
    """The verdicts a finished job wrote (empty before it finishes)."""
    with Session(engine) as s:
        job = s.get(Job, job_id)
        if job is None or job.submission_id is None:
            return []
        sub = s.get(Submission, job.submission_id)
    return json.loads(sub.summary).get("verdicts", []) if sub and sub.summary.startswith("{") else []
