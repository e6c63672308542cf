"""``crev replicate``: the claim catalogue, running jobs, their status, cancellation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from evidence import EvidenceError, check_identity, get_engine, upgrade_schema, whoami

from .errors import ReplicateError
from .train.datasets import DatasetError
from .jobs.launch import cancel_job
from .jobs.store import get_job, job_table
from .jobs.runner import run_job
from .jobs.spec import catalogue, get_claim_spec, load_spec

__all__ = ["app"]

app = typer.Typer(help="Replicate claims with controlled PyTorch runs (pruning, quantization, torchattacks).", no_args_is_help=True)
DbOption = typer.Option(None, "--db", help="Database URL (default: $CREV_DB or the SQLite file).")


def _fail(msg: str) -> None:
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(2)


def _engine(db):
    """The database, or a one-line error naming it (damaged or empty file, unknown scheme, no server)."""
    from evidence import DatabaseError

    try:
        e = get_engine(db)
        upgrade_schema(e)
    except DatabaseError as exc:
        _fail(str(exc))
    return e


@app.command()
def claims(as_json: bool = typer.Option(False, "--json")):
    """The built-in catalogue of claims that can be replicated."""
    specs = catalogue()
    if as_json:
        typer.echo(json.dumps([{"id": s.id, "title": s.title, "question_id": s.claim.question_id, "study": s.claim.study,
                                "direction": s.claim.direction, "compare": s.claim.compare, "dataset": s.data.name, "model": s.model,
                                "seeds": s.seeds, "spec_hash": s.spec_hash()} for s in specs.values()], indent=1))
        return
    for s in specs.values():
        typer.echo(f"{s.id:22s} {s.claim.study} ({s.claim.direction}) vs {', '.join(s.claim.compare)}\n{'':22s} {s.title}")


@app.command()
def run(
    target: str = typer.Argument(..., help="A catalogue claim id or a spec file (TOML or YAML)."),
    executor: str = typer.Option("local", "--executor", help="local, dask, slurm or pbs (Dask workers as batch jobs, dask-jobqueue)"),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Dask scheduler address (default: a LocalCluster)."),
    workers: int = typer.Option(2, "--workers", help="LocalCluster workers (one thread each)."),
    quick: bool = typer.Option(False, "--quick", help="Reduced grid (< 1 minute); results marked quick, never a verdict."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Run the claim on another dataset (digits, mnist5k, a .npz; cifar10 and svhn "
                                          "at the literature's settings: PreAct ResNet-18, PGD-AT 8/255, see replicate/jobs/profiles.py)."),
    model: Optional[str] = typer.Option(None, "--model", help="With --dataset cifar10/svhn: preact_resnet18, wrn_28_10 or wrn_34_10."),
    device: Optional[str] = typer.Option(None, "--device", help="auto (CUDA when available), cpu, cuda, cuda:N or mps (default: the spec's, auto)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch threads per cell (default 1, as each Dask worker)."),
    queue: Optional[str] = typer.Option(None, "--queue", help="slurm/pbs: the partition or queue."),
    jobs: int = typer.Option(1, "--jobs", help="slurm/pbs: batch jobs to start (one worker each)."),
    gpus_per_job: int = typer.Option(0, "--gpus-per-job", help="slurm/pbs: GPUs per batch job."),
    cores: int = typer.Option(4, "--cores", help="slurm/pbs: CPU cores per batch job (the cell's torch threads)."),
    memory: str = typer.Option("16GB", "--memory", help="slurm/pbs: memory per batch job."),
    walltime: str = typer.Option("04:00:00", "--walltime", help="slurm/pbs: HH:MM:SS per batch job."),
    account: Optional[str] = typer.Option(None, "--account", help="slurm/pbs: account / project to charge."),
    as_json: bool = typer.Option(False, "--json"),
    db: Optional[str] = DbOption,
    by: Optional[str] = typer.Option(None, "--by"),
    job_id: Optional[int] = typer.Option(None, "--job-id", hidden=True, help="Run under an existing job record (the app launches jobs so)."),
):
    """Run a job to the end (a rerun of the same spec skips its finished cells)."""
    try:
        spec = load_spec(target) if Path(target).suffix in (".toml", ".yaml", ".yml", ".json") else get_claim_spec(target)
        if dataset in ("cifar10", "svhn"):
            from .jobs.profiles import adapt_spec

            spec = adapt_spec(spec, dataset, model=model)
        elif dataset:
            spec = spec.model_copy(update={"data": spec.data.model_copy(update={"name": dataset, "n_test": None if dataset == "digits" else spec.data.n_test})})
        if quick:
            spec = spec.quick()
        cluster = None
        if executor in ("slurm", "pbs"):
            from .jobs.executors import ClusterConfig

            cluster = ClusterConfig(executor=executor, queue=queue, jobs=jobs, gpus_per_job=gpus_per_job, cores=cores, memory=memory,
                                    walltime=walltime, account=account)
        out = run_job(_engine(db), spec, executor=executor, scheduler=scheduler, workers=workers, by=whoami(by), show_progress=not as_json,
                      job_id=job_id, device=device, threads=threads, cluster=cluster)
    except (ReplicateError, EvidenceError) as exc:  # what the user can fix; any other exception is a bug: its traceback is shown
        _fail(str(exc))
    if as_json:
        typer.echo(json.dumps(out.to_dict(), indent=1, default=str))
        return
    typer.echo(f"job {out.job_id}: {out.status}; {out.n_results} results" + (f" in submission {out.submission_id} (pending review)" if out.submission_id else ""))
    if out.n_skipped_existing:
        typer.echo(f"  {out.n_skipped_existing} of {out.n_results} results were already stored by an earlier run of this spec (not written again)")
    for v in out.verdicts:
        typer.echo(f"  {v.study} ({v.direction.value}): {v.verdict.value} - {v.reason}")


@app.command()
def status(job: Optional[int] = typer.Argument(None), db: Optional[str] = DbOption, as_json: bool = typer.Option(False, "--json")):
    """All jobs, or one job's state, progress, timings and log."""
    e = _engine(db)
    if job is None:
        df = job_table(e)
        typer.echo(df.to_json(orient="records", date_format="iso") if as_json else (df.to_string(index=False) if len(df) else "no jobs"))
        return
    try:
        j = get_job(e, job)
    except LookupError as exc:
        _fail(str(exc))
    d = {"id": j.id, "claim": j.claim_id, "status": j.status, "stage": j.stage, "progress": j.progress, "cells": f"{j.cells_done}/{j.cells_total}",
         "quick": j.quick, "executor": j.executor, "submission": j.submission_id, "error": j.error, "timings": json.loads(j.timings_json or "{}")}
    if as_json:
        typer.echo(json.dumps({**d, "log": j.log}, indent=1, default=str))
    else:
        typer.echo("\n".join(f"{k}: {v}" for k, v in d.items()) + "\nlog:\n" + j.log)


