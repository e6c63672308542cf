"""``crev evidence``: create, fill, review and export the evidence database."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from .api import init_database
from .db import get_engine, upgrade_schema
from .errors import EvidenceError, ValidationFailed
from .export import FORMATS, export_results, write_template
from .queries import ResultFilter, stats
from .review import approve, history, pending_submissions, propose_correction, reject, submission_diff
from .store import add_study, import_results, read_study_file

__all__ = ["app", "fail", "DbOption", "ByOption"]

app = typer.Typer(help="The evidence database: studies, claims, results, review.", no_args_is_help=True)

DbOption = typer.Option(None, "--db", help="Database URL (default: $CREV_DB, else the SQLite file in the user data dir).")
ByOption = typer.Option(None, "--by", help="Who acts (default: $CREV_USER, else the login name).")


def fail(message: str, code: int = 2) -> None:
    """Print an error for a user and exit non-zero (no traceback)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


_DB_IN_USE: dict[str, str | None] = {}  # the --db of this invocation, for naming it in an error


def _engine(db: Optional[str]):
    _DB_IN_USE["url"] = db
    engine = get_engine(db)
    upgrade_schema(engine)
    return engine


def _run(fn):
    """Run a command body; every error a user can meet becomes a short message and exit 2.

    Validation problems print the first few and a count per column (a bad column on 300,000 rows is
    not 300,000 lines); a database that cannot be used, a refused write and an unreadable file print
    one line naming the database or file and the reason.
    """
    import sqlalchemy as sa

    from .db import database_error, resolve_url

    try:
        return fn()
    except ValidationFailed as exc:
        lines = exc.lines()
        typer.echo(f"error: {lines[0]}", err=True)
        for line in lines[1:]:
            typer.echo(line, err=True)
        raise typer.Exit(2)
    except (EvidenceError, ValueError) as exc:
        fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    except OSError as exc:
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        fail(f"{where}{exc.strerror or exc}")
    except sa.exc.SQLAlchemyError as exc:
        fail(str(database_error(exc, resolve_url(_DB_IN_USE.get("url")))))


@app.command()
def init(db: Optional[str] = DbOption, no_seed: bool = typer.Option(False, help="Do not load the seed.")):
    """Create or migrate the schema and load the seed if the database is empty (safe to run again)."""
    _DB_IN_USE["url"] = db
    _, result = _run(lambda: init_database(db, load=not no_seed))
    typer.echo(result.to_text())


@app.command("stats")
def stats_cmd(db: Optional[str] = DbOption, as_json: bool = typer.Option(False, "--json", help="Print one JSON object.")):
    """Totals of approved studies, claims and results, by review status and by study."""
    s = _run(lambda: stats(_engine(db)))
    if as_json:
        typer.echo(json.dumps(s.to_dict(), indent=1))
        return
    typer.echo(f"studies {s.studies} ({s.studies_with_results} with results), claims {s.claims}, results {s.results} (approved, current)")
    typer.echo(f"pending submissions: {s.pending_submissions}")
    for r in s.by_release:
        typer.echo(f"  release {r.release or '(user submissions)'}: {r.studies} studies, {r.claims} claims, {r.results} results")
    for sid, v in s.by_study.items():
        if v["results"] or v["claims"]:
            typer.echo(f"  {sid}: {v['results']} results, {v['claims']} claims")


@app.command("add-study")
def add_study_cmd(file: Path, db: Optional[str] = DbOption, by: Optional[str] = ByOption):
    """Submit a study with its claims from a JSON or TOML file (pending review)."""
    def go():
        sub = add_study(_engine(db), read_study_file(file), by, file=str(file))
        typer.echo(f"submission {sub.id}: study and {sub.n_claims} claim(s) pending review")
    _run(go)


@app.command("import")
def import_cmd(file: Path, db: Optional[str] = DbOption, by: Optional[str] = ByOption, as_json: bool = typer.Option(False, "--json")):
    """Import results from a CSV with the seed's columns, all or nothing (pending review)."""
    report = _run(lambda: import_results(_engine(db), file, by))
    typer.echo(json.dumps(report.to_dict(), indent=1) if as_json else report.to_text())


@app.command()
def template(out: Path = typer.Argument(Path("results-template.csv"))):
    """Write an empty import template with one documented example row."""
    path = write_template(out)
    typer.echo(f"wrote {path} and {path.with_suffix('.columns.txt')}")


@app.command()
def export(
    fmt: str = typer.Option("csv", "--format", help=f"One of {', '.join(FORMATS)}."),
    out: Optional[Path] = typer.Option(None, "--out", help="File to write (default: standard output)."),
    study: list[str] = typer.Option([], "--study"),
    family: list[str] = typer.Option([], "--family"),
    full: bool = typer.Option(False, "--full", help="Every stored column (not importable)."),
    spreadsheet: bool = typer.Option(
        False, "--spreadsheet", help="CSV to open in a spreadsheet: text cells starting with = + - @ are prefixed with ' (not for re-import)."
    ),
    db: Optional[str] = DbOption,
):
    """Export approved results (importable columns by default)."""
    data = _run(lambda: export_results(_engine(db), fmt, ResultFilter(study_ids=study, families=family), full=full, spreadsheet=spreadsheet))
    if out:
        out.write_bytes(data)
        typer.echo(f"wrote {out}", err=True)
    elif fmt == "parquet":
        fail("parquet is binary: give --out FILE")
    else:
        sys.stdout.write(data.decode())


