"""The one write path: every piece of evidence enters through :func:`submit`.

The seed, the shipped releases, the CSV import, the app, corrections, the RobustBench and BibTeX
importers and replication jobs all build a :class:`SubmissionCreate` (validated on the Create
models when it is constructed) and hand it to :func:`submit`, which checks it against the database
(unknown studies, duplicates, corrections of entries that do not exist), and writes it as one
:class:`~evidence.models.Submission` in one transaction, or raises
:class:`~evidence.errors.ValidationFailed` listing every problem and writes nothing.

A submission is pending unless it is a curated release loaded as approved (``approved=True``);
review then goes through :func:`evidence.review.approve` / :func:`~evidence.review.reject`.
"""

from __future__ import annotations

import getpass
import os
import re
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Iterable

import pydantic
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from .db import session_scope
from .errors import Problem, ValidationFailed
from .identity import canonical_identity
from .models import Claim, ClaimCreate, Result, ResultCreate, Study, StudyCreate, Submission, utcnow
from .rows import fingerprint, pydantic_problems, result_warnings
from .vocab import ReviewStatus, SubmissionKind

__all__ = [
    "SubmissionCreate", "ImportReport", "submit", "check_submission", "whoami", "new_uid", "known_study_ids",
    "study_identifiers", "normalise_identifier", "stored_duplicates",
]


def whoami(by: str | None = None) -> str:
    """Who acts: ``by``, else ``CREV_USER``, else the login name."""
    if by:
        return by
    if os.environ.get("CREV_USER"):
        return os.environ["CREV_USER"]
    try:
        return getpass.getuser()
    except (KeyError, OSError, ImportError):  # no login name in this environment (containers)
        return "unknown"


def new_uid() -> str:
    return uuid.uuid4().hex[:20]


class SubmissionCreate(pydantic.BaseModel):
    """One addition or correction: who, what kind, and the studies, claims and results it holds.

    ``result_rows`` gives, for each result, its row number in ``source_file`` (problems name it).
    ``approved`` is for curated releases only: the rows are written approved and current.
    """

    model_config = pydantic.ConfigDict(extra="forbid")

    kind: SubmissionKind
    submitted_by: str | None = None
    studies: list[StudyCreate] = []
    claims: list[ClaimCreate] = []
    results: list[ResultCreate] = []
    result_rows: list[int] = []
    summary: str = ""
    source_file: str | None = None
    release: str = pydantic.Field(default="", max_length=64)
    approved: bool = False
    reviewed_by: str | None = None
    # Results without a uid get the first 20 characters of their fingerprint (curated releases: the
    # same row has the same uid in every database) instead of a random one.
    uids_from_fingerprint: bool = False

    def is_empty(self) -> bool:
        return not (self.studies or self.claims or self.results)


