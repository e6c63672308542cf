"""Reading evidence out: filtered results, studies, claims and totals.

By default only *current* rows are read: approved, latest versions. ``status="pending"`` reads the
review queue's rows and ``status="all"`` every version, rejected ones included.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Literal, Sequence

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from .models import Claim, Result, Study, Submission
from .vocab import (
    AdvTraining,
    Attack,
    CompressionFamily,
    CompressionKind,
    Direction,
    Norm,
    Provenance,
    ReviewStatus,
    SourceKind,
    ThreatModel,
    coerce,
)

__all__ = [
    "data_version", "ResultFilter", "query_results", "count_results", "list_studies", "list_claims",
    "ReleaseCounts", "EvidenceStats", "stats", "distinct_values",
]

Status = Literal["approved", "pending", "all"]


@dataclass
class ResultFilter:
    """Filters the app and the CLI share. Empty lists mean "any"; ranges are inclusive."""

    study_ids: Sequence[str] = field(default_factory=list)
    datasets: Sequence[str] = field(default_factory=list)
    families: Sequence[CompressionFamily | str] = field(default_factory=list)
    threat_models: Sequence[ThreatModel | str] = field(default_factory=list)
    adversarial_training: Sequence[AdvTraining | str] = field(default_factory=list)
    attacks: Sequence[Attack | str] = field(default_factory=list)
    eps_min: float | None = None
    eps_max: float | None = None
    sparsity_min: float | None = None
    sparsity_max: float | None = None
    bits_min: int | None = None
    bits_max: int | None = None
    source_kinds: Sequence[SourceKind | str] = field(default_factory=list)
    releases: Sequence[str] = field(default_factory=list)  # curated release names; "" for user submissions
    include_quick: bool = False
    status: Status = "approved"

    def __post_init__(self) -> None:
        self.families = [coerce(CompressionFamily, f) for f in self.families]
        self.threat_models = [coerce(ThreatModel, f) for f in self.threat_models]
        self.adversarial_training = [coerce(AdvTraining, f) for f in self.adversarial_training]
        self.attacks = [coerce(Attack, f) for f in self.attacks]
        self.source_kinds = [coerce(SourceKind, f) for f in self.source_kinds]
        if self.status not in ("approved", "pending", "all"):
            raise ValueError(f"status must be approved, pending or all, not {self.status!r}")

    def key(self) -> tuple:
        """A hashable form (for caches)."""
        return tuple(tuple(v) if isinstance(v, list) else v for v in (getattr(self, f.name) for f in fields(self)))

    def where(self, t: sa.Table) -> list:
        c = t.c
        clauses = []
        if self.status == "approved":
            clauses.append(c.current.is_(True))
        elif self.status == "pending":
            clauses.append(c.review_status == ReviewStatus.pending.value)
        for col, values in (
            ("study_id", self.study_ids),
            ("dataset", self.datasets),
            ("compression_family", [v.value for v in self.families]),
            ("threat_model", [v.value for v in self.threat_models]),
            ("adversarial_training", [v.value for v in self.adversarial_training]),
            ("attack", [v.value for v in self.attacks]),
            ("source_kind", [v.value for v in self.source_kinds]),
            ("release", list(self.releases)),
        ):
            if values:
                clauses.append(c[col].in_(list(values)))
        for col, lo, hi in (
            ("epsilon", self.eps_min, self.eps_max),
            ("sparsity", self.sparsity_min, self.sparsity_max),
            ("bits", self.bits_min, self.bits_max),
        ):
            if lo is not None:
                clauses.append(c[col] >= lo)
            if hi is not None:
                clauses.append(c[col] <= hi)
        if not self.include_quick:
            clauses.append(c.quick.is_(False))
        return clauses


def _frame(conn, stmt) -> pd.DataFrame:
    """Run ``stmt`` through the DB-API cursor directly: SQLAlchemy's per-value result processing
    (enum and datetime coercion) costs more than the query itself on large result sets."""
    compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    params = compiled.construct_params()
    if compiled.positiontup is not None:
        params = tuple(params[name] for name in compiled.positiontup)
    cur = conn.connection.driver_connection.cursor()
    try:
        cur.execute(str(compiled), params)
        columns = [d[0] for d in cur.description]
        rows = cur.fetchall()
    finally:
        cur.close()
    # dtype=object skips per-column type inference; numeric columns are converted explicitly below.
    return pd.DataFrame(rows, columns=columns, dtype=object)


def query_results(engine: Engine, filt: ResultFilter | None = None, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Results matching ``filt`` as a frame (one row per result version), ordered by id."""
    filt = filt or ResultFilter()
    t = Result.__table__
    cols = [t.c[c] for c in columns] if columns else [t]
    stmt = sa.select(*cols).where(*filt.where(t)).order_by(t.c.id)
    with engine.connect() as conn:
        df = _frame(conn, stmt)
    return _typed(df)


