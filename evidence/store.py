"""Adding evidence: studies with their claims (JSON / TOML / dict) and results (CSV).

Every addition is all-or-nothing: each input is checked completely first, every problem is
reported with its file, row, column and reason, and nothing is written unless all rows pass.
Rows of text are parsed by the one parser (:mod:`evidence.rows`) and written through the one
write path (:func:`evidence.submit.submit`) as one pending :class:`~evidence.models.Submission`.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO

import pydantic
from sqlalchemy.engine import Connection, Engine

from .errors import Problem, ValidationFailed
from .models import ClaimCreate, ResultCreate, StudyCreate, Submission
from .readers import check_study_payload, read_results_csv, read_study_file
from .rows import claim_record, convert_result_row, pydantic_problems, study_record
from .submit import ImportReport, SubmissionCreate, known_study_ids, near_duplicates, submit, whoami
from .vocab import SubmissionKind

__all__ = [
    "ImportReport",
    "validate_entity",
    "study_record",
    "claim_record",
    "read_study_file",
    "add_study",
    "study_submission",
    "import_results",
    "preview_import",
    "results_submission",
    "convert_rows",
    "read_results_csv",
    "known_study_ids",
]

_MODELS = {"study": StudyCreate, "claim": ClaimCreate, "result": ResultCreate}


def validate_entity(entity: str, data: dict, *, file: str = "input", row: int | None = None):
    """``data`` as the entity's Create model; ``ValidationFailed`` lists every field."""
    try:
        return _MODELS[entity].model_validate(data)
    except pydantic.ValidationError as exc:
        raise ValidationFailed(pydantic_problems(exc, file=file, row=row)) from None


def study_submission(
    payload: dict, by: str | None = None, *, file: str = "input", kind: SubmissionKind = SubmissionKind.add_study, known: set[str] | None = None
) -> SubmissionCreate:
    """A study with its claims (``{"study": {...}, "claims": [...]}``) as a submission; every problem at once
    (a study id already in ``known`` is one of them)."""
    check_study_payload(payload, file=file)  # shape and value types; claims belong to this study
    study_raw = payload.get("study", payload if "study_id" in payload else None)
    if not isinstance(study_raw, dict):
        raise ValidationFailed([Problem(file, None, "study", "required table 'study' is missing")])
    claims_raw = payload.get("claims", study_raw.get("claims", [])) or []
    problems: list[Problem] = []
    study = None
    try:
        study = validate_entity("study", study_record(study_raw), file=file)
    except ValidationFailed as exc:
        problems.extend(Problem(p.file, p.row, f"study.{p.column}", p.reason) for p in exc.problems)
    claims = []
    for i, c in enumerate(claims_raw, start=1):
        c = dict(c)
        c.setdefault("study_id", study_raw.get("study_id", ""))
        try:
            claims.append(validate_entity("claim", claim_record(c), file=file, row=i))
        except ValidationFailed as exc:
            problems.extend(Problem(p.file, i, f"claims.{p.column}", p.reason) for p in exc.problems)
        except ValueError as exc:
            problems.append(Problem(file, i, f"claims.{getattr(exc, 'field', 'direction')}", str(exc)))
    sid = str(study_raw.get("study_id", "")).strip()
    if known is not None and sid in known:
        problems.append(Problem(file, None, "study.study_id", f"study {sid!r} already exists; submit a correction instead"))
    if problems:
        raise ValidationFailed(problems)
    return SubmissionCreate(
        kind=kind, submitted_by=whoami(by), studies=[study], claims=claims, source_file=file,
        summary=f"study {study.study_id} with {len(claims)} claim(s)",
    )


def add_study(engine: Engine, payload: dict, by: str | None = None, *, file: str = "input") -> Submission:
    """Submit a new study and its claims for review; ``ValidationFailed`` (nothing written) on any problem."""
    with engine.connect() as conn:
        known = known_study_ids(conn)
    return submit(engine, study_submission(payload, by, file=file, known=known))


def convert_rows(
    name: str, rows: list[dict], report: ImportReport, known: set[str] | None = None, *, release: bool = False
) -> tuple[list[ResultCreate], list[int]]:
    """Parse and validate every row (the one parser); ``ValidationFailed`` with every problem of every row.

    Rows naming a study not in ``known`` are refused here too, so one pass reports everything.
    ``release=True`` reads a curated release's extra columns (see :data:`evidence.rows.RELEASE_COLUMNS`).
    """
    problems: list[Problem] = []
    results: list[ResultCreate] = []
    row_numbers: list[int] = []
    for i, row in enumerate(rows, start=1):
        report.rows_read += 1
        converted, row_problems = convert_result_row(row, file=name, row_number=i, release=release)
        sid = str(row.get("study_id") or "").strip()
        if known is not None and sid and sid not in known:
            row_problems.insert(0, Problem(name, i, "study_id", f"unknown study id {sid!r} (add the study first)"))
        if row_problems:
            problems.extend(row_problems)
            continue
        if not converted.unparsed:
            report.rows_fully_parsed += 1
        for f, text in converted.unparsed.items():
            report.unparsed[f][text] += 1
        for f, text in converted.annotated.items():
            report.annotated[f][text] += 1
        report.warnings.extend(f"{name}, row {i}: {w}" for w in converted.warnings)
        results.append(converted.result)
        row_numbers.append(i)
    if problems:
        raise ValidationFailed(problems)
    return results, row_numbers


def results_submission(
    conn: Connection, source: str | Path | IO[str] | bytes, by: str | None = None, *, name: str | None = None
) -> tuple[SubmissionCreate, ImportReport]:
    """A results CSV read, parsed and validated as a pending submission, with its import report."""
    name, rows = read_results_csv(source, name=name)
    report = ImportReport(source=name)
    if not rows:
        raise ValidationFailed([Problem(name, None, None, "the file has a header but no rows")])
    results, row_numbers = convert_rows(name, rows, report, known_study_ids(conn))
    report.near_duplicates = near_duplicates(conn, results, row_numbers)  # written, shown for the curator (CLI and app preview)
    sub = SubmissionCreate(
        kind=SubmissionKind.import_results, submitted_by=whoami(by), results=results, result_rows=row_numbers,
        source_file=name, summary=f"{len(results)} result rows from {name} ({len(report.warnings)} with warnings)",
    )
    report.results = len(results)
    return sub, report


def preview_import(engine: Engine, source, *, name: str | None = None) -> ImportReport:
    """Everything :func:`import_results` checks, and its report; writes nothing (the app's preview).

    ``ValidationFailed`` lists every problem, as the import would.
    """
    from .submit import check_submission

    with engine.connect() as conn:
        sub, report = results_submission(conn, source, name=name)
        problems, _ = check_submission(conn, sub)
    if problems:
        raise ValidationFailed(problems)
    return report


def import_results(engine: Engine, source, by: str | None = None, *, name: str | None = None) -> ImportReport:
    """Import a results CSV (the seed's columns) as one pending submission, all or nothing."""
    with engine.connect() as conn:  # parse on a read connection: no write lock while converting every row
        sub, report = results_submission(conn, source, by, name=name)
    written = submit(engine, sub)  # re-checks duplicates and studies under the write lock
    report.submission_id, report.written = written.id, True
    return report
