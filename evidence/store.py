"""Adding evidence: studies with their claims (JSON / TOML / dict) and results (CSV).

Every addition is all-or-nothing: each input is checked completely first, every problem is
reported with its file, row, column and reason, and nothing is written unless all rows pass.
What is written is one pending :class:`~evidence.models.Submission`.
"""

from __future__ import annotations

import csv
import io
import json
import tomllib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Iterable

import pydantic
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from .db import session_scope
from .errors import Problem, ValidationFailed
from .models import Claim, ClaimCreate, Result, ResultCreate, Study, StudyCreate, Submission
from .parsing import parse_adv_training, parse_compression_kind, parse_direction, parse_review_membership, parse_year
from .review import create_submission, new_uid, whoami
from .rows import OPTIONAL_COLUMNS, RESULT_COLUMNS, UNPARSED_FIELDS, convert_result_row
from .vocab import AdvTraining, CompressionFamily, Question, ReviewStatus, SubmissionKind, ThreatModel, coerce

__all__ = [
    "ImportReport",
    "validate_entity",
    "study_record",
    "claim_record",
    "read_study_file",
    "add_study",
    "import_results",
    "read_results_csv",
    "insert_results",
    "known_study_ids",
]


@dataclass
class ImportReport:
    """What an import read, parsed and wrote."""

    source: str
    rows_read: int = 0
    rows_fully_parsed: int = 0
    unparsed: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    warnings: list[str] = field(default_factory=list)
    submission_id: int | None = None
    studies: int = 0
    claims: int = 0

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "rows_read": self.rows_read,
            "rows_fully_parsed": self.rows_fully_parsed,
            "unparsed": {k: dict(v) for k, v in self.unparsed.items()},
            "warnings": self.warnings,
            "submission_id": self.submission_id,
            "studies": self.studies,
            "claims": self.claims,
        }

    def to_text(self) -> str:
        lines = [
            f"import report: {self.source}",
            f"  studies: {self.studies}, claims: {self.claims}",
            f"  result rows read: {self.rows_read}, fully parsed: {self.rows_fully_parsed}",
        ]
        if self.unparsed:
            lines.append("  values kept as unparsed text (field: rows, distinct values):")
            for name, counter in sorted(self.unparsed.items()):
                examples = "; ".join(f"{t!r} ×{n}" for t, n in counter.most_common(3))
                lines.append(f"    {name}: {sum(counter.values())} rows, {len(counter)} values (e.g. {examples})")
        if self.warnings:
            lines.append(f"  warnings (written and flagged on the row): {len(self.warnings)}")
            lines.extend(f"    {w}" for w in self.warnings[:10])
        if self.submission_id is not None:
            lines.append(f"  submission: {self.submission_id}")
        return "\n".join(lines)


_MODELS = {"study": StudyCreate, "claim": ClaimCreate, "result": ResultCreate}


def validate_entity(entity: str, data: dict, *, file: str = "input", row: int | None = None) -> dict:
    """Validate ``data`` with the entity's Create model; ``ValidationFailed`` lists every field."""
    try:
        obj = _MODELS[entity].model_validate(data)
    except pydantic.ValidationError as exc:
        raise ValidationFailed(
            [Problem(file, row, ".".join(str(x) for x in e["loc"]) or None, e["msg"]) for e in exc.errors()]
        ) from None
    return obj.model_dump()


def study_record(raw: dict) -> dict:
    """Typed study fields from a study given as text (the seed's columns or a user's file)."""
    year_raw = raw.get("year", "")
    year_text = "" if year_raw is None else str(year_raw).strip()
    direction_text = str(raw.get("main_direction", raw.get("direction", "")) or "").strip()
    adv_text = str(raw.get("adversarial_training", "") or "").strip()
    kind_text = str(raw.get("compression_kind", "") or "").strip()
    review_text = str(raw.get("review_membership", raw.get("review_membership_text", "")) or "").strip()
    in_review = raw.get("in_review_2023")
    return {
        "study_id": str(raw.get("study_id", "")).strip(),
        "title": str(raw.get("title", "")).strip(),
        "authors": str(raw.get("authors", "") or "").strip(),
        "year": year_raw if isinstance(year_raw, int) else parse_year(year_text),
        "year_text": year_text,
        "venue": str(raw.get("venue", "") or "").strip(),
        "identifier": str(raw.get("identifier", raw.get("arxiv_id/doi/url", "")) or "").strip(),
        "compression_kind": parse_compression_kind(kind_text),
        "compression_kind_text": kind_text,
        "main_claim": str(raw.get("main_claim", "") or "").strip(),
        "main_direction": parse_direction(direction_text),
        "main_direction_text": direction_text,
        "adversarial_training": parse_adv_training(adv_text),
        "adversarial_training_text": adv_text,
        "datasets": str(raw.get("datasets", "") or "").strip(),
        "architectures": str(raw.get("architectures", "") or "").strip(),
        "attacks": str(raw.get("attacks", "") or "").strip(),
        "source_of_info": str(raw.get("source_of_info", "") or "").strip(),
        "in_review_2023": in_review if isinstance(in_review, bool) else parse_review_membership(review_text),
        "review_membership_text": review_text,
    }