@app.command()
def results(job: int, db: Optional[str] = DbOption, as_json: bool = typer.Option(False, "--json")):
    """A finished job's result rows with the full attack text, threat model, steps, queries and exact counts."""
    from .jobs.store import job_results

    try:
        df = job_results(_engine(db), job)
    except LookupError as exc:
        _fail(str(exc))
    if df.empty:
        typer.echo("no results (the job has not finished, or wrote nothing new)")
        return
    cols = ["compression_method", "compression_level_text", "attack", "attack_text", "threat_model", "epsilon", "steps", "attack_queries", "n_test",
            "n_robust_correct_dense", "n_robust_correct_compressed", "n_robust_dense_only", "n_robust_compressed_only", "gradient_masking"]
    cols = [c for c in cols if c in df.columns]
    if as_json:
        typer.echo(df[cols].to_json(orient="records"))
        return
    for r in df[cols].itertuples(index=False):
        d = r._asdict()
        typer.echo(f"{d['compression_level_text']:>12} | {d['attack_text']} | threat {d['threat_model']} | robust {d['n_robust_correct_dense']}/{d['n_test']} dense "
                   f"vs {d['n_robust_correct_compressed']}/{d['n_test']} compressed (discordant {d['n_robust_dense_only']}/{d['n_robust_compressed_only']})"
                   + (" | possible gradient masking" if d["gradient_masking"] else ""))


@app.command()
def cancel(job: int, db: Optional[str] = DbOption,
           by: Optional[str] = typer.Option(None, "--by", help="Who cancels (default $CREV_USER or the login name); only the job's launcher may.")):
    """Ask a running job to stop after its current step (no results are written).

    Only the person who launched the job may (the same identity in canonical form, as
    :func:`replicate.jobs.launch.cancel_job` checks); a curator cancels from the app.
    """
    from evidence import EvidenceError, NotAuthorized

    try:
        cancel_job(_engine(db), job, by=check_identity(whoami(by), "--by"))
    except (LookupError, ValueError, NotAuthorized, EvidenceError) as exc:
        _fail(str(exc))
    typer.echo(f"job {job}: cancellation requested")


data_app = typer.Typer(help="Local copies of CIFAR-10 and SVHN (nothing is downloaded).", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("add")
def data_add(name: str = typer.Argument(..., help="cifar10 or svhn"), path: Path = typer.Argument(..., help="The folder you already have.")):
    """Check a folder (CIFAR-10 python batches, or SVHN train/test_32x32.mat) and register it for runs."""
    from .train.local_data import add_local_dataset, registry_path

    try:
        arrays = add_local_dataset(name, path)
    except DatasetError as exc:
        _fail(str(exc))
    n_test = int(arrays.is_test.sum())
    typer.echo(f"{name}: {len(arrays.y) - n_test} training and {n_test} test images in {Path(path).resolve()}; registered in {registry_path()}")


@data_app.command("list")
def data_list():
    """Registered local datasets."""
    from .train.local_data import registered_folders

    reg = registered_folders()
    typer.echo("\n".join(f"{k}: {v}" for k, v in sorted(reg.items())) if reg else "no local datasets registered (crev replicate data add NAME PATH)")
