"""The one grid loop of a job, for every executor: in this process, on Dask, or on Dask workers
started as SLURM or PBS batch jobs (dask-jobqueue).

:func:`run_grid` submits one task per trained model (each seed's dense model and, where the checks
need one, its transfer surrogate) and one task per cell, each cell depending on its seed's models;
it hands every finished model to ``on_model`` and every finished cell to ``on_done`` exactly once (a
cell that finishes twice, because a worker died after finishing it or a task was resubmitted, is
passed on once), and checks for cancellation after each task. The executors differ only in the
:class:`Pool` that runs the tasks:

- :class:`LocalPool` runs them one after another in this process, models first (cells are cancelled
  between attacks too);
- :class:`DaskPool` submits them to a Dask client: a ``LocalCluster`` of ``workers`` single-threaded
  processes, a running scheduler (``--scheduler``), or a dask-jobqueue cluster of ``cfg.jobs`` batch
  jobs (:func:`make_jobqueue_cluster`).

Every task trains and evaluates with the same number of torch threads (``threads``): on a CPU the
thread count changes floating-point reductions, so a model trained with 2 threads has other weights
than with 1, and the model cache key records the count. Cells therefore always find the models their
job trained (one set of weights per seed, whatever the executor).

The trained models and the transfer examples are cached in ``CREV_CACHE``: on a cluster it must be a
folder every node sees (a shared file system); the batch job script exports it.

Why dask-jobqueue and not submitit: the engine already runs cells as Dask tasks, so SLURM and PBS are
only another way to start the same workers; cancellation, progress and the write path stay one code
path. submitit (SLURM only) would add a second executor with its own pickled-result files and
polling, and no PBS.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Protocol

from tqdm import tqdm

from evidence.vocab import Executor

from ..errors import ReplicateError
from ..train.device import configure
from ..train.training import torch_threads
from .cells import Cell, CellResult, dense_model, run_cell, surrogate_model
from .spec import JobSpec

__all__ = ["Executor", "ClusterConfig", "ClusterError", "make_jobqueue_cluster", "TrainedModel", "train_model_task", "cell_task", "Pool",
           "LocalPool", "DaskPool", "open_pool", "run_grid", "GridRun", "JobCancelled"]


class JobCancelled(Exception):
    """The job was cancelled; finished cells are kept, no results were written."""


class ClusterError(ReplicateError, ValueError):
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


# --------------------------------------------------------------------------- tasks (run on a worker or here)


@dataclass(frozen=True)
class TrainedModel:
    """One dense or surrogate model a job trained (or loaded from the cache)."""

    seed: int
    surrogate: bool
    cache: str  # "hit" or "miss"
    weights_hash: str

    def log_line(self) -> str:
        return f"{'surrogate' if self.surrogate else 'dense'} model seed {self.seed}: cache {self.cache} (weights {self.weights_hash})"


def train_model_task(spec_json: str, seed: int, surrogate: bool, threads: int, show: bool = False) -> TrainedModel:
    """Train (or load from the cache) one seed's dense model, or its transfer surrogate, with ``threads``
    torch threads: the count every cell of the job uses, so the cells find these weights."""
    spec = JobSpec.model_validate_json(spec_json)
    configure(spec.device, attack_mixed_precision=spec.attack_mixed_precision)
    with torch_threads(threads):
        bar = tqdm(total=spec.train.epochs, desc=f"{'surrogate' if surrogate else 'dense'} model, seed {seed}", unit="epoch", disable=not show,
                   leave=False)
        _, rec = (surrogate_model if surrogate else dense_model)(spec, seed, progress=lambda e, n: bar.update(1))
        bar.close()
    return TrainedModel(seed, surrogate, rec.cache, rec.weights_hash)


def cell_task(spec_json: str, cell: Cell, threads: int, *models: TrainedModel, cancelled: Callable[[], bool] | None = None) -> CellResult:
    """One cell, after its seed's models exist (``models``: those tasks' results, which Dask passes in
    once they finish; they order the tasks, the cell loads the models from the cache)."""
    return run_cell(spec_json, cell, cancelled=cancelled, threads=threads)


# --------------------------------------------------------------------------- pools


class Pool(Protocol):
    """What the grid loop needs of an executor."""

    workers: int

    def submit(self, fn, *args, key: str, priority: int = 0, **kwargs): ...

    def as_completed(self, futures: list) -> Iterator: ...

    def cancel(self, futures: list) -> None: ...

    def cell_kwargs(self, is_cancelled: Callable[[], bool]) -> dict: ...


class _Deferred:
    """A task of :class:`LocalPool`: run when its result is first asked for."""

    def __init__(self, fn, args, kwargs):
        self.fn, self.args, self.kwargs, self.done, self.value = fn, args, kwargs, False, None

    def result(self):
        if not self.done:
            args = [a.result() if isinstance(a, _Deferred) else a for a in self.args]
            self.value, self.done = self.fn(*args, **self.kwargs), True
        return self.value

    def cancel(self) -> None:
        self.done = True


class LocalPool:
    """Runs tasks one after another in this process, in submission order (models before cells)."""

    workers = 1

    def __init__(self, show: bool = False):
        self.show = show

    def submit(self, fn, *args, key: str, priority: int = 0, **kwargs) -> _Deferred:
        if fn is train_model_task:
            kwargs.setdefault("show", self.show)
        return _Deferred(fn, args, kwargs)

    def as_completed(self, futures: list) -> Iterator[_Deferred]:
        yield from futures  # each runs when the loop asks for its result

    def cancel(self, futures: list) -> None:
        for f in futures:
            f.cancel()

    def cell_kwargs(self, is_cancelled: Callable[[], bool]) -> dict:
        return {"cancelled": is_cancelled}  # in this process a cell also stops between attacks


class DaskPool:
    """Submits tasks to a Dask client (a LocalCluster, a scheduler, or a dask-jobqueue cluster)."""

    def __init__(self, client):
        self.client = client

    @property
    def workers(self) -> int:
        return len(self.client.scheduler_info()["workers"])

    def submit(self, fn, *args, key: str, priority: int = 0, **kwargs):
        return self.client.submit(fn, *args, key=f"{key}-{time.time_ns()}", pure=False, priority=priority, **kwargs)

    def as_completed(self, futures: list):
        from dask.distributed import as_completed

        return as_completed(futures)

    def cancel(self, futures: list) -> None:
        for f in futures:
            f.cancel()

    def cell_kwargs(self, is_cancelled: Callable[[], bool]) -> dict:
        return {}  # a worker has no database connection: cancellation is checked here between tasks


@contextlib.contextmanager
def open_pool(executor: Executor | str, *, scheduler: str | None = None, workers: int = 2, cluster: ClusterConfig | None = None,
              show: bool = False) -> Iterator[tuple[Pool, float]]:
    """The pool of ``executor`` and the seconds it took to start; shut down on exit."""
    executor = Executor(executor)
    t0 = time.perf_counter()
    if executor is Executor.local:
        yield LocalPool(show), 0.0
        return
    from dask.distributed import Client

    with contextlib.ExitStack() as stack:
        if executor in (Executor.slurm, Executor.pbs):
            if cluster is None:
                raise ClusterError(f"executor {executor.value} needs a ClusterConfig (queue, jobs, GPUs per job)")
            batch = stack.enter_context(contextlib.closing(make_jobqueue_cluster(cluster)))
            batch.scale(jobs=cluster.jobs)
            client = stack.enter_context(contextlib.closing(Client(batch)))
        elif scheduler:
            client = stack.enter_context(contextlib.closing(Client(scheduler)))
        else:
            import dask
            from dask.distributed import LocalCluster

            # Dask's nanny sets MALLOC_TRIM_THRESHOLD_ in its workers; any explicit value also freezes glibc's
            # dynamic mmap threshold, so every large tensor is mmap'd and unmapped again: measured here, a
            # cell ran 2.2x slower (3.6 s vs 1.6 s). Unset, the workers run as fast as the local executor.
            with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
                local = stack.enter_context(contextlib.closing(
                    LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)))
            client = stack.enter_context(contextlib.closing(Client(local)))
        yield DaskPool(client), time.perf_counter() - t0


# --------------------------------------------------------------------------- the grid loop


@dataclass
class GridRun:
    """What :func:`run_grid` did: cells passed on, duplicates ignored, and when the models were done."""

    cells: int = 0
    models: int = 0
    duplicates_ignored: int = 0
    models_s: float = 0.0  # from the start of the grid until the last model was trained or loaded
    seconds: float = 0.0


def run_grid(pool: Pool, spec_json: str, todo: list[Cell], models: list[tuple[int, bool]], *, on_done: Callable[[CellResult], None],
             on_model: Callable[[TrainedModel], None], is_cancelled: Callable[[], bool], threads: int = 1, show: bool = False) -> GridRun:
    """Train ``models`` ((seed, surrogate) pairs) and evaluate ``todo`` on ``pool``, every task with
    ``threads`` torch threads; each finished model goes to ``on_model``, each cell to ``on_done``,
    once. Raises :class:`JobCancelled` when ``is_cancelled()`` turns true (pending tasks are cancelled)."""
    t0 = time.perf_counter()
    model_futs = {pair: pool.submit(train_model_task, spec_json, pair[0], pair[1], threads, key=f"model-{pair[0]}-{pair[1]}", priority=2)
                  for pair in models}
    extra = pool.cell_kwargs(is_cancelled)
    cell_futs = [pool.submit(cell_task, spec_json, c, threads, *[f for (s, _), f in model_futs.items() if s == c.seed], key=f"cell-{c.key}",
                             priority=0 if c.dense else 1, **extra)  # compressed cells first: fewer idle workers at the end
                 for c in todo]
    futures = list(model_futs.values()) + cell_futs
    run = GridRun()
    seen: set[str] = set()
    bar = tqdm(total=len(todo), desc=f"grid cells ({pool.workers} worker{'s' if pool.workers != 1 else ''})", unit="cell", disable=not show)
    try:
        for fut in pool.as_completed(futures):
            if is_cancelled():
                pool.cancel(futures)
                raise JobCancelled()
            try:
                result = fut.result()
            except InterruptedError:  # a local cell saw the cancellation between two attacks
                pool.cancel(futures)
                raise JobCancelled() from None
            if isinstance(result, TrainedModel):
                run.models += 1
                on_model(result)
                if run.models == len(model_futs):
                    run.models_s = time.perf_counter() - t0
                continue
            if result.key in seen:
                run.duplicates_ignored += 1
                continue
            seen.add(result.key)
            run.cells += 1
            on_done(result)
            bar.update(1)
    finally:
        bar.close()
    run.seconds = time.perf_counter() - t0
    return run
