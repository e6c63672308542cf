"""The curation workflow: submissions, approval, rejection, corrections and history.

Every addition or change is a :class:`~evidence.models.Submission` whose rows start ``pending``.
Approval makes each row the ``current`` version of its entity (the previous current version stays,
no longer current); rejection keeps the rows, visible, with the reason. Nothing is deleted.
"""

from __future__ import annotations

import getpass
import json
import os
import uuid
from dataclasses import dataclass

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from .db import session_scope
from .errors import EvidenceError, NotFound
from .models import Claim, Result, Study, Submission, utcnow
from .vocab import ReviewStatus, SubmissionKind

__all__ = [
    "whoami",
    "create_submission",
    "approve",
    "reject",
    "pending_submissions",
    "submission_rows",
    "submission_diff",
    "propose_correction",
    "history",
    "new_uid",
    "ENTITY_TABLES",
]

# table, entity-key column
ENTITY_TABLES: dict[str, tuple[type, str]] = {"study": (Study, "study_id"), "claim": (Claim, "uid"), "result": (Result, "uid")}


def whoami(by: str | None = None) -> str:
    """Who acts: ``by``, else ``CREV_USER``, else the login name."""
    if by:
        return by
    if os.environ.get("CREV_USER"):
        return os.environ["CREV_USER"]
    try:
        return getpass.getuser()
    except Exception:  # getpass raises several types where no login name exists
        return "unknown"


def new_uid() -> str:
    return uuid.uuid4().hex[:20]


def create_submission(session: Session, kind: SubmissionKind, by: str, summary: dict | str, source_file: str | None = None) -> Submission:
    sub = Submission(
        kind=kind,
        submitted_by=by,
        summary=summary if isinstance(summary, str) else json.dumps(summary, default=str),
        source_file=source_file,
    )
    session.add(sub)
    session.flush()
    return sub


def _get_submission(session: Session, submission_id: int) -> Submission:
    sub = session.get(Submission, submission_id)
    if sub is None:
        raise NotFound(f"submission {submission_id} does not exist")
    return sub


def approve(engine: Engine, submission_id: int, by: str | None = None) -> Submission:
    """Approve a pending submission: its rows become the current versions of their entities."""
    by = whoami(by)
    with session_scope(engine) as session:
        sub = _get_submission(session, submission_id)
        if sub.status != ReviewStatus.pending:
            raise EvidenceError(f"submission {submission_id} is {sub.status.value}, not pending")
        for table, key in ENTITY_TABLES.values():
            key_col = getattr(table, key)
            keys = sa.select(key_col).where(table.submission_id == submission_id).scalar_subquery()
            session.execute(
                sa.update(table).where(key_col.in_(keys), table.current.is_(True)).values(current=False)
            )
            session.execute(
                sa.update(table)
                .where(table.submission_id == submission_id)
                .values(current=True, review_status=ReviewStatus.approved)
            )
        sub.status = ReviewStatus.approved
        sub.reviewed_by, sub.reviewed_at = by, utcnow()
        session.add(sub)
        return sub


def reject(engine: Engine, submission_id: int, reason: str, by: str | None = None) -> Submission:
    """Reject a pending submission; its rows stay, visible, with the reason."""
    if not reason or not reason.strip():
        raise EvidenceError("a rejection needs a reason")
    by = whoami(by)
    with session_scope(engine) as session:
        sub = _get_submission(session, submission_id)
        if sub.status != ReviewStatus.pending:
            raise EvidenceError(f"submission {submission_id} is {sub.status.value}, not pending")
        for table, _key in ENTITY_TABLES.values():
            session.execute(
                sa.update(table).where(table.submission_id == submission_id).values(review_status=ReviewStatus.rejected)
            )
        sub.status = ReviewStatus.rejected
        sub.reason = reason.strip()
        sub.reviewed_by, sub.reviewed_at = by, utcnow()
        session.add(sub)
        return sub


def pending_submissions(engine: Engine, status: ReviewStatus | None = ReviewStatus.pending) -> pd.DataFrame:
    """Submissions (pending by default; ``status=None`` for all), newest first."""
    stmt = select(Submission).order_by(Submission.id.desc())
    if status is not None:
        stmt = stmt.where(Submission.status == status)
    with Session(engine) as session:
        subs = session.exec(stmt).all()
    cols = ["id", "kind", "submitted_by", "submitted_at", "status", "n_studies", "n_claims", "n_results", "reviewed_by", "reason", "source_file"]
    return pd.DataFrame([{c: _plain(getattr(s, c)) for c in cols} for s in subs], columns=cols)