def claim_record(raw: dict) -> dict:
    """Typed claim fields; conditions not given are coded from the question, and say so."""
    direction_text = str(raw.get("direction", "") or "").strip()
    rec = {
        "study_id": str(raw.get("study_id", "")).strip(),
        "question_id": str(raw.get("question_id", "")).strip(),
        "question": str(raw.get("question", "") or "").strip(),
        "direction": parse_direction(direction_text),
        "position": str(raw.get("position", "") or "").strip(),
        "study_main_claim": str(raw.get("study_main_claim", "") or "").strip(),
        "compression_family": None,
        "adversarial_training": AdvTraining.unknown,
        "threat_model": ThreatModel.unknown,
        "conditions_note": "",
    }
    if rec["direction"].value == "unknown" and direction_text.lower() not in ("", "unknown", "not seen"):
        raise ValueError(f"direction {direction_text!r} is not up, down, neutral or mixed")
    question = Question(rec["question_id"]) if rec["question_id"] in Question.__members__ else None
    if question is not None:
        rec.update(question.scope.claim_conditions())
        rec["conditions_note"] = "coded from the question: " + question.scope.conditions
    for name, enum in (("compression_family", CompressionFamily), ("adversarial_training", AdvTraining), ("threat_model", ThreatModel)):
        if raw.get(name) not in (None, ""):
            rec[name] = coerce(enum, raw[name])
    if raw.get("conditions_note"):
        rec["conditions_note"] = str(raw["conditions_note"])
    return rec