@dataclass
class ImportReport:
    """What an import read, parsed and wrote (or, for a preview, would write).

    ``unparsed``: values kept as text with no typed value (``"rate not stated"``); ``annotated``:
    values whose leading value was parsed and whose whole text (the curator's annotation) was kept.
    """

    source: str
    rows_read: int = 0
    rows_fully_parsed: int = 0
    unparsed: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    annotated: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    warnings: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    submission_id: int | None = None
    studies: int = 0
    claims: int = 0
    results: int = 0
    written: bool = False

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "rows_read": self.rows_read,
            "rows_fully_parsed": self.rows_fully_parsed,
            "unparsed": {k: dict(v) for k, v in self.unparsed.items()},
            "annotated": {k: dict(v) for k, v in self.annotated.items()},
            "warnings": self.warnings,
            "skipped": self.skipped,
            "submission_id": self.submission_id,
            "studies": self.studies,
            "claims": self.claims,
            "results": self.results,
            "written": self.written,
        }

    def to_text(self) -> str:
        verb = "written" if self.written else "to write (nothing written)"
        lines = [
            f"import report: {self.source}",
            f"  {verb}: {self.studies} studies, {self.claims} claims, {self.results} results",
            f"  result rows read: {self.rows_read}, fully parsed: {self.rows_fully_parsed}",
        ]
        if self.annotated:
            lines.append("  values parsed from an annotated cell, whole text kept (column: rows, distinct texts):")
            for name, counter in sorted(self.annotated.items()):
                texts = "; ".join(f"{t!r} ×{n}" for t, n in counter.most_common())
                lines.append(f"    {name}: {sum(counter.values())} rows, {len(counter)} texts: {texts}")
        if self.unparsed:
            lines.append("  values kept as text with no typed value (column: rows, distinct values):")
            for name, counter in sorted(self.unparsed.items()):
                examples = "; ".join(f"{t!r} ×{n}" for t, n in counter.most_common(3))
                lines.append(f"    {name}: {sum(counter.values())} rows, {len(counter)} values (e.g. {examples})")
        if self.warnings:
            lines.append(f"  warnings (written and flagged on the row): {len(self.warnings)}")
            lines.extend(f"    {w}" for w in self.warnings[:10])
        if self.skipped:
            lines.append(f"  skipped: {len(self.skipped)}")
            lines.extend(f"    {s}" for s in self.skipped)
        if self.submission_id is not None:
            lines.append(f"  submission: {self.submission_id}")
        return "\n".join(lines)


def known_study_ids(conn: Connection, include_pending: bool = True) -> set[str]:
    t = Study.__table__
    statuses = [ReviewStatus.approved.value] + ([ReviewStatus.pending.value] if include_pending else [])
    return set(conn.execute(sa.select(t.c.study_id).where(t.c.review_status.in_(statuses))).scalars())


def study_identifiers(conn: Connection) -> dict[str, str]:
    """``{identifier (lowercase, no URL prefix): study_id}`` of the studies not rejected, to match a source to a study."""
    t = Study.__table__
    rows = conn.execute(sa.select(t.c.identifier, t.c.study_id).where(t.c.review_status != ReviewStatus.rejected.value)).all()
    return {normalise_identifier(i): sid for i, sid in rows if i}


_ARXIV = re.compile(r"^(?:arxiv\.org/(?:abs|pdf)/|arxiv:\s*)(\d{4}\.\d{4,5})")


def normalise_identifier(text: str) -> str:
    """``https://arxiv.org/abs/2002.10509`` and ``arXiv:2002.10509`` → ``arxiv:2002.10509``; DOIs → ``doi:...``."""
    s = text.strip().lower()
    for prefix in ("https://", "http://"):
        s = s.removeprefix(prefix)
    s = s.removeprefix("www.")
    m = _ARXIV.match(s)
    if m:
        return "arxiv:" + m.group(1)
    for head in ("doi.org/", "dx.doi.org/", "doi:"):
        if s.startswith(head):
            return "doi:" + s[len(head):]
    if s.startswith("10.") and "/" in s:
        return "doi:" + s
    return s


def stored_duplicates(conn: Connection, results: list[ResultCreate]) -> set[int]:
    """Indexes of ``results`` whose fingerprint a stored result (not rejected) already has."""
    fps = [fingerprint(r.model_dump()) for r in results]
    found = _existing(conn, Result.__table__.c.fingerprint, fps)
    return {i for i, fp in enumerate(fps) if fp in found}


def _existing(conn: Connection, column, values: Iterable[str], *, current_only: bool = False) -> set[str]:
    """Which of ``values`` occur in ``column`` among rows not rejected (or current rows only)."""
    t = column.table
    vals = sorted(set(values))
    found: set[str] = set()
    cond = t.c.current.is_(True) if current_only else t.c.review_status != ReviewStatus.rejected.value
    for i in range(0, len(vals), 500):
        found |= set(conn.execute(sa.select(column).where(column.in_(vals[i : i + 500]), cond)).scalars())
    return found


@dataclass
class _Prepared:
    results: list[dict]
    claims: list[dict]
    studies: list[dict]


