"""A running job's heartbeat (migration 0004): the job's own process writes ``heartbeat_at`` every
few seconds, staleness is judged on it (5 minutes), and rows from before it keep the old rule
(30 minutes after the last finished cell or the start).

Real databases (SQLite files; PostgreSQL too when ``CREV_TEST_POSTGRES_URL`` is set), real jobs on a
tiny spec, and a real background process; only the database outage is simulated (an engine event
that refuses the heartbeat's statement).
"""

from __future__ import annotations

import logging
import threading
import time
import tomllib
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from typer.testing import CliRunner

from crev_cli import app
from evidence import Job, JobCell, get_engine, init_database
from evidence.db import _alembic_config, schema_revision, writer
from evidence.models import utcnow
from replicate import load_spec, run_job
from replicate.jobs.heartbeat import Heartbeat
from replicate.jobs.store import (HEARTBEAT_ENV, HEARTBEAT_STALE_AFTER, STALE_AFTER, JobStatus, beat, create_job, get_job, heartbeat_interval,
                            is_stale, job_table, reap_stale_jobs, request_cancel)
from replicate.jobs.launch import job_output, launch_background
from tests.test_house_jobs import MINI

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(autouse=True)
def _env(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("CREV_CACHE", str(tmp_path_factory.getbasetemp() / "model-cache"))
    monkeypatch.delenv(HEARTBEAT_ENV, raising=False)


@pytest.fixture
def engine(empty_url):
    """A database with the schema and no releases, on SQLite and (when configured) PostgreSQL."""
    return init_database(empty_url, load=False)[0]


@pytest.fixture
def sqlite_engine(tmp_path):
    return init_database(f"sqlite:///{tmp_path / 'jobs.db'}", load=False)[0]


@pytest.fixture
def spec():
    return load_spec(tomllib.loads(MINI))


def _set(engine, job_id: int, **values) -> None:
    with engine.begin() as c:
        c.execute(sa.update(Job.__table__).where(Job.__table__.c.id == job_id).values(**values))


def _stored_heartbeat(engine, job_id: int):
    return get_job(engine, job_id).heartbeat_at


# --------------------------------------------------------------------------- the staleness rule


def test_a_job_whose_heartbeat_is_fresh_is_not_stale_though_its_last_cell_finished_hours_ago(engine, spec):
    """Hours into training one CIFAR-10 model: no cell for two hours, but the process beats."""
    job = create_job(engine, spec, executor="local", by="t")
    now = utcnow()
    _set(engine, job.id, created_at=now - timedelta(hours=3), started_at=now - timedelta(hours=3))
    with writer(engine).begin() as c:
        c.execute(sa.insert(JobCell.__table__).values(job_key=spec.spec_hash(), cell_key="seed0-dense", payload_json="{}", seconds=1.0,
                                                      created_at=now - timedelta(hours=2)))
    assert beat(engine, job.id, now=now - timedelta(seconds=20))
    job = get_job(engine, job.id)
    assert not is_stale(engine, job, now=now)
    assert reap_stale_jobs(engine, now=now) == []
    table = job_table(engine, now=now)
    assert table.loc[table["id"] == job.id, "stale"].tolist() == [False]
    assert table.loc[table["id"] == job.id, "heartbeat_at"].notna().all()
    # the same job without its heartbeat (as before migration 0004) is stale under the old rule
    _set(engine, job.id, heartbeat_at=None)
    assert is_stale(engine, get_job(engine, job.id), now=now)


def test_a_job_whose_heartbeat_stopped_is_stale_after_five_minutes_and_reaped(engine, spec):
    job = create_job(engine, spec, executor="local", by="t")
    last = utcnow()
    assert beat(engine, job.id, now=last)  # the process died right after this beat
    job = get_job(engine, job.id)
    assert HEARTBEAT_STALE_AFTER == timedelta(minutes=5)
    assert not is_stale(engine, job, now=last + timedelta(minutes=4))
    assert is_stale(engine, job, now=last + timedelta(minutes=6))
    assert reap_stale_jobs(engine, now=last + timedelta(minutes=4)) == []
    assert reap_stale_jobs(engine, now=last + timedelta(minutes=6)) == [job.id]
    dead = get_job(engine, job.id)
    assert dead.status == JobStatus.failed and dead.stage == "stale" and dead.finished_at is not None
    assert "stale: no heartbeat within 0:05:00" in dead.error and "marked failed: stale" in dead.log
    assert not is_stale(engine, dead, now=last + timedelta(hours=1))  # a failed job is never stale again
    assert not beat(engine, job.id)  # and a late beat does not revive it
    assert _stored_heartbeat(engine, job.id) == last


def test_a_job_without_a_heartbeat_keeps_the_thirty_minute_rule(engine, spec):
    """Rows from before migration 0004, and jobs whose process has not started yet."""
    job = create_job(engine, spec, executor="local", by="t")
    started = get_job(engine, job.id).started_at
    assert job.heartbeat_at is None and STALE_AFTER == timedelta(minutes=30)
    assert reap_stale_jobs(engine, now=started + timedelta(minutes=6)) == []  # five minutes is the heartbeat's rule, not this one's
    assert reap_stale_jobs(engine, now=started + timedelta(minutes=31)) == [job.id]
    assert "no heartbeat, and no finished cell or start within 0:30:00" in get_job(engine, job.id).error


def test_cancel_stops_a_beating_job_and_closes_one_whose_heartbeat_stopped_at_once(engine, spec):
    beating, gone = (create_job(engine, spec, executor="local", by="t") for _ in range(2))
    for job in (beating, gone):
        _set(engine, job.id, created_at=utcnow() - timedelta(minutes=20), started_at=utcnow() - timedelta(minutes=20))
    assert beat(engine, beating.id) and beat(engine, gone.id, now=utcnow() - timedelta(minutes=10))
    asked = request_cancel(engine, beating.id)
    assert asked.status == JobStatus.running and asked.cancel_requested  # its process will stop at the next check
    closed = request_cancel(engine, gone.id)
    assert closed.status == JobStatus.cancelled and "cancelled while stale" in closed.log


def test_the_heartbeat_interval_comes_from_the_environment_and_is_checked(monkeypatch):
    assert heartbeat_interval() == 30.0
    monkeypatch.setenv(HEARTBEAT_ENV, "0.2")
    assert heartbeat_interval() == 0.2
    for bad, message in (("soon", "not a number"), ("0", "must be above 0"), ("120", "at most 100 s")):
        monkeypatch.setenv(HEARTBEAT_ENV, bad)
        with pytest.raises(ValueError, match=message):
            heartbeat_interval()


# --------------------------------------------------------------------------- the heartbeat thread


def test_the_heartbeat_survives_a_database_that_is_briefly_unavailable(engine, spec, caplog):
    job = create_job(engine, spec, executor="local", by="t")
    refused = {"n": 0}

    def outage(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith("UPDATE job SET heartbeat_at") and refused["n"] < 3:
            refused["n"] += 1
            raise sa.exc.OperationalError(statement, parameters, Exception("could not connect to server"))

    sa.event.listen(engine, "before_cursor_execute", outage)
    try:
        with caplog.at_level(logging.WARNING, logger="replicate.jobs.heartbeat"):
            hb = Heartbeat(engine, job.id, every=0.05).start()
            deadline = time.monotonic() + 30
            while hb.beats < 2 and time.monotonic() < deadline:
                time.sleep(0.02)
            alive = hb.alive
            hb.stop()
    finally:
        sa.event.remove(engine, "before_cursor_execute", outage)
    assert hb.failures == 3 and hb.beats >= 2 and alive
    assert not hb.alive
    assert _stored_heartbeat(engine, job.id) is not None
    assert sum("heartbeat not written (" in r.getMessage() and "could not connect" in r.getMessage() for r in caplog.records) == 3


@pytest.mark.slow
def test_a_job_run_in_this_process_beats_while_it_runs_and_stops_at_the_end(engine, spec, monkeypatch):
    monkeypatch.setenv(HEARTBEAT_ENV, "0.2")
    beats = []

    def count(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith("UPDATE job SET heartbeat_at"):
            beats.append(time.monotonic())

    sa.event.listen(engine, "after_cursor_execute", count)
    try:
        t0 = time.monotonic()
        out = run_job(engine, spec, show_progress=False, threads=1)
        seconds = time.monotonic() - t0
    finally:
        sa.event.remove(engine, "after_cursor_execute", count)
    job = get_job(engine, out.job_id)
    assert out.status == "done"
    # about one beat per 0.2 s from the start of the run to its end (a loaded machine may delay some)
    assert len(beats) >= max(2, int(seconds / 0.2) // 4), (len(beats), seconds)
    assert beats[0] - t0 < seconds / 4 and beats[-1] - beats[0] > seconds / 2, (beats[0] - t0, beats[-1] - beats[0], seconds)
    assert job.started_at <= job.heartbeat_at <= job.finished_at
    assert not [t for t in threading.enumerate() if t.name == f"crev-heartbeat-{out.job_id}"]
    n = len(beats)
    time.sleep(0.6)
    assert len(beats) == n  # nothing beats after the end


@pytest.mark.slow
def test_the_head_process_of_a_slurm_job_beats_while_its_batch_jobs_wait_in_the_queue(sqlite_engine, spec, monkeypatch):
    """No scheduler here: the batch cluster is replaced by a pool whose workers sit in the queue for
    1.5 s (no task finishes, nothing is written but the heartbeat), then run the tasks in this process."""
    import contextlib

    from replicate.jobs import executors

    engine = sqlite_engine
    monkeypatch.setenv(HEARTBEAT_ENV, "0.1")
    seen = {}

    class QueuedPool(executors.LocalPool):
        def as_completed(self, futures):
            job_id = int(job_table(engine)["id"].iloc[0])
            deadline = time.monotonic() + 10
            while _stored_heartbeat(engine, job_id) is None and time.monotonic() < deadline:
                time.sleep(0.02)
            seen["before"] = _stored_heartbeat(engine, job_id)
            time.sleep(1.5)
            seen["after"] = _stored_heartbeat(engine, job_id)
            return super().as_completed(futures)

    @contextlib.contextmanager
    def batch_pool(executor, **kw):
        assert executor == "slurm" and kw["cluster"].queue == "gpu"
        seen["executor"] = executor
        yield QueuedPool(), 0.0

    monkeypatch.setattr(executors, "open_pool", batch_pool)
    monkeypatch.setattr("replicate.jobs.runner.open_pool", batch_pool)
    out = run_job(engine, spec, executor="slurm", cluster=executors.ClusterConfig(queue="gpu"), show_progress=False)
    assert out.status == "done" and out.cells_run == 3 and seen["executor"] == "slurm"
    assert seen["before"] is not None and seen["after"] - seen["before"] >= timedelta(seconds=1)


@pytest.mark.slow
def test_a_background_job_writes_heartbeats_from_its_own_process(sqlite_engine, spec, monkeypatch):
    engine = sqlite_engine
    monkeypatch.setenv(HEARTBEAT_ENV, "0.2")  # inherited by the child process
    job_id = launch_background(engine, spec, by="alice")
    seen, stale_seen = set(), False
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        job = get_job(engine, job_id)
        if job.heartbeat_at is not None:
            seen.add(job.heartbeat_at)
            table = job_table(engine)
            stale_seen |= bool(table.loc[table["id"] == job_id, "stale"].iloc[0])
        if job.status not in ("queued", "running"):
            break
        time.sleep(0.05)
    job = get_job(engine, job_id)
    assert job.status == "done", (job.error, job_output(job_id))
    assert len(seen) >= 3, f"{len(seen)} distinct heartbeats seen while the job ran"
    assert all(job.started_at <= t <= job.finished_at for t in seen)
    assert not stale_seen
    assert reap_stale_jobs(engine, now=utcnow() + timedelta(hours=1)) == []  # a finished job is never reaped


# --------------------------------------------------------------------------- migration 0004


def _upgrade_to(engine, revision: str) -> None:
    cfg = _alembic_config(engine)
    with writer(engine).begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def test_crev_evidence_init_upgrades_a_0003_database_and_keeps_its_jobs(empty_url):
    engine = get_engine(empty_url)
    _upgrade_to(engine, "0003")
    assert "heartbeat_at" not in {c["name"] for c in sa.inspect(engine).get_columns("job")}
    started = utcnow() - timedelta(minutes=10)
    with engine.begin() as conn:  # a job running when the database was upgraded
        conn.execute(sa.text(
            "INSERT INTO job (name, claim_id, spec_json, spec_hash, quick, executor, status, stage, progress, cells_total, cells_done, log, "
            "cancel_requested, created_by, created_at, started_at, timings_json) VALUES ('old', 'c', '{}', 'h', false, 'local', 'running', "
            "'grid cells', 0.5, 4, 2, '', false, 'ann', :t, :t, '')"), {"t": started})
    engine.dispose()

    res = CliRunner().invoke(app, ["evidence", "init", "--no-seed", "--db", empty_url])
    assert res.exit_code == 0, res.output
    engine = get_engine(empty_url)
    assert schema_revision(engine) >= "0004"  # 0004 or a later head (0005 adds review triggers)
    cols = {c["name"]: c for c in sa.inspect(engine).get_columns("job")}
    assert set(cols) == set(Job.__table__.columns.keys())  # the migration matches the model
    assert cols["heartbeat_at"]["nullable"] is True
    old = get_job(engine, 1)
    assert (old.name, old.status, old.cells_done, old.heartbeat_at) == ("old", "running", 2, None)
    assert not is_stale(engine, old, now=started + timedelta(minutes=29))  # the old rule
    assert is_stale(engine, old, now=started + timedelta(minutes=31))
    when = utcnow()
    assert beat(engine, 1, now=when)
    back = get_job(engine, 1).heartbeat_at
    assert back == when and back.utcoffset() == timedelta(0)  # timezone-aware UTC on both backends
    assert not is_stale(engine, get_job(engine, 1), now=when + timedelta(minutes=4))  # once it beats, the heartbeat's rule
    assert is_stale(engine, get_job(engine, 1), now=when + timedelta(minutes=6))


def test_migration_0004_downgrades_to_0003(empty_url):
    engine = get_engine(empty_url)
    _upgrade_to(engine, "0004")
    cfg = _alembic_config(engine)
    with writer(engine).begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0003")
    assert schema_revision(engine) == "0003"
    assert "heartbeat_at" not in {c["name"] for c in sa.inspect(engine).get_columns("job")}


# --------------------------------------------------------------------------- the Replications page


def test_the_replications_page_shows_heartbeats_and_flags_a_job_whose_process_is_gone(seeded_url, spec, monkeypatch, tmp_path):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("CREV_DB", seeded_url)
    monkeypatch.setenv("CREV_APP_PRECOMPUTE", "0")
    monkeypatch.setattr("ui.state.PRECOMPUTE", False, raising=False)
    engine = get_engine(seeded_url)
    alive = create_job(engine, spec, executor="local", by="ann")
    dead = create_job(engine, spec, executor="local", by="bob")
    for job in (alive, dead):  # both started 20 minutes ago; bob's process died 10 minutes ago
        _set(engine, job.id, created_at=utcnow() - timedelta(minutes=20), started_at=utcnow() - timedelta(minutes=20))
    assert beat(engine, alive.id) and beat(engine, dead.id, now=utcnow() - timedelta(minutes=10))
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("ui/replications.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    table = next(d.value for d in at.dataframe if "stale (process gone)" in d.value.columns).set_index("id")
    assert table.loc[dead.id, "stale (process gone)"] and not table.loc[alive.id, "stale (process gone)"]
    assert table["last heartbeat (UTC)"].notna().all()
    assert [w.value for w in at.warning] == [f"Job {dead.id} is stale: its process is gone (no heartbeat). Cancel marks it cancelled at once."]
    assert any("No heartbeat for 5 minutes means its process is gone" in c.value for c in at.caption)
