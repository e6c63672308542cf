"""The curation workflow: submissions, approval, rejection, corrections and history.

Every addition or change is a :class:`~evidence.models.Submission` whose rows start ``pending``.
Approval makes each row the ``current`` version of its entity (the previous current version stays,
no longer current); rejection keeps the rows, visible, with the reason. Nothing is deleted.
"""

from __future__ import annotations

import json
import os

import pandas as pd
import sqlalchemy as sa
import pydantic
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from .db import session_scope
from .errors import EvidenceError, NotAuthorized, NotFound, ValidationFailed
from .identity import check_identity, same_identity
from .models import Claim, ClaimCreate, Result, ResultCreate, Study, StudyCreate, Submission, utcnow
from .rows import pydantic_problems
from .submit import SubmissionCreate, new_uid, submit, whoami
from .vocab import ReviewStatus, SubmissionKind

__all__ = [
    "whoami",
    "approve",
    "reject",
    "self_approval_allowed",
    "SELF_APPROVAL_ENV",
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
_CREATE = {"study": StudyCreate, "claim": ClaimCreate, "result": ResultCreate}


def _get_submission(session: Session, submission_id: int) -> Submission:
    sub = session.get(Submission, submission_id)
    if sub is None:
        raise NotFound(f"submission {submission_id} does not exist")
    return sub


SELF_APPROVAL_ENV = "CREV_ALLOW_SELF_APPROVAL"
_REVIEW_LOCK = 0x63726577  # PostgreSQL advisory-lock key serialising approvals and rejections


def self_approval_allowed(allow: bool | None = None) -> bool:
    """Whether a user may approve their own submission: ``allow`` if given, else ``CREV_ALLOW_SELF_APPROVAL=1``.

    Off by default: a second person checks every addition. A researcher curating a private SQLite
    file alone turns it on; file permissions are then the boundary (docs/SECURITY.md).
    """
    if allow is not None:
        return allow
    return os.environ.get(SELF_APPROVAL_ENV, "").strip().lower() in ("1", "true", "yes")


def _reviewer(by: str | None) -> str:
    """The reviewer's name, refused when empty, invisible or too long (:func:`~evidence.identity.check_identity`)."""
    return check_identity(whoami(by), "reviewer name")


def _begin_review(session: Session, submission_id: int) -> tuple[Submission, str | None, bool]:
    """Lock review (PostgreSQL), load the pending submission, and say who the database says we are."""
    db_user, superuser = None, False
    if session.get_bind().dialect.name == "postgresql":
        # One review at a time: each statement after the lock sees the previous review committed,
        # so two corrections of one entry approved at once still leave one current version.
        session.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _REVIEW_LOCK})
        db_user, superuser = session.execute(
            sa.text("SELECT session_user, COALESCE((SELECT rolsuper FROM pg_roles WHERE rolname = session_user), false)")
        ).one()
    sub = _get_submission(session, submission_id)
    session.refresh(sub)
    if sub.status != ReviewStatus.pending:
        raise EvidenceError(f"submission {submission_id} is {sub.status.value}, not pending")
    return sub, db_user, bool(superuser)