def read_study_file(path: str | Path) -> dict:
    """A study with its claims from a JSON or TOML file (``{"study": {...}, "claims": [...]}``)."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".toml":
            data = tomllib.loads(text)
        elif path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            raise ValidationFailed([Problem(str(path), None, None, "a study file must end in .json or .toml")])
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ValidationFailed([Problem(str(path), None, None, f"not valid {path.suffix[1:].upper()}: {exc}")]) from None
    if not isinstance(data, dict):
        raise ValidationFailed([Problem(str(path), None, None, "the file must hold an object with a 'study' table")])
    return data


def known_study_ids(conn, include_pending: bool = True) -> set[str]:
    t = Study.__table__
    statuses = [ReviewStatus.approved.value] + ([ReviewStatus.pending.value] if include_pending else [])
    return set(conn.execute(sa.select(t.c.study_id).where(t.c.review_status.in_(statuses))).scalars())


def add_study(engine: Engine, payload: dict, by: str | None = None, *, file: str = "input") -> Submission:
    """Submit a new study and its claims for review; ``ValidationFailed`` (nothing written) on any problem."""
    by = whoami(by)
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
            problems.append(Problem(file, i, "claims.direction", str(exc)))
    sid = str(study_raw.get("study_id", "")).strip()
    with engine.connect() as conn:
        if sid in known_study_ids(conn):
            problems.append(Problem(file, None, "study.study_id", f"study {sid!r} already exists; submit a correction instead"))
    if problems:
        raise ValidationFailed(problems)
    with session_scope(engine) as session:
        sub = create_submission(session, SubmissionKind.add_study, by, {"study_id": study["study_id"], "claims": len(claims)}, file)
        session.add(Study(**study, submission_id=sub.id, created_by=by))
        for c in claims:
            session.add(Claim(**c, uid=new_uid(), submission_id=sub.id, created_by=by))
        sub.n_studies, sub.n_claims = 1, len(claims)
        session.add(sub)
        return sub


def read_results_csv(source: str | Path | IO[str] | bytes, *, name: str | None = None) -> tuple[str, list[dict]]:
    """Read a results CSV; ``ValidationFailed`` if it is not CSV or its columns are wrong."""
    if isinstance(source, (str, Path)):
        name = name or str(source)
        if Path(source).suffix.lower() != ".csv":
            raise ValidationFailed([Problem(name, None, None, "not a CSV file (the name must end in .csv)")])
        try:
            text = Path(source).read_text(encoding="utf-8-sig")
        except UnicodeDecodeError:
            raise ValidationFailed([Problem(name, None, None, "not a CSV file (not UTF-8 text)")]) from None
    elif isinstance(source, bytes):
        name = name or "upload.csv"
        try:
            text = source.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ValidationFailed([Problem(name, None, None, "not a CSV file (not UTF-8 text)")]) from None
    else:
        name = name or getattr(source, "name", "input.csv")
        text = source.read()
    if "\x00" in text:
        raise ValidationFailed([Problem(name, None, None, "not a CSV file (binary content)")])
    try:
        reader = csv.DictReader(io.StringIO(text))
        header = reader.fieldnames or []
        rows = list(reader)
    except csv.Error as exc:
        raise ValidationFailed([Problem(name, None, None, f"not a valid CSV file: {exc}")]) from None
    header = [h.strip() for h in header]
    missing = [c for c in RESULT_COLUMNS if c not in header]
    extra = [c for c in header if c not in RESULT_COLUMNS and c not in OPTIONAL_COLUMNS]
    problems = [Problem(name, 0, c, "required column is missing") for c in missing]
    problems += [Problem(name, 0, c, "unknown column (see `crev evidence template`)") for c in extra]
    if problems:
        raise ValidationFailed(problems)
    for i, r in enumerate(rows, start=1):
        if None in r:
            raise ValidationFailed([Problem(name, i, None, "row has more cells than the header has columns")])
    return name, rows


def _existing_fingerprints(conn, fingerprints: Iterable[str]) -> set[str]:
    t = Result.__table__
    fps = list(fingerprints)
    found: set[str] = set()
    for i in range(0, len(fps), 500):
        chunk = fps[i : i + 500]
        found |= set(
            conn.execute(
                sa.select(t.c.fingerprint).where(t.c.fingerprint.in_(chunk), t.c.review_status != ReviewStatus.rejected.value)
            ).scalars()
        )
    return found


def convert_rows(name: str, rows: list[dict], conn, report: ImportReport) -> list[dict]:
    """Convert and check every row; raises ``ValidationFailed`` with every problem of every row."""
    problems: list[Problem] = []
    records: list[tuple[int, dict]] = []
    studies = known_study_ids(conn)
    seen: dict[str, int] = {}
    for i, row in enumerate(rows, start=1):
        report.rows_read += 1
        converted, row_problems = convert_result_row(row, file=name, row_number=i)
        sid = str(row.get("study_id") or "").strip()
        if sid and sid not in studies:
            row_problems.insert(0, Problem(name, i, "study_id", f"unknown study id {sid!r} (add the study first)"))
        if row_problems:
            problems.extend(row_problems)
            continue
        rec = converted.record
        if rec["fingerprint"] in seen:
            problems.append(Problem(name, i, None, f"duplicate of row {seen[rec['fingerprint']]} in this file (same study, setting and numbers)"))
            continue
        seen[rec["fingerprint"]] = i
        if not converted.unparsed:
            report.rows_fully_parsed += 1
        for f, text in converted.unparsed.items():
            report.unparsed[f][text] += 1
        report.warnings.extend(f"{name}, row {i}: {w}" for w in converted.warnings)
        records.append((i, rec))
    existing = _existing_fingerprints(conn, [r["fingerprint"] for _, r in records])
    for i, rec in records:
        if rec["fingerprint"] in existing:
            problems.append(Problem(name, i, None, "duplicate of an existing result (same study, setting and numbers)"))
    if problems:
        raise ValidationFailed(problems)
    return [r for _, r in records]


def insert_results(session, records: list[dict], *, submission_id: int, by: str, approved: bool = False, uid_from_fingerprint: bool = False) -> None:
    """Bulk-insert converted result records as one submission's rows."""
    status = ReviewStatus.approved if approved else ReviewStatus.pending
    defaults = {c.name: c.default.arg for c in Result.__table__.columns if c.default is not None and not callable(c.default.arg)}
    payload = []
    for rec in records:
        row = dict(defaults)
        row.update(rec)
        row.update(
            uid=rec["fingerprint"][:20] if uid_from_fingerprint else new_uid(),
            version=1,
            submission_id=submission_id,
            review_status=status,
            current=approved,
            created_by=by,
        )
        payload.append(row)
    if payload:
        from .models import utcnow

        now = utcnow()
        for row in payload:
            row["created_at"] = now
        session.execute(sa.insert(Result), payload)


def import_results(engine: Engine, source, by: str | None = None, *, name: str | None = None) -> ImportReport:
    """Import a results CSV (the seed's columns) as one pending submission, all or nothing."""
    by = whoami(by)
    name, rows = read_results_csv(source, name=name)
    report = ImportReport(source=name)
    if not rows:
        raise ValidationFailed([Problem(name, None, None, "the file has a header but no rows")])
    with session_scope(engine) as session:
        records = convert_rows(name, rows, session.connection(), report)
        sub = create_submission(session, SubmissionKind.import_results, by, {"rows": len(records), "warnings": len(report.warnings)}, name)
        insert_results(session, records, submission_id=sub.id, by=by)
        sub.n_results = len(records)
        session.add(sub)
        report.submission_id = sub.id
    return report
