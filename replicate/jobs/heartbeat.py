"""A running job's heartbeat: a daemon thread in the job's own process that writes ``heartbeat_at``.

:func:`replicate.run_job` holds a :class:`Heartbeat` from the moment its job's state is set up until
the job is done, cancelled or failed, whatever the executor: local cells, Dask workers, or the
head process of a SLURM/PBS run waiting on its batch jobs. Every ``every`` seconds
(:func:`replicate.jobs.store.heartbeat_interval`, 30 s by default) the thread writes ``heartbeat_at = now``
through :func:`replicate.jobs.store.beat`, one short transaction on a pooled connection of its own, never
the job's session. A beat only touches a job still running or queued, so a late beat cannot revive a
finished one. When the database cannot be reached for a while (a PostgreSQL restart, an SQLite lock
held past its timeout) the beat is logged and tried again at the next interval; the job itself
never sees the error. The staleness rule that reads the beats is in :mod:`replicate.jobs.store`.

A job whose process dies stops beating with it: after :data:`replicate.jobs.store.HEARTBEAT_STALE_AFTER`
it is stale. A process that is alive but stuck (a deadlock in a worker) keeps beating; the heartbeat
says that the process is alive, the finished cells say that it makes progress.
"""

from __future__ import annotations

import logging
import threading

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.pool import StaticPool

from .store import beat, heartbeat_interval

__all__ = ["Heartbeat"]

log = logging.getLogger(__name__)


class Heartbeat:
    """Beat for job ``job_id`` every ``every`` seconds (default :func:`~replicate.jobs.store.heartbeat_interval`)
    from a daemon thread, between :meth:`start` and :meth:`stop` (or as a context manager).

    ``beats`` counts the beats written and ``failures`` the ones the database refused. An in-memory
    SQLite database (one connection shared by every thread, and invisible to any other process) gets
    no heartbeat thread: nothing outside this process could read it.
    """

    def __init__(self, engine: Engine, job_id: int, *, every: float | None = None):
        self.engine, self.job_id = engine, job_id
        self.every = heartbeat_interval() if every is None else float(every)
        if self.every <= 0:
            raise ValueError(f"heartbeat interval {self.every:g} s: must be above 0")
        self.beats = 0
        self.failures = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> Heartbeat:
        if self._thread is not None:
            raise RuntimeError(f"the heartbeat of job {self.job_id} has already been started")
        if isinstance(self.engine.pool, StaticPool):
            log.info("job %s: in-memory database, no heartbeat thread", self.job_id)
            return self
        self._thread = threading.Thread(target=self._run, name=f"crev-heartbeat-{self.job_id}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 60.0) -> None:
        """Stop beating and wait for the thread to end (a beat in progress finishes first; it is bounded
        by the database's lock timeout). The runner calls this *before* it writes a job's final state,
        so no beat is written after ``finished_at``. Calling it again is a no-op."""
        self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("job %s: the heartbeat thread did not stop within %g s", self.job_id, timeout)

    def __enter__(self) -> Heartbeat:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _beat_once(self) -> None:
        try:
            written = beat(self.engine, self.job_id)
        except sa.exc.SQLAlchemyError as exc:  # the database is unavailable for now: the job goes on, the next beat retries
            self.failures += 1
            log.warning("job %s: heartbeat not written (%s); trying again in %g s", self.job_id,
                        str(exc).splitlines()[0] if str(exc) else type(exc).__name__, self.every)
        else:
            self.beats += written

    def _run(self) -> None:
        self._beat_once()  # at once: the job is alive from its first second
        while not self._stop.wait(self.every):
            self._beat_once()