def approve(
    engine: Engine,
    submission_id: int,
    by: str | None = None,
    reason: str = "",
    *,
    allow_self_approval: bool | None = None,
) -> Submission:
    """Approve a pending submission: its rows become the current versions of their entities.

    Refused (:class:`~evidence.errors.NotAuthorized`) when the reviewer submitted it — by name
    compared in canonical form (:func:`~evidence.identity.same_identity`: NFKC, case-folded, format
    characters removed, TR39 confusable skeleton), and
    on PostgreSQL by database role (``session_user``, unless a superuser, who can bypass any rule
    anyway) — unless :func:`self_approval_allowed` on a SQLite file (one person curating alone; the
    approval is then recorded as ``self_approved``). On PostgreSQL the switch is refused, and the
    database's own trigger (migration 0005) refuses a role approving what it submitted. The reviewer's
    name, the reason and, on PostgreSQL, ``session_user`` are recorded with the decision.
    """
    by = _reviewer(by)
    with session_scope(engine) as session:
        sub, db_user, superuser = _begin_review(session, submission_id)
        own = same_identity(by, sub.submitted_by)  # TR39 canonical form: no look-alike of the submitter
        if db_user is not None and not superuser and db_user == sub.submitted_db_user:
            raise NotAuthorized(
                f"database role {db_user} submitted submission {submission_id} and cannot approve it: "
                "another curator's role must"
            )
        if own and (db_user is not None or not self_approval_allowed(allow_self_approval)):
            hint = ("the self-approval switch is for a single-user SQLite file only" if db_user is not None
                    else f"or set {SELF_APPROVAL_ENV}=1 where one person curates alone")
            raise NotAuthorized(f"{by} submitted submission {submission_id} and cannot approve it: another curator must ({hint})")
        sub.self_approved = own  # recorded: approved by its own submitter under the switch (SQLite only)
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
        sub.reviewed_db_user = db_user
        if reason and reason.strip():
            sub.reason = reason.strip()
        session.add(sub)
        return sub


def reject(engine: Engine, submission_id: int, reason: str, by: str | None = None) -> Submission:
    """Reject a pending submission; its rows stay, visible, with the reason.

    A submitter may reject (withdraw) their own submission: that adds nothing to the evidence.
    """
    if not reason or not reason.strip():
        raise EvidenceError("a rejection needs a reason")
    by = _reviewer(by)
    with session_scope(engine) as session:
        sub, db_user, _ = _begin_review(session, submission_id)
        for table, _key in ENTITY_TABLES.values():
            session.execute(
                sa.update(table).where(table.submission_id == submission_id).values(review_status=ReviewStatus.rejected)
            )
        sub.status = ReviewStatus.rejected
        sub.reason = reason.strip()
        sub.reviewed_by, sub.reviewed_at = by, utcnow()
        sub.reviewed_db_user = db_user
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
    return pd.DataFrame([{**{c: _plain(getattr(s, c)) for c in cols}, "submitter_reason": submitter_reason(s)} for s in subs],
                        columns=[*cols, "submitter_reason"])


def submitter_reason(sub: Submission) -> str | None:
    """Why the submitter proposed a correction (the ``reason`` given to :func:`propose_correction`,
    kept in the submission's summary), so reviewers see it; ``None`` for other kinds or none given."""
    if sub.kind != SubmissionKind.correction or not sub.summary:
        return None
    try:
        got = json.loads(sub.summary)
    except ValueError:
        return None
    reason = got.get("reason") if isinstance(got, dict) else None
    return str(reason).strip() or None if reason else None


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

    The new version copies the current one with ``changes`` applied and goes through
    :func:`evidence.submit.submit`, validated by the same Create models as any addition.
    """
    if entity not in ENTITY_TABLES:
        raise EvidenceError(f"entity must be one of {', '.join(ENTITY_TABLES)}, not {entity!r}")
    table, key_col = ENTITY_TABLES[entity]
    with Session(engine) as session:
        cur = session.exec(select(table).where(getattr(table, key_col) == key, table.current.is_(True))).first()
        if cur is None:
            raise NotFound(f"no approved {entity} with id {key!r}")
        data = cur.model_dump(exclude=_META | {"release"})
    unknown = set(changes) - set(data)
    if unknown:
        raise EvidenceError(f"{entity} has no field(s) {', '.join(sorted(unknown))}")
    data.update(changes)
    if entity == "result" and "warnings" not in changes:
        data["warnings"] = ""  # recomputed from the corrected numbers
    try:
        item = _CREATE[entity].model_validate(data)
    except pydantic.ValidationError as exc:
        raise ValidationFailed(pydantic_problems(exc, file=f"correction of {entity} {key}", row=None)) from None
    summary = json.dumps({"entity": entity, "key": key, "changes": changes, "reason": reason}, default=str)
    return submit(engine, SubmissionCreate(kind=SubmissionKind.correction, submitted_by=whoami(by), summary=summary, **{f"{entity}s" if entity != "study" else "studies": [item]}))


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