@app.command()
def review(db: Optional[str] = DbOption, all_: bool = typer.Option(False, "--all", help="All submissions, not only pending.")):
    """List the submissions waiting for review (with --all: every submission)."""
    df = _run(lambda: pending_submissions(_engine(db), None if all_ else "pending"))
    if df.empty:
        typer.echo("no pending submissions" if not all_ else "no submissions")
        return
    typer.echo(df.to_string(index=False))


@app.command()
def diff(submission_id: int, db: Optional[str] = DbOption):
    """What a submission changes against the current versions."""
    df = _run(lambda: submission_diff(_engine(db), submission_id))
    typer.echo(df.to_string(index=False) if len(df) else "no changes")


@app.command("approve")
def approve_cmd(
    submission_id: int,
    db: Optional[str] = DbOption,
    by: Optional[str] = ByOption,
    reason: str = typer.Option("", "--reason", help="Why (kept with the submission)."),
):
    """Approve a pending submission: its entries count in analyses from now on.

    Approving one's own submission is refused unless CREV_ALLOW_SELF_APPROVAL=1 (one person curating alone).
    """
    sub = _run(lambda: approve(_engine(db), submission_id, by, reason))
    typer.echo(f"submission {sub.id} approved by {sub.reviewed_by}")


@app.command("reject")
def reject_cmd(
    submission_id: int,
    reason: str = typer.Option(..., "--reason", help="Why (kept with the submission)."),
    db: Optional[str] = DbOption,
    by: Optional[str] = ByOption,
):
    """Reject a pending submission with a reason (it stays visible)."""
    sub = _run(lambda: reject(_engine(db), submission_id, reason, by))
    typer.echo(f"submission {sub.id} rejected by {sub.reviewed_by}: {sub.reason}")


@app.command("history")
def history_cmd(entry_id: str, db: Optional[str] = DbOption):
    """Every version of a study (slug), claim or result (uid), with its review."""
    df = _run(lambda: history(_engine(db), entry_id))
    typer.echo(df.to_string(index=False))


@app.command()
def correct(
    entity: str = typer.Argument(..., help="study, claim or result"),
    key: str = typer.Argument(..., help="study slug, or claim / result uid"),
    set_: list[str] = typer.Option(..., "--set", help="field=value (repeatable); an empty value clears a nullable field"),
    reason: str = typer.Option("", "--reason"),
    db: Optional[str] = DbOption,
    by: Optional[str] = ByOption,
):
    """Submit a corrected version of one entry (pending review; the old version stays in its history)."""
    changes = {}
    for item in set_:
        if "=" not in item:
            fail(f"--set needs field=value, got {item!r}")
        field, value = item.split("=", 1)
        changes[field.strip()] = None if value == "" else value
    sub = _run(lambda: propose_correction(_engine(db), entity, key, changes, by, reason))
    typer.echo(f"submission {sub.id}: correction of {entity} {key} pending review")


@app.command("release")
def release_cmd(
    version: str = typer.Option(..., "--version", help="Release version, e.g. 2026.11."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder to write (default: <user data dir>/crev/releases/VERSION)."),
    previous: Optional[str] = typer.Option(None, "--previous", help="Release to compare with (version or folder; default: the newest one)."),
    title: Optional[str] = typer.Option(None, "--title"),
    db: Optional[str] = DbOption,
    by: Optional[str] = ByOption,
    as_json: bool = typer.Option(False, "--json"),
):
    """Write the current evidence as a versioned Frictionless Data Package (datapackage.json, CSVs,
    content hash, changelog, CITATION.cff)."""
    from .releases import write_release

    info = _run(lambda: write_release(_engine(db), version, out, previous=previous, title=title, curator=by))
    typer.echo(json.dumps(info.to_dict(), indent=1) if as_json else info.to_text())


@app.command("diff-release")
def diff_release_cmd(
    a: str = typer.Argument(..., help="The earlier release (version or folder)."),
    b: str = typer.Argument(..., help="The later release (version or folder)."),
    as_json: bool = typer.Option(False, "--json"),
    limit: int = typer.Option(10, "--limit", help="Entries listed per kind of change."),
):
    """What changed between two releases: entries added, corrected (field by field) and removed."""
    from .releases import diff_releases

    d = _run(lambda: diff_releases(a, b))
    typer.echo(json.dumps(d.to_dict(), indent=1) if as_json else d.to_text(limit))


@app.command("import-robustbench")
def import_robustbench_cmd(
    folder: Path = typer.Argument(..., help="RobustBench model_info folder (or one dataset/threat folder of it)."),
    db: Optional[str] = DbOption,
    by: Optional[str] = ByOption,
    as_json: bool = typer.Option(False, "--json"),
):
    """Import the compressed models of RobustBench model_info JSON files as pending results (reported and
    AutoAttack accuracy as two rows); every skipped file or row is listed with its reason."""
    from .importers import RobustBenchImporter

    report = _run(lambda: RobustBenchImporter().run(_engine(db), folder, by))
    typer.echo(json.dumps(report.to_dict(), indent=1) if as_json else report.to_text())


@app.command("import-bibtex")
def import_bibtex_cmd(
    file: Path = typer.Argument(..., help="A .bib file, or a .txt DOI list (one DOI a line, optionally TAB and the title)."),
    db: Optional[str] = DbOption,
    by: Optional[str] = ByOption,
    as_json: bool = typer.Option(False, "--json"),
):
    """Turn a reference list into study stubs pending review (title, authors, year, venue, identifier)."""
    from .importers import BibtexImporter

    report = _run(lambda: BibtexImporter().run(_engine(db), file, by))
    typer.echo(json.dumps(report.to_dict(), indent=1) if as_json else report.to_text())
