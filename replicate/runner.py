"""Running a job: locally (one process, a progress bar per stage) or on Dask distributed.

Stages: train (or load) the dense model of every seed, evaluate the grid's cells (skipping cells a
previous run of the same spec finished), then assemble the results, decide the verdicts and write
everything in one transaction. Cancellation is checked between cells (and between attacks inside a
cell); a cancelled or crashed job writes no results, and its finished cells stay for a rerun.

From the moment the job's state is set up until it ends (done, cancelled or failed), a
:class:`~replicate.heartbeat.Heartbeat` thread in this process writes the job's ``heartbeat_at``
every :data:`~replicate.jobs.HEARTBEAT_EVERY`: through hours of dense training, and while a Dask or
SLURM/PBS run waits on its workers, so a live job is never taken for dead (:mod:`replicate.jobs`).
"""

from __future__ import annotations

import json
import os
import socket
import time
import traceback
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine
from tqdm import tqdm

from evidence.models import utcnow

from .cells import CellResult, dense_model, plan, run_cell, split_for, surrogate_model
from .heartbeat import Heartbeat
from .jobs import (JobStatus, assemble, cancel_requested, create_job, finished_cells, heartbeat_interval, store_cell, update_job, verdicts,
                   write_results)
from .spec import JobSpec
from .training import torch_threads
from .verdict import Verdict

__all__ = ["RunOutcome", "run_job", "JobCancelled"]


class JobCancelled(Exception):
    """The job was cancelled; finished cells are kept, no results were written."""


@dataclass
class RunOutcome:
    """What a run did: ``n_results`` rows measured, ``n_skipped_existing`` of them already stored by an
    earlier run of the same spec (not written again)."""

    job_id: int
    status: JobStatus
    submission_id: int | None
    verdicts: list[Verdict] = field(default_factory=list)
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


def _run_local(spec_json, todo, on_done, is_cancelled, show, threads):
    bar = tqdm(total=len(todo), desc="grid cells", unit="cell", disable=not show)
    for cell in todo:
        if is_cancelled():
            raise JobCancelled()
        try:
            payload = run_cell(spec_json, cell, cancelled=is_cancelled, threads=threads)
        except InterruptedError:
            raise JobCancelled() from None
        on_done(payload)
        bar.update(1)
    bar.close()


def _train_dense_task(spec_json: str, seed: int, surrogate: bool, threads: int) -> tuple[int, bool, str, str]:
    """On a Dask worker: train (or load) one dense or surrogate model into the shared model cache with
    ``threads`` torch threads. Returns (seed, surrogate, cache hit/miss, weights hash)."""
    spec = JobSpec.model_validate_json(spec_json)
    with torch_threads(threads):
        _, rec = (surrogate_model if surrogate else dense_model)(spec, seed)
    return seed, surrogate, rec.cache, rec.weights_hash


def _model_line(seed: int, surrogate: bool, cache: str, weights: str) -> str:
    """The job-log line of one trained (or loaded) dense or surrogate model."""
    return f"{'surrogate' if surrogate else 'dense'} model seed {seed}: cache {cache} (weights {weights})"


