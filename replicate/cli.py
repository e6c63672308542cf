"""``crev replicate``: the claim catalogue, running jobs, their status, cancellation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from evidence import get_engine, upgrade_schema, whoami

from .datasets import DatasetError
from .jobs import get_job, job_table, request_cancel
from .runner import run_job
from .spec import SpecError, catalogue, get_claim_spec, load_spec

__all__ = ["app"]

app = typer.Typer(help="Replicate claims with controlled PyTorch runs (pruning, quantization, torchattacks).", no_args_is_help=True)
DbOption = typer.Option(None, "--db", help="Database URL (default: $CREV_DB or the SQLite file).")


def _fail(msg: str) -> None:
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(2)


def _engine(db):
    e = get_engine(db)
    upgrade_schema(e)
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
    executor: str = typer.Option("local", "--executor", help="local or dask"),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Dask scheduler address (default: a LocalCluster)."),
    workers: int = typer.Option(2, "--workers", help="LocalCluster workers (one thread each)."),
    quick: bool = typer.Option(False, "--quick", help="Reduced grid (< 1 minute); results marked quick, never a verdict."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Run the claim on another dataset (digits, mnist5k, a .npz)."),
    as_json: bool = typer.Option(False, "--json"),
    db: Optional[str] = DbOption,
    by: Optional[str] = typer.Option(None, "--by"),
    job_id: Optional[int] = typer.Option(None, "--job-id", hidden=True, help="Run under an existing job record (the app launches jobs so)."),
):
    """Run a job to the end (a rerun of the same spec skips its finished cells)."""
    try:
        spec = load_spec(target) if Path(target).suffix in (".toml", ".yaml", ".yml", ".json") else get_claim_spec(target)
        if dataset:
            spec = spec.model_copy(update={"data": spec.data.model_copy(update={"name": dataset, "n_test": None if dataset == "digits" else spec.data.n_test})})
        if quick:
            spec = spec.quick()
        out = run_job(_engine(db), spec, executor=executor, scheduler=scheduler, workers=workers, by=whoami(by), show_progress=not as_json,
                      job_id=job_id)
    except (SpecError, DatasetError, ValueError) as exc:
        _fail(str(exc))
    if as_json:
        typer.echo(json.dumps(out.to_dict(), indent=1, default=str))
        return
    typer.echo(f"job {out.job_id}: {out.status}; {out.n_results} results" + (f" in submission {out.submission_id} (pending review)" if out.submission_id else ""))
    for v in out.verdicts:
        typer.echo(f"  {v['study']} ({v['direction']}): {v['verdict']} - {v['reason']}")


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
def cancel(job: int, db: Optional[str] = DbOption):
    """Ask a running job to stop after its current step (no results are written)."""
    try:
        request_cancel(_engine(db), job)
    except (LookupError, ValueError) as exc:
        _fail(str(exc))
    typer.echo(f"job {job}: cancellation requested")
