"""Replication jobs: cancellation mid-run, and background jobs whose process dies (issue 13).

Real jobs on a tiny spec (scikit-learn's digits, an MLP, one epoch): no mock stands in for the
runner, the database or the child process.
"""

from __future__ import annotations

import os
import threading
import time
import tomllib
from pathlib import Path

import pytest
import sqlalchemy as sa

from evidence import Job, JobCell, ResultFilter, init_database, query_results
from replicate import load_spec, run_job
from replicate.jobs.store import create_job, get_job
from replicate.jobs.launch import job_log_path, job_output, launch_background

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"), pytest.mark.slow]

MINI = """
id = "mini"
model = "mlp"
seeds = [0]
[claim]
question_id = "pruning_without_at"
study = "wang_2018_prunedrobustness"
direction = "down"
[data]
name = "digits"
n_test = 60
[train]
epochs = 1
lr = 0.003
[[compression]]
kind = "prune"
levels = [0.5, 0.9]
[[attacks]]
name = "pgd"
eps = [0.1]
steps = 2
"""


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("CREV_CACHE", str(tmp_path_factory.getbasetemp() / "model-cache"))


@pytest.fixture
def engine(tmp_path):
    engine, _ = init_database(f"sqlite:///{tmp_path / 'jobs.db'}")
    return engine


def _cells(engine, spec_hash: str) -> int:
    with engine.connect() as c:
        return c.execute(sa.select(sa.func.count()).select_from(JobCell).where(JobCell.job_key == spec_hash)).scalar_one()


def _results(engine) -> int:
    """Replication results written by jobs: rows of no curated release (the shipped replication
    release's rows, loaded on first start, carry its name and are not counted)."""
    rows = query_results(engine, ResultFilter(status="all", study_ids=["crev_replications"], releases=[""], include_quick=True))
    return len(rows)


def test_a_job_cancelled_after_its_first_cell_keeps_that_cell_writes_nothing_and_resumes(engine):
    spec = load_spec(tomllib.loads(MINI))
    job = create_job(engine, spec, executor="local", by="alice")

    # The curator presses "cancel" as the first cell is stored: the cancel flag is set in the same
    # transaction that stores the cell, so the runner sees it at its next check, deterministically.
    def cancel_on_first_cell(mapper, connection, target):
        connection.execute(sa.update(Job).where(Job.id == job.id).values(cancel_requested=True))

    sa.event.listen(JobCell, "after_insert", cancel_on_first_cell)
    try:
        out = run_job(engine, spec, show_progress=False, job_id=job.id, threads=1)
    finally:
        sa.event.remove(JobCell, "after_insert", cancel_on_first_cell)
    assert out.status == "cancelled" and out.n_results == 0 and out.submission_id is None
    assert out.cells_run == 1 and out.cells_skipped == 0
    stored = get_job(engine, job.id)
    assert stored.status == "cancelled" and stored.finished_at is not None and "cancelled" in stored.log
    assert _cells(engine, spec.spec_hash()) == 1
    assert _results(engine) == 0

    again = run_job(engine, spec, show_progress=False, threads=1)
    assert again.status == "done" and again.cells_skipped == 1 and again.cells_run == 2
    assert again.n_results > 0 and _results(engine) == again.n_results


def _wait_settled(engine, job_id: int, timeout: float = 300.0) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = get_job(engine, job_id)
        if job.status not in ("queued", "running"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still {get_job(engine, job_id).status} after {timeout:.0f} s; log:\n{get_job(engine, job_id).log}")


def _open_fds_to(path: Path) -> list[str]:
    fds = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == str(path):
                fds.append(fd)
        except OSError:
            continue
    return fds


def test_a_background_job_whose_process_dies_before_run_job_fails_with_its_output(engine, tmp_path, monkeypatch):
    # A broken torchattacks ahead of the real one on the child's path: `crev replicate run` stops at
    # import, before run_job records anything, exactly as on a machine where torchattacks is missing.
    shadow = tmp_path / "shadow" / "torchattacks"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('torchattacks is broken on this machine')\n", encoding="utf-8")
    monkeypatch.setenv("PYTHONPATH", str(shadow.parent))

    job_id = launch_background(engine, load_spec(tomllib.loads(MINI)), by="alice")
    assert not _open_fds_to(job_log_path(job_id)), "the launcher kept its handle on the job's output file"
    job = _wait_settled(engine, job_id, timeout=120)
    assert job.status == "failed" and job.finished_at is not None
    assert "exited with status 2 before the job finished" in job.error
    assert "pip install --no-deps torchattacks==3.5.1" in job.error  # the child's own message, from its output file
    assert str(job_log_path(job_id)) in job.error
    assert "pip install --no-deps torchattacks" in job_output(job_id)
    assert _results(engine) == 0


def test_a_background_job_that_finishes_is_left_done(engine):
    job_id = launch_background(engine, load_spec(tomllib.loads(MINI)), by="alice")
    job = _wait_settled(engine, job_id)
    assert job.status == "done", (job.error, job_output(job_id))
    assert job.error is None
    assert job.submission_id is not None and _results(engine) > 0
    for watcher in [t for t in threading.enumerate() if t.name == f"crev-job-{job_id}"]:  # gone already if it has finished
        watcher.join(timeout=60)
        assert not watcher.is_alive()
    assert get_job(engine, job_id).status == "done"  # the watcher saw the exit and left the job alone