_FLOAT_COLS = ("epsilon", "sparsity", "clean_acc_dense", "robust_acc_dense", "clean_acc_compressed", "robust_acc_compressed")
_INT_COLS = (
    "bits", "n_test", "steps", "version", "id", "submission_id", "n_clean_correct_dense", "n_robust_correct_dense",
    "n_clean_correct_compressed", "n_robust_correct_compressed", "n_robust_dense_only", "n_robust_compressed_only", "attack_queries",
)
_BOOL_COLS = ("current", "quick")


_ENUM_COLS = {
    "compression_family": CompressionFamily, "adversarial_training": AdvTraining, "attack": Attack, "norm": Norm,
    "threat_model": ThreatModel, "provenance": Provenance, "source_kind": SourceKind, "review_status": ReviewStatus,
    "compression_kind": CompressionKind, "main_direction": Direction, "direction": Direction,
}


_MEMBERS = {enum: {m.value: m for m in enum} for enum in set(_ENUM_COLS.values())}


def _enums(df: pd.DataFrame) -> pd.DataFrame:
    """Vocabulary columns as their enum members (a ``StrEnum`` compares equal to its value): the
    raw strings of the cursor never leave this module."""
    for c, enum in _ENUM_COLS.items():
        if c in df and len(df):
            members = _MEMBERS[enum]
            values = [members.get(v, v) for v in df[c].to_numpy(dtype=object)]
            # an object Series: pandas would turn a mapped column back into plain strings
            df[c] = pd.Series(np.array(values, dtype=object), index=df.index, dtype=object)
    return df


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    """Numbers as numbers (nullable where the database allows null), flags as booleans, vocabularies as enums."""
    for c in _FLOAT_COLS:
        if c in df:
            df[c] = df[c].astype("float64")
    for c in _INT_COLS:
        if c in df:
            df[c] = df[c].astype("float64").astype("Int64")
    for c in _BOOL_COLS:
        if c in df:
            df[c] = df[c].astype(bool)
    if "gradient_masking" in df:
        df["gradient_masking"] = df["gradient_masking"].astype("float64").astype("boolean")
    return _enums(df)


def count_results(engine: Engine, filt: ResultFilter | None = None) -> int:
    filt = filt or ResultFilter()
    t = Result.__table__
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(t).where(*filt.where(t))).scalar_one()


def _status_clause(t, status: Status):
    if status == "approved":
        return [t.c.current.is_(True)]
    if status == "pending":
        return [t.c.review_status == ReviewStatus.pending.value]
    return []


def list_studies(engine: Engine, status: Status = "approved") -> pd.DataFrame:
    t = Study.__table__
    with engine.connect() as conn:
        df = _frame(conn, sa.select(t).where(*_status_clause(t, status)).order_by(t.c.study_id, t.c.version))
    return _enums(df)


def list_claims(engine: Engine, status: Status = "approved") -> pd.DataFrame:
    t = Claim.__table__
    with engine.connect() as conn:
        df = _frame(conn, sa.select(t).where(*_status_clause(t, status)).order_by(t.c.question_id, t.c.study_id, t.c.id))
    return _enums(df)


def distinct_values(engine: Engine, column: str) -> list:
    """Sorted distinct values of a result column among current rows (for filter widgets); a
    vocabulary column gives its enum members."""
    t = Result.__table__
    with engine.connect() as conn:
        vals = conn.execute(sa.select(t.c[column]).where(t.c.current.is_(True)).distinct()).scalars().all()
    enum = _ENUM_COLS.get(column)
    return sorted((enum(v) if enum is not None else v for v in vals if v is not None), key=str)


@dataclass(frozen=True)
class ReleaseCounts:
    """Current (approved) entries that came from one release ("" = user submissions)."""

    release: str
    studies: int
    claims: int
    results: int

    def to_dict(self) -> dict:
        return {"studies": self.studies, "claims": self.claims, "results": self.results}