def _result_record(r: ResultCreate, uid_from_fingerprint: bool) -> dict:
    rec = r.model_dump(exclude={"uid"})
    if not rec["cluster"]:
        rec["cluster"] = f"{rec['study_id']}:{rec['source_location'] or rec['url_or_path']}"[:255]
    if not rec["warnings"]:
        rec["warnings"] = "; ".join(result_warnings(rec))
    rec["fingerprint"] = fingerprint(rec)
    rec["uid"] = r.uid or (rec["fingerprint"][:20] if uid_from_fingerprint else None)
    return rec


def check_submission(conn: Connection, sub: SubmissionCreate) -> tuple[list[Problem], _Prepared]:
    """Every problem of ``sub`` against the database (nothing is written), and the rows to write."""
    file = sub.source_file or "input"
    problems: list[Problem] = []
    correction = sub.kind == SubmissionKind.correction
    if sub.is_empty():
        problems.append(Problem(file, None, None, "the submission holds no study, claim or result"))
    if sub.result_rows and len(sub.result_rows) != len(sub.results):
        raise ValueError("result_rows must give one row number per result")
    rownum = sub.result_rows or list(range(1, len(sub.results) + 1))

    studies = [s.model_dump() for s in sub.studies]
    known = known_study_ids(conn)
    seen_ids: set[str] = set()
    for i, s in enumerate(studies, start=1):
        sid = s["study_id"]
        if sid in seen_ids:
            problems.append(Problem(file, i, "study_id", f"study {sid!r} appears twice in this submission"))
        seen_ids.add(sid)
        if correction and sid not in _existing(conn, Study.__table__.c.study_id, [sid], current_only=True):
            problems.append(Problem(file, i, "study_id", f"no approved study {sid!r} to correct"))
        elif not correction and sid in known:
            problems.append(Problem(file, i, "study_id", f"study {sid!r} already exists; submit a correction instead"))
    available = known | seen_ids

    claims = []
    for i, c in enumerate(sub.claims, start=1):
        rec = c.model_dump()
        if rec["study_id"] not in available:
            problems.append(Problem(file, i, "claims.study_id", f"unknown study id {rec['study_id']!r} (add the study first)"))
        claims.append(rec)
    _check_uids(conn, Claim, claims, correction, file, "claims.uid", problems, list(range(1, len(claims) + 1)))

    results = []
    in_file: dict[str, int] = {}
    for row, r in zip(rownum, sub.results):
        rec = _result_record(r, sub.uids_from_fingerprint)
        if rec["study_id"] not in available:
            problems.append(Problem(file, row, "study_id", f"unknown study id {rec['study_id']!r} (add the study first)"))
            continue
        fp = rec["fingerprint"]
        if fp in in_file:
            problems.append(Problem(file, row, None, f"duplicate of row {in_file[fp]} in this file (same study, setting and numbers)"))
            continue
        in_file[fp] = row
        results.append(rec)
    if not correction:
        dup = _existing(conn, Result.__table__.c.fingerprint, in_file)
        problems.extend(
            Problem(file, in_file[r["fingerprint"]], None, "duplicate of an existing result (same study, setting and numbers)")
            for r in results
            if r["fingerprint"] in dup
        )
    _check_uids(conn, Result, results, correction, file, "uid", problems, [in_file[r["fingerprint"]] for r in results])
    problems.sort(key=lambda p: (p.row if p.row is not None else -1))
    return problems, _Prepared(results, claims, studies)


def _check_uids(conn, table, records: list[dict], correction: bool, file: str, column: str, problems: list[Problem], rows: list[int]) -> None:
    given = [(row, r["uid"]) for row, r in zip(rows, records) if r.get("uid")]
    if correction:
        missing = [r for r in records if not r.get("uid")]
        if missing:
            problems.append(Problem(file, None, column, "a correction must name the uid of the entry it corrects"))
        current = _existing(conn, table.__table__.c.uid, [u for _, u in given], current_only=True)
        problems.extend(Problem(file, row, column, f"no approved entry with uid {u!r} to correct") for row, u in given if u not in current)
        return
    taken = _existing(conn, table.__table__.c.uid, [u for _, u in given])
    problems.extend(Problem(file, row, column, f"uid {u!r} is already taken") for row, u in given if u in taken)
    counts = Counter(u for _, u in given)
    problems.extend(Problem(file, row, column, f"uid {u!r} appears twice in this submission") for row, u in given if counts[u] > 1)