def _run_dask(spec_json, todo, on_done, is_cancelled, show, scheduler, workers, dense=(), on_dense=None, threads: int = 1):
    """Run the cells on a Dask cluster; the dense and surrogate models of ``dense`` ((seed, surrogate)
    pairs) are trained on the workers first, in parallel. Returns (cluster start-up s, dense training s)."""
    from dask.distributed import Client, LocalCluster, as_completed

    import dask

    t0 = time.perf_counter()
    cluster = None
    if scheduler:
        client = Client(scheduler)
    else:
        # Dask's nanny sets MALLOC_TRIM_THRESHOLD_ in its workers; any explicit value also freezes glibc's
        # dynamic mmap threshold, so every large tensor is mmap'd and unmapped again: measured here, a
        # cell ran 2.2x slower (3.6 s vs 1.6 s). Unset, the workers run as fast as the local executor.
        with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
    startup = time.perf_counter() - t0
    try:
        t_dense = time.perf_counter()
        if dense:
            trained = [client.submit(_train_dense_task, spec_json, seed, sur, threads, key=f"dense-{seed}-{sur}-{time.time_ns()}", pure=False)
                       for seed, sur in dense]
            for fut in trained:
                if is_cancelled():
                    for f in trained:
                        f.cancel()
                    raise JobCancelled()
                on_dense(*fut.result())
        dense_s = time.perf_counter() - t_dense
        # compressed cells first (they cost more): fewer idle workers at the end of the grid
        futures = [client.submit(run_cell, spec_json, c, key=f"cell-{c.key}-{time.time_ns()}", pure=False, priority=0 if c.dense else 1)
                   for c in todo]
        bar = tqdm(total=len(todo), desc=f"grid cells (dask, {len(client.scheduler_info()['workers'])} workers)", unit="cell", disable=not show)
        for fut in as_completed(futures):
            if is_cancelled():
                for f in futures:
                    f.cancel()
                raise JobCancelled()
            on_done(fut.result())
            bar.update(1)
        bar.close()
        return startup, dense_s
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def run_job(engine: Engine, spec: JobSpec, *, executor: str = "local", scheduler: str | None = None, workers: int = 2,
            by: str = "unknown", show_progress: bool = True, job_id: int | None = None, threads: int | None = None,
            release: str = "", approved: bool = False, reviewed_by: str | None = None, device: str | None = None,
            cluster=None) -> RunOutcome:
    """Run ``spec`` to the end; returns what it wrote. Re-running a spec skips its finished cells,
    and writes no row that an earlier run of the same spec already stored.

    The local executor evaluates cells one after another with ``threads`` torch threads (default 1,
    like each Dask worker); Dask workers use one thread each. Numbers are bitwise identical between executors
    when the thread counts agree (``threads=1``); with more threads, floating-point reductions may
    differ in the last bits.

    While it runs, a heartbeat thread writes the job's ``heartbeat_at`` every
    :func:`~replicate.jobs.heartbeat_interval` seconds; it stops when the job ends.
    """
    if executor not in ("local", "dask", "slurm", "pbs"):
        raise ValueError("executor must be local, dask, slurm or pbs")
    if executor in ("slurm", "pbs") and cluster is None:
        raise ValueError(f"executor {executor} needs a replicate.cluster.ClusterConfig (queue, jobs, GPUs per job)")
    if device is not None:  # where it runs is not part of the spec's hash: finished cells are reused across devices
        spec = spec.model_copy(update={"device": device})
    if threads is not None and spec.threads is None:
        spec = spec.model_copy(update={"threads": threads})
    batch = executor in ("slurm", "pbs")  # this process only schedules: dense models are trained on the workers
    if not batch:
        from .device import configure

        # an unavailable device fails here, before any job state is written; the deterministic settings
        # (CUBLAS_WORKSPACE_CONFIG among them) must precede the first CUDA call, i.e. the dense training below
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
    cell_threads = threads or spec.threads or 1
    try:
        t0 = time.perf_counter()
        split = split_for(spec) if not batch else None
        on_workers = executor == "dask" and bool(todo)  # the workers train them, in parallel, before the cells
        # dense and surrogate models train with the cells' thread count (1 by default), never the calling
        # process's: on a CPU the thread count changes floating-point reductions, so the same seed trained
        # with 2 threads gives other weights than with 1 (and the cache key records the count)
        with torch_threads(cell_threads):
            for seed in (spec.seeds if not (batch or on_workers) else []):
                if is_cancelled():
                    raise JobCancelled()
                bar = tqdm(total=spec.train.epochs, desc=f"dense model, seed {seed}", unit="epoch", disable=not show_progress, leave=False)
                _, info = dense_model(spec, seed, split, progress=lambda e, n: bar.update(1))
                bar.close()
                update_job(engine, job_id, log_line=_model_line(seed, False, info.cache, info.weights_hash))
                if spec.checks:  # the dense cells' transfer source
                    _, sinfo = surrogate_model(spec, seed, split)
                    update_job(engine, job_id, log_line=_model_line(seed, True, sinfo.cache, sinfo.weights_hash))
        timings["dense_s"] = time.perf_counter() - t0
        update_job(engine, job_id, stage="grid cells")
        t1 = time.perf_counter()

        def on_done(payload: CellResult):
            store_cell(engine, h, payload)
            done[payload.key] = payload
            counter["n"] += 1
            update_job(engine, job_id, cells_done=counter["n"], progress=counter["n"] / len(cells),
                       log_line=f"cell {payload.key} done in {payload.seconds:.1f}s"
                       + (" (possible gradient masking: " + ", ".join(payload.failed_checks()) + ")" if payload.possible_gradient_masking else ""))

        if executor == "local":
            _run_local(spec_json, todo, on_done, is_cancelled, show_progress, cell_threads)
        elif batch:
            from .cluster import run_on_batch_cluster

            timings["cluster_start_s"] = run_on_batch_cluster(cluster, spec_json, todo, on_done, is_cancelled, show=show_progress)
        else:
            def on_dense(*trained):
                update_job(engine, job_id, log_line=_model_line(*trained))

            pairs = [(seed, sur) for seed in spec.seeds for sur in ((False, True) if spec.checks else (False,))] if on_workers else []
            timings["cluster_start_s"], dense_s = _run_dask(spec_json, todo, on_done, is_cancelled, show_progress, scheduler, workers,
                                                            dense=pairs, on_dense=on_dense, threads=cell_threads)
            if on_workers:
                timings["dense_s"] += dense_s
                t1 += dense_s
        timings["cells_s"] = time.perf_counter() - t1 - timings.get("cluster_start_s", 0.0)
        update_job(engine, job_id, stage="write results")
        assembled = assemble(spec, done)
        vlist = verdicts(engine, spec, assembled)
        timings["total_s"] = time.perf_counter() - t0
        update_job(engine, job_id, timings_json=json.dumps(timings))
        sub, skipped_rows = write_results(engine, job_id, spec, assembled, vlist, by, release=release, approved=approved, reviewed_by=reviewed_by)
        n = len(assembled.results)
        update_job(engine, job_id, log_line=(f"wrote {n - skipped_rows} results as submission {sub}" if sub else "wrote nothing")
                   + (f"; {skipped_rows} already stored by an earlier run of this spec" if skipped_rows else ""))
        return RunOutcome(job_id, JobStatus.done, sub, vlist, n, timings, len(todo), len(cells) - len(todo), skipped_rows)
    except JobCancelled:
        update_job(engine, job_id, status=JobStatus.cancelled, finished_at=utcnow(), stage="cancelled",
                   log_line="cancelled; finished cells kept, no results written")
        skipped = len(cells) - len(todo)
        return RunOutcome(job_id, JobStatus.cancelled, None, [], 0, timings, counter["n"] - skipped, skipped)
    except BaseException as exc:
        update_job(engine, job_id, status=JobStatus.failed, finished_at=utcnow(), error=f"{type(exc).__name__}: {exc}",
                   log_line="failed:\n" + traceback.format_exc(limit=5))
        raise
    finally:
        heartbeat.stop()

