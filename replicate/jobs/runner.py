"""Running a job, on any executor (the grid loop itself is :func:`replicate.jobs.executors.run_grid`).

Stages: train (or load) the dense model of every seed, evaluate the grid's cells (skipping cells a
previous run of the same spec finished), then assemble the results, decide the verdicts and write
everything in one transaction. Cancellation is checked between cells (and between attacks inside a
cell); a cancelled or crashed job writes no results, and its finished cells stay for a rerun.

From the moment the job's state is set up until it ends (done, cancelled or failed), a
:class:`~replicate.jobs.heartbeat.Heartbeat` thread in this process writes the job's ``heartbeat_at``
every :data:`~replicate.jobs.store.HEARTBEAT_EVERY`: through hours of dense training, and while a Dask or
SLURM/PBS run waits on its workers, so a live job is never taken for dead (:mod:`replicate.jobs.store`).
"""

from __future__ import annotations

import json
import os
import socket
import time
import traceback
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine

from evidence.models import utcnow
from evidence.vocab import Executor, JobStatus

from ..train.device import configure
from .cells import CellResult, plan
from .executors import ClusterConfig, ClusterError, JobCancelled, TrainedModel, open_pool, run_grid
from .heartbeat import Heartbeat
from .store import ( assemble, cancel_requested, create_job, finished_cells, heartbeat_interval, store_cell, update_job, verdicts,
                   write_results)
from .spec import JobSpec
from .verdict import ReplicationVerdict

__all__ = ["RunOutcome", "run_job", "JobCancelled"]


@dataclass
class RunOutcome:
    """What a run did: ``n_results`` rows measured, ``n_skipped_existing`` of them already stored by an
    earlier run of the same spec (not written again)."""

    job_id: int
    status: JobStatus
    submission_id: int | None
    verdicts: list[ReplicationVerdict] = field(default_factory=list)
    n_results: int = 0
    timings: dict = field(default_factory=dict)
    cells_run: int = 0
    cells_skipped: int = 0
    n_skipped_existing: int = 0

    def to_dict(self) -> dict:
        d = self.__dict__.copy()
        d["status"] = self.status.value
        d["verdicts"] = [v.model_dump(mode="json") for v in self.verdicts]
        return d