def submit(engine: Engine, sub: SubmissionCreate | dict) -> Submission:
    """Write ``sub`` as one submission in one transaction; ``ValidationFailed`` (nothing written) on any problem.

    A dict is validated as a :class:`SubmissionCreate` first (its problems name the entry and field).
    """
    if not isinstance(sub, SubmissionCreate):
        try:
            sub = SubmissionCreate.model_validate(sub)
        except pydantic.ValidationError as exc:
            raise ValidationFailed(pydantic_problems(exc, file="input", row=None)) from None
    by = whoami(sub.submitted_by)
    for column, name in (("submitted_by", by), ("reviewed_by", sub.reviewed_by or "")):
        if len(name) > 120:  # checked here: SQLite would store any length, PostgreSQL fail
            raise ValidationFailed([Problem(sub.source_file or "input", None, column, f"name is {len(name)} characters long; at most 120 can be stored")])
        if name and not canonical_identity(name):  # only zero-width / format characters: no one can be told apart
            raise ValidationFailed([Problem(sub.source_file or "input", None, column, "name is invisible (only format or ignorable characters)")])
    with session_scope(engine) as session:
        conn = session.connection()
        problems, prepared = check_submission(conn, sub)
        if problems:
            raise ValidationFailed(problems)
        now = utcnow()
        status = ReviewStatus.approved if sub.approved else ReviewStatus.pending
        row = Submission(
            kind=sub.kind,
            submitted_by=by,
            submitted_at=now,
            status=status,
            summary=sub.summary,
            source_file=sub.source_file,
            release=sub.release,
            n_studies=len(prepared.studies),
            n_claims=len(prepared.claims),
            n_results=len(prepared.results),
        )
        if sub.approved:
            row.reviewed_by, row.reviewed_at = sub.reviewed_by or by, now
        session.add(row)
        session.flush()
        common = dict(submission_id=row.id, review_status=status, current=sub.approved, created_by=by, created_at=now, release=sub.release)
        for table, key, records in (
            (Study, "study_id", prepared.studies),
            (Claim, "uid", prepared.claims),
            (Result, "uid", prepared.results),
        ):
            if not records:
                continue
            for rec in records:
                if key == "uid" and not rec.get("uid"):
                    rec["uid"] = new_uid()
            versions = _next_versions(conn, table, key, [r[key] for r in records]) if sub.kind == SubmissionKind.correction else {}
            if sub.approved and versions:
                col = table.__table__.c[key]
                conn.execute(sa.update(table.__table__).where(col.in_(list(versions)), table.__table__.c.current.is_(True)).values(current=False))
            defaults = _defaults(table)
            payload = []
            for rec in records:
                full = dict(defaults)
                full.update(rec)
                full.update(common, version=versions.get(rec[key], 1))
                payload.append(full)
            conn.execute(sa.insert(table.__table__), _to_db(table, payload))
        return row


def _next_versions(conn, table, key: str, keys: list[str]) -> dict[str, int]:
    t = table.__table__
    rows = conn.execute(sa.select(t.c[key], sa.func.max(t.c.version)).where(t.c[key].in_(keys)).group_by(t.c[key])).all()
    return {k: int(v) + 1 for k, v in rows}


def _defaults(table) -> dict:
    return {c.name: c.default.arg for c in table.__table__.columns if c.default is not None and not callable(c.default.arg)}


def _to_db(table, payload: list[dict]) -> list[dict]:
    """Keep only the table's columns (the core insert binds enum members through the column types)."""
    cols = {c.name for c in table.__table__.columns} - {"id"}
    return [{k: v for k, v in rec.items() if k in cols} for rec in payload]