@dataclass(frozen=True)
class EvidenceStats:
    """Totals of current (approved) entries, with breakdowns; counts only (derive shares from them)."""

    studies: int
    claims: int
    results: int
    studies_with_results: int
    pending_submissions: int
    by_review_status: dict[str, dict[ReviewStatus, int]]
    by_study: dict[str, dict[str, int]]
    by_family: dict[CompressionFamily, int]
    by_threat_model: dict[ThreatModel, int]
    by_release: tuple[ReleaseCounts, ...]

    def to_dict(self) -> dict:
        return {
            "studies": self.studies,
            "claims": self.claims,
            "results": self.results,
            "studies_with_results": self.studies_with_results,
            "pending_submissions": self.pending_submissions,
            "by_review_status": {k: {str(s): n for s, n in v.items()} for k, v in self.by_review_status.items()},
            "by_study": self.by_study,
            "by_family": {str(k): n for k, n in self.by_family.items()},
            "by_threat_model": {str(k): n for k, n in self.by_threat_model.items()},
            "by_release": {r.release: r.to_dict() for r in self.by_release},
        }

    def release_frame(self) -> pd.DataFrame:
        return pd.DataFrame([{"release": r.release or "(user submissions)", **r.to_dict()} for r in self.by_release])


def stats(engine: Engine) -> EvidenceStats:
    """Totals of current (approved) entries, and breakdowns by review status, study, family, threat
    model and release."""
    with engine.connect() as conn:
        totals = {}
        by_status: dict = {}
        per_release: dict[str, dict[str, int]] = {}
        for name, table in (("studies", Study), ("claims", Claim), ("results", Result)):
            t = table.__table__
            totals[name] = int(conn.execute(sa.select(sa.func.count()).select_from(t).where(t.c.current.is_(True))).scalar_one())
            rows = conn.execute(sa.select(t.c.review_status, sa.func.count()).group_by(t.c.review_status)).all()
            by_status[name] = {ReviewStatus(s): int(n) for s, n in rows}
            for rel, n in conn.execute(sa.select(t.c.release, sa.func.count()).where(t.c.current.is_(True)).group_by(t.c.release)).all():
                per_release.setdefault(rel, {"studies": 0, "claims": 0, "results": 0})[name] = int(n)
        r, c = Result.__table__, Claim.__table__
        res_by = dict(conn.execute(sa.select(r.c.study_id, sa.func.count()).where(r.c.current.is_(True)).group_by(r.c.study_id)).all())
        cl_by = dict(conn.execute(sa.select(c.c.study_id, sa.func.count()).where(c.c.current.is_(True)).group_by(c.c.study_id)).all())
        s = Study.__table__
        ids = conn.execute(sa.select(s.c.study_id).where(s.c.current.is_(True)).order_by(s.c.study_id)).scalars().all()
        by_study = {i: {"results": int(res_by.get(i, 0)), "claims": int(cl_by.get(i, 0))} for i in ids}
        by_col = {}
        for key, col, enum in (("family", r.c.compression_family, CompressionFamily), ("threat", r.c.threat_model, ThreatModel)):
            rows = conn.execute(sa.select(col, sa.func.count()).where(r.c.current.is_(True)).group_by(col)).all()
            by_col[key] = {enum(getattr(k, "value", k)): int(n) for k, n in rows}
        sub = Submission.__table__
        pending = int(conn.execute(sa.select(sa.func.count()).select_from(sub).where(sub.c.status == ReviewStatus.pending.value)).scalar_one())
    return EvidenceStats(
        studies=totals["studies"], claims=totals["claims"], results=totals["results"],
        studies_with_results=sum(1 for v in by_study.values() if v["results"]),
        pending_submissions=pending, by_review_status=by_status, by_study=by_study,
        by_family=by_col["family"], by_threat_model=by_col["threat"],
        by_release=tuple(ReleaseCounts(k, **v) for k, v in sorted(per_release.items(), key=lambda kv: (kv[0] == "", kv[0]))),
    )


def data_version(engine: Engine) -> tuple:
    """A cheap token that changes whenever evidence is added, reviewed or a job makes progress
    (the app keys its caches on it)."""
    from .models import Job, JobCell

    sub, job = Submission.__table__, Job.__table__
    with engine.connect() as conn:
        a = conn.execute(sa.select(sa.func.max(sub.c.id), sa.func.count(sub.c.reviewed_at))).one()
        b = conn.execute(sa.select(sa.func.max(job.c.id), sa.func.sum(job.c.cells_done))).one()
        c = conn.execute(sa.select(sa.func.count()).select_from(JobCell.__table__)).scalar_one()
    return (a[0], a[1], b[0], b[1], c)