def run_job(engine: Engine, spec: JobSpec, *, executor: Executor | str = Executor.local, scheduler: str | None = None, workers: int = 2,
            by: str = "unknown", show_progress: bool = True, job_id: int | None = None, threads: int | None = None,
            release: str = "", approved: bool = False, reviewed_by: str | None = None, device: str | None = None,
            cluster: ClusterConfig | None = None) -> RunOutcome:
    """Run ``spec`` to the end; returns what it wrote. Re-running a spec skips its finished cells,
    and writes no row that an earlier run of the same spec already stored.

    The local executor evaluates cells one after another with ``threads`` torch threads (default 1,
    like each Dask worker); Dask workers use one thread each. Numbers are bitwise identical between executors
    when the thread counts agree (``threads=1``); with more threads, floating-point reductions may
    differ in the last bits.

    While it runs, a heartbeat thread writes the job's ``heartbeat_at`` every
    :func:`~replicate.jobs.store.heartbeat_interval` seconds; it stops when the job ends.
    """
    try:
        executor = Executor(executor)
    except ValueError:
        raise ClusterError(f"executor must be one of {', '.join(e.value for e in Executor)}") from None
    if executor in (Executor.slurm, Executor.pbs) and cluster is None:
        raise ClusterError(f"executor {executor.value} needs a replicate.jobs.executors.ClusterConfig (queue, jobs, GPUs per job)")
    if device is not None:  # where it runs is not part of the spec's hash: finished cells are reused across devices
        spec = spec.model_copy(update={"device": device})
    if threads is not None and spec.threads is None:
        spec = spec.model_copy(update={"threads": threads})
    if executor is not Executor.slurm and executor is not Executor.pbs:  # a batch head process only schedules: no device needed here
        # an unavailable device fails here, before any job state is written; the deterministic settings
        # (CUBLAS_WORKSPACE_CONFIG among them) must precede the first CUDA call, i.e. the dense training
        configure(spec.device, attack_mixed_precision=spec.attack_mixed_precision)
    every = heartbeat_interval()  # a bad CREV_HEARTBEAT_EVERY fails here, before any job state is written
    job = create_job(engine, spec, executor=executor, by=by) if job_id is None else None
    job_id = job.id if job else job_id
    spec_json, h = spec.model_dump_json(), spec.spec_hash()
    cells = plan(spec)
    done = finished_cells(engine, h)
    todo = [c for c in cells if c.key not in done]
    timings: dict = {}
    update_job(engine, job_id, cells_total=len(cells), cells_done=len(cells) - len(todo), stage="train dense models",
               log_line=f"{len(cells)} cells, {len(done)} already finished by an earlier run of this spec; pid {os.getpid()} on {socket.gethostname()}")
    is_cancelled = lambda: cancel_requested(engine, job_id)  # noqa: E731
    counter = {"n": len(cells) - len(todo)}
    heartbeat = Heartbeat(engine, job_id, every=every).start()
    # every model and cell of the job uses the cells' thread count (1 by default), never the calling
    # process's: on a CPU the thread count changes floating-point reductions (and the cache key records it)
    cell_threads = threads or spec.threads or 1
    try:
        t0 = time.perf_counter()

        def on_model(trained: TrainedModel):
            update_job(engine, job_id, log_line=trained.log_line())

        def on_done(payload: CellResult):
            store_cell(engine, h, payload)
            done[payload.key] = payload
            counter["n"] += 1
            if counter["n"] == len(cells) - len(todo) + 1:
                update_job(engine, job_id, stage="grid cells")
            update_job(engine, job_id, cells_done=counter["n"], progress=counter["n"] / len(cells),
                       log_line=f"cell {payload.key} done in {payload.seconds:.1f}s"
                       + (" (possible gradient masking: " + ", ".join(payload.failed_checks()) + ")" if payload.possible_gradient_masking else ""))

        # the dense model of every seed (and the dense cells' transfer surrogate), for the cells still to run
        models = [(seed, sur) for seed in sorted({c.seed for c in todo}) for sur in ((False, True) if spec.checks else (False,))]
        with open_pool(executor, scheduler=scheduler, workers=workers, cluster=cluster, show=show_progress) as (pool, startup):
            timings["cluster_start_s"] = startup
            grid = run_grid(pool, spec_json, todo, models, on_done=on_done, on_model=on_model, is_cancelled=is_cancelled, threads=cell_threads,
                            show=show_progress)
        timings["dense_s"] = grid.models_s
        timings["cells_s"] = grid.seconds - grid.models_s
        if grid.duplicates_ignored:
            update_job(engine, job_id, log_line=f"{grid.duplicates_ignored} cell(s) finished twice on the workers; stored once")
        update_job(engine, job_id, stage="write results")
        assembled = assemble(spec, done)
        vlist = verdicts(engine, spec, assembled)
        timings["total_s"] = time.perf_counter() - t0
        update_job(engine, job_id, timings_json=json.dumps(timings))
        heartbeat.stop()  # joined before the job's final state is written: no beat may land after finished_at
        sub, skipped_rows = write_results(engine, job_id, spec, assembled, vlist, by, release=release, approved=approved, reviewed_by=reviewed_by)
        n = len(assembled.results)
        update_job(engine, job_id, log_line=(f"wrote {n - skipped_rows} results as submission {sub}" if sub else "wrote nothing")
                   + (f"; {skipped_rows} already stored by an earlier run of this spec" if skipped_rows else ""))
        return RunOutcome(job_id, JobStatus.done, sub, vlist, n, timings, len(todo), len(cells) - len(todo), skipped_rows)
    except JobCancelled:
        heartbeat.stop()
        update_job(engine, job_id, status=JobStatus.cancelled, finished_at=utcnow(), stage="cancelled",
                   log_line="cancelled; finished cells kept, no results written")
        skipped = len(cells) - len(todo)
        return RunOutcome(job_id, JobStatus.cancelled, None, [], 0, timings, counter["n"] - skipped, skipped)
    except BaseException as exc:
        heartbeat.stop()
        update_job(engine, job_id, status=JobStatus.failed, finished_at=utcnow(), error=f"{type(exc).__name__}: {exc}",
                   log_line="failed:\n" + traceback.format_exc(limit=5))
        raise
    finally:
        heartbeat.stop()

