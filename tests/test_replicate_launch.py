"""Background jobs: the database URL never on a command line, a job quota, cancel by launcher or curator."""

from __future__ import annotations

import sys
import time

import pytest

from evidence import init_database
from evidence.errors import NotAuthorized
from replicate.jobs import launch
from replicate.jobs.store import create_job, get_job
from replicate.jobs.spec import load_spec
from tests.test_replicate import TINY

@pytest.fixture
def engine(tmp_path, monkeypatch):
    monkeypatch.setenv("CREV_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(launch.QUOTA_ENV, raising=False)
    monkeypatch.delenv(launch.LIMIT_ENV, raising=False)
    return init_database(f"sqlite:///{tmp_path / 'jobs.db'}", load=False)[0]


@pytest.fixture
def spec():
    return load_spec(__import__("tomllib").loads(TINY))


def test_child_command_line_holds_no_database_url(tmp_path):
    argv = launch.child_command(tmp_path / "job-1.json", 1, executor="local", by="ann")
    assert "--db" not in argv
    assert not any("://" in a for a in argv)


def test_the_child_process_gets_the_url_in_its_environment_not_its_arguments(engine, spec, monkeypatch):
    # A real child process that reports what it was given, in place of `crev replicate run`.
    probe = "import os, sys; print('ARGV', sys.argv[1:]); print('DB', os.environ.get('CREV_DB'))"
    monkeypatch.setattr(launch, "child_command", lambda spec_file, job_id, **kw: [sys.executable, "-c", probe, str(spec_file), str(job_id)])
    job_id = launch.launch_background(engine, spec, by="ann")
    for _ in range(600):  # the watcher thread settles the job when the probe exits
        if get_job(engine, job_id).status not in ("queued", "running"):
            break
        time.sleep(0.1)
    out = launch.job_output(job_id)
    assert f"DB {engine.url.render_as_string(hide_password=False)}" in out
    argv_line = next(line for line in out.splitlines() if line.startswith("ARGV"))
    assert "://" not in argv_line
    assert (launch.job_log_path(job_id).stat().st_mode & 0o777) == 0o600


def test_a_user_over_the_quota_cannot_launch_and_others_can_until_the_total(engine, spec, monkeypatch):
    monkeypatch.setenv(launch.QUOTA_ENV, "2")
    monkeypatch.setenv(launch.LIMIT_ENV, "3")

    def no_start(*args, **kwargs):
        raise AssertionError("no process may start over the quota")

    monkeypatch.setattr(launch.subprocess, "Popen", no_start)
    for _ in range(2):
        create_job(engine, spec, executor="local", by="ann")  # two running jobs of ann's
    with pytest.raises(NotAuthorized, match="ann already has 2 job"):
        launch.launch_background(engine, spec, by="ann")
    create_job(engine, spec, executor="local", by="bob")
    with pytest.raises(NotAuthorized, match="3 jobs are queued or running"):
        launch.launch_background(engine, spec, by="bob")
    assert launch.active_jobs(engine) == 3


def test_only_the_launcher_or_a_curator_can_cancel(engine, spec):
    job = create_job(engine, spec, executor="local", by="ann")
    with pytest.raises(NotAuthorized, match="launched by ann"):
        launch.cancel_job(engine, job.id, by="mallory")
    assert not get_job(engine, job.id).cancel_requested
    assert launch.cancel_job(engine, job.id, by="ann").cancel_requested
    other = create_job(engine, spec, executor="local", by="bob")
    assert launch.cancel_job(engine, other.id, by="carol", curator=True).cancel_requested


def test_replicate_commands_name_an_unusable_database_in_one_line(tmp_path):
    from typer.testing import CliRunner

    from replicate.cli import app

    zero = tmp_path / "zero.db"
    zero.write_bytes(b"")
    for url, expect in ((str(zero), "0-byte"), ("mysql://u:pw@host/crev", "unsupported scheme")):
        res = CliRunner().invoke(app, ["status", "--db", url])
        assert res.exit_code == 2, res.output
        assert res.exception is None or isinstance(res.exception, SystemExit)  # no traceback
        assert res.stderr.startswith("error: database ") and expect in res.stderr and len(res.stderr.strip().splitlines()) == 1
        assert "pw" not in res.stderr
    assert zero.stat().st_size == 0


def test_replicate_cancel_command_checks_who_launched_the_job(engine, spec, monkeypatch):
    """Issue 23 item 5: ``crev replicate cancel`` goes through cancel_job's owner check (look-alikes included)."""
    from typer.testing import CliRunner

    from replicate.cli import app

    job = create_job(engine, spec, executor="local", by="ann")
    url = engine.url.render_as_string(hide_password=False)
    for stranger in ("mallory", "\u0430nn-not", "\u200b"):
        res = CliRunner().invoke(app, ["cancel", str(job.id), "--db", url, "--by", stranger])
        assert res.exit_code == 2 and res.stderr.startswith("error: ") and len(res.stderr.strip().splitlines()) == 1, res.output
        assert not get_job(engine, job.id).cancel_requested
    res = CliRunner().invoke(app, ["cancel", str(job.id), "--db", url, "--by", "\u0430nn"])  # Cyrillic а: ann herself
    assert res.exit_code == 0, res.output
    assert get_job(engine, job.id).cancel_requested


def test_a_spec_or_cifar_batch_that_is_a_fifo_or_device_is_refused_without_blocking(tmp_path):
    """Issue 23: a FIFO named spec.toml blocked ``crev replicate run`` forever; /dev/zero as a batch ran out of memory."""
    import os

    from typer.testing import CliRunner

    from replicate.cli import app
    from replicate.train.datasets import DatasetError
    from replicate.train.local_data import read_cifar_batch

    os.mkfifo(tmp_path / "spec.toml")
    res = CliRunner().invoke(app, ["run", str(tmp_path / "spec.toml"), "--db", f"sqlite:///{tmp_path / 'j.db'}"])
    assert res.exit_code == 2 and "FIFO" in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.output
    (tmp_path / "data_batch_1").symlink_to("/dev/zero")
    with pytest.raises(DatasetError, match="character device"):
        read_cifar_batch(tmp_path / "data_batch_1")
