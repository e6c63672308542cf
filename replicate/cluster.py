"""Running a job's grid on a cluster: Dask workers started as SLURM or PBS batch jobs (dask-jobqueue).

Each batch job runs one Dask worker with one task slot, ``cores`` CPU cores (torch threads of the
cell it runs) and ``gpus_per_job`` GPUs; ``jobs`` batch jobs are requested. The head process (a login
node: no GPU needed) only schedules: the dense models of every seed are trained by the first tasks on
the workers, the cells that need them wait for them (Dask dependencies), and each finished cell comes
back to the head process, which stores it through the job's one write path (``store_cell``: one
row per cell key; a cell that finishes twice, because a worker died after finishing it or a task was
resubmitted, is stored once). Results are written at the end by the runner, exactly as for a local run.

The trained models and the transfer examples are cached in ``CREV_CACHE``: on a cluster it must be a
folder every node sees (a shared file system); the job script exports it.

Why dask-jobqueue and not submitit: the engine already runs cells as Dask tasks (local cluster or a
scheduler address), so SLURM and PBS are only another way to start the same workers; cancellation,
progress and the write path stay one code path. submitit (SLURM only) would add a second executor
with its own pickled-result files and polling, and no PBS.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = ["Executor", "ClusterConfig", "ClusterError", "make_jobqueue_cluster", "train_dense_task", "cell_task", "run_grid", "run_on_batch_cluster"]


class Executor(StrEnum):
    local = "local"  # cells one after another in this process
    dask = "dask"  # a Dask LocalCluster, or a running scheduler (--scheduler)
    slurm = "slurm"  # Dask workers as SLURM batch jobs
    pbs = "pbs"  # Dask workers as PBS / Torque batch jobs


class ClusterError(ValueError):
    """A cluster setting that cannot work (no queue, a bad walltime)."""


@dataclass(frozen=True)
class ClusterConfig:
    """How to ask a batch scheduler for workers."""

    executor: Executor = Executor.slurm
    queue: str | None = None  # partition (SLURM) or queue (PBS)
    jobs: int = 1
    gpus_per_job: int = 0
    cores: int = 4
    memory: str = "16GB"
    walltime: str = "04:00:00"
    account: str | None = None
    extra_directives: tuple[str, ...] = ()
    python: str = field(default_factory=lambda: sys.executable)
    cache_dir: str | None = None  # exported as CREV_CACHE on the workers (must be shared)

    def __post_init__(self):
        object.__setattr__(self, "executor", Executor(self.executor))
        if self.executor not in (Executor.slurm, Executor.pbs):
            raise ClusterError(f"executor {self.executor.value}: a batch cluster is slurm or pbs")
        if not self.queue:
            raise ClusterError(f"--executor {self.executor.value} needs --queue (the partition or queue to submit to)")
        if self.jobs < 1 or self.cores < 1 or self.gpus_per_job < 0:
            raise ClusterError("--jobs and --cores must be at least 1, --gpus-per-job at least 0")
        parts = self.walltime.split(":")
        if len(parts) != 3 or not all(p.isdigit() for p in parts):
            raise ClusterError(f"walltime {self.walltime!r}: use HH:MM:SS")


def _prologue(cfg: ClusterConfig) -> list[str]:
    cache = cfg.cache_dir or os.environ.get("CREV_CACHE")
    lines = ["export CUBLAS_WORKSPACE_CONFIG=:4096:8", "export OMP_NUM_THREADS=%d" % cfg.cores]
    if cache:
        lines.append(f"export CREV_CACHE={cache}")
    return lines


def make_jobqueue_cluster(cfg: ClusterConfig):
    """A dask-jobqueue cluster (not yet scaled): one single-slot worker per batch job."""
    common = dict(queue=cfg.queue, account=cfg.account, processes=1, memory=cfg.memory, walltime=cfg.walltime, python=cfg.python,
                  job_script_prologue=_prologue(cfg), job_name="crev-replicate")
    if cfg.executor is Executor.slurm:
        from dask_jobqueue import SLURMCluster

        directives = [f"--gres=gpu:{cfg.gpus_per_job}"] if cfg.gpus_per_job else []
        # cores=1: one task slot per worker (one cell at a time on the job's GPU); job_cpu: the cores SLURM reserves
        return SLURMCluster(cores=1, job_cpu=cfg.cores, job_extra_directives=directives + list(cfg.extra_directives), **common)
    from dask_jobqueue import PBSCluster

    select = f"select=1:ncpus={cfg.cores}:mem={cfg.memory}" + (f":ngpus={cfg.gpus_per_job}" if cfg.gpus_per_job else "")
    return PBSCluster(cores=1, resource_spec=select, job_extra_directives=list(cfg.extra_directives), **common)


def train_dense_task(spec_json: str, seed: int) -> str:
    """Train (or load from the shared cache) a seed's dense model and its transfer surrogate on a worker."""
    from .cells import dense_model, surrogate_model
    from .device import configure
    from .spec import JobSpec

    spec = JobSpec.model_validate_json(spec_json)
    configure(spec.device, spec.threads, attack_mixed_precision=spec.attack_mixed_precision)
    _, rec = dense_model(spec, seed)
    if spec.checks:
        surrogate_model(spec, seed)
    return rec.weights_hash


def cell_task(spec_json: str, cell, threads: int, _dense_ready=None):
    """One cell on a worker, after its seed's dense model exists (``_dense_ready`` is that task's result)."""
    from .cells import run_cell

    return run_cell(spec_json, cell, threads=threads)


def run_grid(client, spec_json: str, todo, on_done, is_cancelled, *, threads: int = 1, show: bool = False) -> dict:
    """Run ``todo`` cells on ``client``'s workers; ``on_done`` receives each finished cell once.

    Returns counts: cells finished, and duplicates ignored (the same cell key finished again).
    """
    from dask.distributed import as_completed
    from tqdm import tqdm

    seeds = sorted({c.seed for c in todo})
    dense = {s: client.submit(train_dense_task, spec_json, s, key=f"dense-{s}-{time.time_ns()}", pure=False, priority=2) for s in seeds}
    futures = [client.submit(cell_task, spec_json, c, threads, dense[c.seed], key=f"cell-{c.key}-{time.time_ns()}", pure=False,
                             priority=0 if c.dense else 1) for c in todo]
    seen: set[str] = set()
    duplicates = 0
    bar = tqdm(total=len(todo), desc="grid cells (cluster)", unit="cell", disable=not show)
    try:
        for fut in as_completed(futures):
            if is_cancelled():
                for f in futures + list(dense.values()):
                    f.cancel()
                from .runner import JobCancelled

                raise JobCancelled()
            result = fut.result()
            if result.key in seen:
                duplicates += 1
                continue
            seen.add(result.key)
            on_done(result)
            bar.update(1)
    finally:
        bar.close()
    return {"cells": len(seen), "duplicates_ignored": duplicates}


def run_on_batch_cluster(cfg: ClusterConfig, spec_json: str, todo, on_done, is_cancelled, *, show: bool = False) -> float:
    """Start ``cfg.jobs`` batch jobs, run the cells on them, shut them down; returns the seconds until
    the client was connected (the batch jobs may still be queued then: their wait counts as grid time)."""
    from dask.distributed import Client

    t0 = time.perf_counter()
    cluster = make_jobqueue_cluster(cfg)
    try:
        cluster.scale(jobs=cfg.jobs)
        client = Client(cluster)
        startup = time.perf_counter() - t0
        try:
            run_grid(client, spec_json, todo, on_done, is_cancelled, threads=cfg.cores, show=show)
        finally:
            client.close()
        return startup
    finally:
        cluster.close()