def _plain(v):
    return v.value if hasattr(v, "value") else v


def submission_rows(engine: Engine, submission_id: int) -> dict[str, pd.DataFrame]:
    """The rows a submission holds, per entity kind."""
    out = {}
    with engine.connect() as conn:
        for kind, (table, _key) in ENTITY_TABLES.items():
            out[kind] = pd.read_sql(sa.select(table.__table__).where(table.submission_id == submission_id), conn)
    return out


_META = {"id", "version", "submission_id", "review_status", "current", "created_by", "created_at", "fingerprint"}


def submission_diff(engine: Engine, submission_id: int) -> pd.DataFrame:
    """Field-by-field changes of a submission against the current versions (new entries: every field)."""
    rows = []
    with engine.connect() as conn:
        for kind, (table, key) in ENTITY_TABLES.items():
            t = table.__table__
            new = conn.execute(sa.select(t).where(t.c.submission_id == submission_id)).mappings().all()
            for r in new:
                cur = conn.execute(
                    sa.select(t).where(t.c[key] == r[key], t.c.current.is_(True), t.c.submission_id != submission_id)
                ).mappings().first()
                for col, value in r.items():
                    if col in _META or col == key and cur is not None:
                        continue
                    old = None if cur is None else cur[col]
                    if cur is None and value in ("", None):
                        continue
                    if cur is None or _plain(old) != _plain(value):
                        rows.append({"entity": kind, "key": r[key], "field": col, "current": _plain(old), "proposed": _plain(value)})
    return pd.DataFrame(rows, columns=["entity", "key", "field", "current", "proposed"])


def propose_correction(engine: Engine, entity: str, key: str, changes: dict, by: str | None = None, reason: str = "") -> Submission:
    """Submit a corrected version of one entry (study slug, claim uid or result uid), pending review.

    The new version copies the current one with ``changes`` applied and is validated by the same
    models as any addition.
    """
    if entity not in ENTITY_TABLES:
        raise EvidenceError(f"entity must be one of {', '.join(ENTITY_TABLES)}, not {entity!r}")
    table, key_col = ENTITY_TABLES[entity]
    by = whoami(by)
    with session_scope(engine) as session:
        cur = session.exec(select(table).where(getattr(table, key_col) == key, table.current.is_(True))).first()
        if cur is None:
            raise NotFound(f"no approved {entity} with id {key!r}")
        data = cur.model_dump(exclude=_META)
        unknown = set(changes) - set(data)
        if unknown:
            raise EvidenceError(f"{entity} has no field(s) {', '.join(sorted(unknown))}")
        data.update(changes)
        from .store import validate_entity  # local: store imports this module

        data = validate_entity(entity, data)
        last = session.execute(sa.select(sa.func.max(table.version)).where(getattr(table, key_col) == key)).scalar_one()
        sub = create_submission(session, SubmissionKind.correction, by, {"entity": entity, "key": key, "changes": changes, "reason": reason})
        extra = {key_col: key} if key_col not in data else {}
        if entity == "result":
            from .rows import fingerprint, result_warnings

            data["warnings"] = "; ".join(result_warnings(data))
            extra["fingerprint"] = fingerprint(data)
        row = table(**data, **extra, version=last + 1, submission_id=sub.id, created_by=by)
        session.add(row)
        setattr(sub, f"n_{entity}s" if entity != "study" else "n_studies", 1)
        session.add(sub)
        return sub


def history(engine: Engine, key: str) -> pd.DataFrame:
    """Every version of an entry (study slug, claim uid or result uid), oldest first, with its review."""
    frames = []
    with engine.connect() as conn:
        for kind, (table, key_col) in ENTITY_TABLES.items():
            t = table.__table__
            s = Submission.__table__
            stmt = (
                sa.select(
                    t.c.version, t.c.review_status, t.c.current, t.c.created_by, t.c.created_at, t.c.submission_id,
                    s.c.kind.label("submission_kind"), s.c.reviewed_by, s.c.reason,
                )
                .select_from(t.outerjoin(s, s.c.id == t.c.submission_id))
                .where(t.c[key_col] == key)
                .order_by(t.c.version)
            )
            df = pd.read_sql(stmt, conn)
            if len(df):
                df.insert(0, "entity", kind)
                frames.append(df)
    if not frames:
        raise NotFound(f"no study, claim or result has the id {key!r}")
    return pd.concat(frames, ignore_index=True)
