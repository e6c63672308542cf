"""The seed: 40 studies, 43 coded claims and 8,349 results read from public sources.

The CSV files ship inside the package (``evidence/data/seed``). :func:`load_seed` loads them as one
approved submission curated by ``seed``; it is idempotent (a second call adds nothing).
"""

from __future__ import annotations

import csv
import hashlib
from importlib import resources
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from .db import session_scope
from .errors import Problem, ValidationFailed
from .models import Claim, Study, Submission
from .store import ImportReport, claim_record, convert_rows, insert_results, read_results_csv, study_record, validate_entity
from .vocab import ReviewStatus, SubmissionKind

__all__ = ["SEED_CURATOR", "seed_dir", "seed_loaded", "load_seed"]

SEED_CURATOR = "seed"


def seed_dir() -> Path:
    return Path(str(resources.files("evidence") / "data" / "seed"))


def seed_loaded(engine: Engine) -> bool:
    with engine.connect() as conn:
        t = Submission.__table__
        return conn.execute(sa.select(sa.func.count()).select_from(t).where(t.c.kind == SubmissionKind.seed.value)).scalar_one() > 0


def _read(name: str) -> list[dict]:
    with open(seed_dir() / name, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def load_seed(engine: Engine, *, results: bool = True) -> ImportReport | None:
    """Load the shipped seed as approved evidence; ``None`` if it is already loaded.

    ``results=False`` loads the studies and claims only (used to test export → import round trips).
    """
    if seed_loaded(engine):
        return None
    report = ImportReport(source="seed (evidence/data/seed)")
    studies, claims, problems = [], [], []
    for i, raw in enumerate(_read("studies.csv"), start=1):
        try:
            studies.append(validate_entity("study", study_record(raw), file="studies.csv", row=i))
        except ValidationFailed as exc:
            problems.extend(exc.problems)
    for i, raw in enumerate(_read("claims.csv"), start=1):
        try:
            rec = validate_entity("claim", claim_record(raw), file="claims.csv", row=i)
        except ValidationFailed as exc:
            problems.extend(exc.problems)
            continue
        key = f"{rec['question_id']}|{rec['study_id']}|{rec['position']}"
        rec["uid"] = "seed-" + hashlib.sha256(key.encode()).hexdigest()[:15]
        claims.append(rec)
    known = {s["study_id"] for s in studies}
    problems.extend(
        Problem("claims.csv", i, "study_id", f"unknown study id {c['study_id']!r}")
        for i, c in enumerate(claims, start=1)
        if c["study_id"] not in known
    )
    if problems:
        raise ValidationFailed(problems)
    with session_scope(engine) as session:
        sub = Submission(
            kind=SubmissionKind.seed,
            submitted_by=SEED_CURATOR,
            status=ReviewStatus.approved,
            reviewed_by=SEED_CURATOR,
            summary="seed shipped with the package (../shared/evidence-seed)",
            source_file="evidence/data/seed",
        )
        session.add(sub)
        session.flush()
        common = dict(submission_id=sub.id, review_status=ReviewStatus.approved, current=True, created_by=SEED_CURATOR)
        session.add_all(Study(**s, **common) for s in studies)
        session.add_all(Claim(**c, **common) for c in claims)
        session.flush()
        n_results = 0
        if results:
            name, rows = read_results_csv(seed_dir() / "results.csv", name="results.csv")
            records = convert_rows(name, rows, session.connection(), report)
            insert_results(session, records, submission_id=sub.id, by=SEED_CURATOR, approved=True, uid_from_fingerprint=True)
            n_results = len(records)
        sub.reviewed_at = sub.submitted_at
        sub.n_studies, sub.n_claims, sub.n_results = len(studies), len(claims), n_results
        session.add(sub)
        report.submission_id = sub.id
    report.studies, report.claims = len(studies), len(claims)
    return report
