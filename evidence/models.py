"""SQLModel data model: studies, claims, results, submissions and jobs.

Model families follow SQLModel's tutorial: ``XBase`` (the fields a user supplies) →
``X(XBase, table=True)`` (the stored row, with versioning and review columns) → ``XCreate`` (the
input every addition is validated on, see :mod:`evidence.submit`). Reads return frames (:mod:`evidence.queries`).

Versioning. A study, claim or result is an *entity* with a stable key (``study_id`` for studies,
``uid`` for claims and results); every addition or correction is a new *row* (a version) that
belongs to a :class:`Submission`. Rows are never deleted. Exactly one approved row of an entity is
``current``; the default queries read only current rows, so pending and rejected submissions never
count in an analysis.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Optional

import sqlalchemy as sa
from pydantic import model_validator
from sqlmodel import Field, SQLModel

from .vocab import (
    AdvTraining,
    Attack,
    CompressionFamily,
    CompressionKind,
    Direction,
    Executor,
    JobStatus,
    Norm,
    Provenance,
    ReviewStatus,
    SourceKind,
    SubmissionKind,
    ThreatModel,
)

__all__ = [
    "Submission",
    "StudyBase",
    "Study",
    "StudyCreate",
    "ClaimBase",
    "Claim",
    "ClaimCreate",
    "ResultBase",
    "Result",
    "ResultCreate",
    "COUNT_COLUMNS",
    "Job",
    "JobCell",
    "utcnow",
    "MAX_INT",
    "max_lengths",
    "MAX_BITS",
    "STUDY_SLUG",
]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def max_lengths(model: type[SQLModel]) -> dict[str, int]:
    """``{field: max_length}`` of a model's length-limited text fields, to check before the database does."""
    out = {}
    for name, info in model.model_fields.items():
        for meta in info.metadata:
            if getattr(meta, "max_length", None) is not None:
                out[name] = meta.max_length
    return out


# Limits every number must meet before it reaches the database (PostgreSQL INTEGER is 32-bit; no
# infinities or NaN); the same limits are checked by the parsers in :mod:`evidence.parsing`.
MAX_INT = 2**31 - 1
MAX_BITS = 64
STUDY_SLUG = r"^[a-z0-9][a-z0-9_\-]*$"
_FINITE = {"allow_inf_nan": False}


def _enum(enum_cls, length: int = 32):
    """A portable enum column: VARCHAR holding the enum's value (no native PostgreSQL type)."""
    return sa.Enum(
        enum_cls,
        native_enum=False,
        create_constraint=False,
        length=length,
        values_callable=lambda e: [m.value for m in e],
        validate_strings=True,
    )


class _Versioned(SQLModel):
    """Review and version columns shared by every curated table."""

    version: int = Field(default=1, ge=1)
    submission_id: Optional[int] = Field(default=None, foreign_key="submission.id", index=True)
    review_status: ReviewStatus = Field(default=ReviewStatus.pending, sa_type=_enum(ReviewStatus), index=True)
    current: bool = Field(default=False, index=True)
    created_by: str = Field(default="unknown", max_length=120)
    created_at: datetime = Field(default_factory=utcnow)
    # The curated release the row came from ("seed-2025.1", "coverage-2026.11"); "" for a user's submission.
    release: str = Field(default="", max_length=64, sa_column_kwargs={"server_default": ""})


class Submission(SQLModel, table=True):
    """One addition or change by a user: who, when, what, and the curator's decision."""

    id: Optional[int] = Field(default=None, primary_key=True)
    kind: SubmissionKind = Field(sa_type=_enum(SubmissionKind), index=True)
    submitted_by: str = Field(max_length=120)
    submitted_at: datetime = Field(default_factory=utcnow)
    status: ReviewStatus = Field(default=ReviewStatus.pending, sa_type=_enum(ReviewStatus), index=True)
    reviewed_by: Optional[str] = Field(default=None, max_length=120)
    # PostgreSQL: the database roles that submitted and reviewed (session_user; set by the database, migration 0003)
    submitted_db_user: Optional[str] = Field(default=None, max_length=120)
    reviewed_db_user: Optional[str] = Field(default=None, max_length=120)
    # approved by its own submitter under CREV_ALLOW_SELF_APPROVAL (single-user SQLite only; migration 0005)
    self_approved: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    reviewed_at: Optional[datetime] = None
    reason: Optional[str] = None
    summary: str = Field(default="", sa_type=sa.Text)
    source_file: Optional[str] = None
    n_studies: int = 0
    n_claims: int = 0
    n_results: int = 0
    release: str = Field(default="", max_length=64, index=True, sa_column_kwargs={"server_default": ""})


# --------------------------------------------------------------------------- studies


class StudyBase(SQLModel):
    study_id: str = Field(index=True, min_length=3, max_length=120, schema_extra={"pattern": STUDY_SLUG})  # pydantic v2 ignores regex=
    title: str = Field(min_length=1)
    authors: str = ""
    year: Optional[int] = Field(default=None, ge=1900, le=2100)
    year_text: str = ""
    venue: str = ""
    identifier: str = ""
    compression_kind: CompressionKind = Field(default=CompressionKind.other, sa_type=_enum(CompressionKind))
    compression_kind_text: str = ""
    main_claim: str = Field(default="", sa_type=sa.Text)
    main_direction: Direction = Field(default=Direction.unknown, sa_type=_enum(Direction))
    main_direction_text: str = ""
    adversarial_training: AdvTraining = Field(default=AdvTraining.unknown, sa_type=_enum(AdvTraining))
    adversarial_training_text: str = ""
    datasets: str = ""
    architectures: str = ""
    attacks: str = ""
    source_of_info: str = Field(default="", sa_type=sa.Text)
    in_review_2023: Optional[bool] = None
    review_membership_text: str = ""


class Study(StudyBase, _Versioned, table=True):
    __table_args__ = (
        sa.UniqueConstraint("study_id", "version", name="uq_study_version"),
        sa.Index("ix_study_release", "release"),
    )
    id: Optional[int] = Field(default=None, primary_key=True)


class StudyCreate(StudyBase):
    pass


# --------------------------------------------------------------------------- claims


class ClaimBase(SQLModel):
    study_id: str = Field(index=True, max_length=120)
    question_id: str = Field(index=True, max_length=80)
    question: str = ""
    direction: Direction = Field(sa_type=_enum(Direction))
    position: str = ""
    study_main_claim: str = Field(default="", sa_type=sa.Text)
    compression_family: Optional[CompressionFamily] = Field(default=None, sa_type=_enum(CompressionFamily))
    adversarial_training: AdvTraining = Field(default=AdvTraining.unknown, sa_type=_enum(AdvTraining))
    threat_model: ThreatModel = Field(default=ThreatModel.unknown, sa_type=_enum(ThreatModel))
    conditions_note: str = ""


class Claim(ClaimBase, _Versioned, table=True):
    __table_args__ = (
        sa.UniqueConstraint("uid", "version", name="uq_claim_version"),
        sa.Index("ix_claim_release", "release"),
    )
    id: Optional[int] = Field(default=None, primary_key=True)
    uid: str = Field(index=True, max_length=64)


class ClaimCreate(ClaimBase):
    """A claim as submitted; ``uid`` names an existing claim (a correction, a release's row) or is
    assigned on submission."""

    uid: Optional[str] = Field(default=None, min_length=1, max_length=64)


# --------------------------------------------------------------------------- results


class ResultBase(SQLModel):
    study_id: str = Field(max_length=120)
    dataset: str = Field(default="", max_length=120)
    architecture: str = ""
    compression_family: CompressionFamily = Field(sa_type=_enum(CompressionFamily))
    compression_method: str = ""
    compression_level_text: str = ""
    sparsity: Optional[float] = Field(default=None, ge=0.0, lt=1.0, schema_extra=_FINITE)
    bits: Optional[int] = Field(default=None, ge=1, le=MAX_BITS)
    adversarial_training: AdvTraining = Field(default=AdvTraining.unknown, sa_type=_enum(AdvTraining))
    adversarial_training_text: str = ""
    attack: Attack = Field(default=Attack.other, sa_type=_enum(Attack))
    attack_text: str = ""
    norm: Norm = Field(default=Norm.unknown, sa_type=_enum(Norm))
    norm_text: str = ""
    epsilon: Optional[float] = Field(default=None, ge=0.0, schema_extra=_FINITE)
    epsilon_text: str = ""
    steps: Optional[int] = Field(default=None, ge=0, le=MAX_INT)
    steps_text: str = ""
    threat_model: ThreatModel = Field(default=ThreatModel.unknown, sa_type=_enum(ThreatModel))
    threat_model_text: str = ""
    clean_acc_dense: Optional[float] = Field(default=None, ge=0.0, le=100.0, schema_extra=_FINITE)
    robust_acc_dense: Optional[float] = Field(default=None, ge=0.0, le=100.0, schema_extra=_FINITE)
    clean_acc_compressed: Optional[float] = Field(default=None, ge=0.0, le=100.0, schema_extra=_FINITE)
    robust_acc_compressed: Optional[float] = Field(default=None, ge=0.0, le=100.0, schema_extra=_FINITE)
    n_test: Optional[int] = Field(default=None, ge=1, le=MAX_INT)
    # Exact counts out of n_test (replications, and sources that print them). Where a count is given
    # the percentage is derived from it exactly (count / n_test * 100), see ResultCreate.
    n_clean_correct_dense: Optional[int] = Field(default=None, ge=0, le=MAX_INT)
    n_robust_correct_dense: Optional[int] = Field(default=None, ge=0, le=MAX_INT)
    n_clean_correct_compressed: Optional[int] = Field(default=None, ge=0, le=MAX_INT)
    n_robust_correct_compressed: Optional[int] = Field(default=None, ge=0, le=MAX_INT)
    # Paired discordant counts on the robust outcome over the same images (McNemar's b and c):
    # dense right and compressed wrong, and the reverse.
    n_robust_dense_only: Optional[int] = Field(default=None, ge=0, le=MAX_INT)
    n_robust_compressed_only: Optional[int] = Field(default=None, ge=0, le=MAX_INT)
    attack_queries: Optional[int] = Field(default=None, ge=1, le=MAX_INT)  # query budget of score/decision attacks (Square)
    provenance: Provenance = Field(default=Provenance.verbatim, sa_type=_enum(Provenance))
    provenance_text: str = Field(default="", sa_type=sa.Text, sa_column_kwargs={"server_default": ""})
    url_or_path: str = Field(default="", sa_type=sa.Text)
    source_location: str = Field(default="", sa_type=sa.Text)
    notes: str = Field(default="", sa_type=sa.Text)
    cluster: str = Field(default="", max_length=255)
    source_kind: SourceKind = Field(default=SourceKind.literature, sa_type=_enum(SourceKind))
    # Replication evidence: the claim it checks, its verdict, the run's provenance and checks (JSON).
    claim_uid: Optional[str] = Field(default=None, max_length=64)
    verdict: Optional[str] = Field(default=None, max_length=32)
    quick: bool = False
    gradient_masking: Optional[bool] = None
    checks_json: str = Field(default="", sa_type=sa.Text)
    replication_json: str = Field(default="", sa_type=sa.Text)
    warnings: str = Field(default="", sa_type=sa.Text)


class Result(ResultBase, _Versioned, table=True):
    __table_args__ = (
        sa.UniqueConstraint("uid", "version", name="uq_result_version"),
        sa.Index("ix_result_filter", "current", "compression_family", "threat_model", "epsilon"),
        sa.Index("ix_result_study", "current", "study_id"),
        sa.Index("ix_result_dataset", "current", "dataset"),
        sa.Index("ix_result_adv", "current", "adversarial_training"),
        sa.Index("ix_result_sparsity", "current", "sparsity"),
        sa.Index("ix_result_bits", "current", "bits"),
        sa.Index("ix_result_release", "current", "release"),
    )
    id: Optional[int] = Field(default=None, primary_key=True)
    uid: str = Field(index=True, max_length=64)
    fingerprint: str = Field(index=True, max_length=64)


# count column -> the percentage column it determines
COUNT_COLUMNS: dict[str, str] = {
    "n_clean_correct_dense": "clean_acc_dense",
    "n_robust_correct_dense": "robust_acc_dense",
    "n_clean_correct_compressed": "clean_acc_compressed",
    "n_robust_correct_compressed": "robust_acc_compressed",
}
_ALL_COUNTS = (*COUNT_COLUMNS, "n_robust_dense_only", "n_robust_compressed_only")
# A percentage printed beside a count may be rounded to one decimal: it must agree within this many points.
PERCENT_TOLERANCE = 0.05


class ResultCreate(ResultBase):
    """A result as submitted. Counts, where given, must fit ``n_test`` and agree with each other;
    the percentage they determine is then derived exactly from the count. ``uid`` names an
    existing result (a correction, a release's row) or is assigned on submission."""

    uid: Optional[str] = Field(default=None, min_length=1, max_length=64)

    @model_validator(mode="after")
    def _counts_fit(self) -> "ResultCreate":
        values = self.__dict__  # plain reads: this runs for every row of every import
        counts = {name: values.get(name) for name in _ALL_COUNTS}
        given = {k: v for k, v in counts.items() if v is not None}
        if not given:
            return self
        n = self.n_test
        if n is None:
            raise ValueError(f"{', '.join(given)} given without n_test (counts are out of n_test images)")
        for name, value in given.items():
            if value > n:
                raise ValueError(f"{name} = {value} is more than n_test = {n}")
        b, c = counts["n_robust_dense_only"], counts["n_robust_compressed_only"]
        if b is not None and c is not None and b + c > n:
            raise ValueError(f"discordant counts {b} + {c} are more than n_test = {n}")
        rd, rc = counts["n_robust_correct_dense"], counts["n_robust_correct_compressed"]
        if None not in (b, c, rd, rc) and rd - rc != b - c:
            raise ValueError(
                f"paired counts disagree: robust correct dense - compressed = {rd - rc}, "
                f"but dense-only - compressed-only = {b - c} (both must count the same images)"
            )
        for name, pct_name in COUNT_COLUMNS.items():
            count = counts[name]
            if count is None:
                continue
            exact = count / n * 100.0
            printed = getattr(self, pct_name)
            if printed is not None and abs(printed - exact) > PERCENT_TOLERANCE + 1e-9:
                raise ValueError(f"{pct_name} = {printed:g} disagrees with {name} / n_test = {count}/{n} = {exact:.4g}%")
            setattr(self, pct_name, exact)
        return self


# --------------------------------------------------------------------------- replication jobs


class Job(SQLModel, table=True):
    """A replication job: its spec, its state and its log (written by :mod:`replicate`)."""

    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = ""
    claim_id: str = Field(default="", index=True)
    spec_json: str = Field(default="", sa_type=sa.Text)
    spec_hash: str = Field(default="", index=True, max_length=64)
    quick: bool = False
    executor: Executor = Field(default=Executor.local, sa_type=_enum(Executor))
    status: JobStatus = Field(default=JobStatus.queued, sa_type=_enum(JobStatus, length=24), index=True)
    stage: str = ""
    progress: float = 0.0
    cells_total: int = 0
    cells_done: int = 0
    log: str = Field(default="", sa_type=sa.Text)
    error: Optional[str] = Field(default=None, sa_type=sa.Text)
    cancel_requested: bool = False
    created_by: str = "unknown"
    # PostgreSQL: the role that launched the job (session_user, set by the database; migration 0005)
    created_db_user: Optional[str] = Field(default=None, max_length=120)
    created_at: datetime = Field(default_factory=utcnow)
    started_at: Optional[datetime] = None
    finished_at: Optional[datetime] = None
    # written every few seconds by the job's own process while it runs (replicate.jobs.heartbeat); None on rows
    # from before migration 0004 and before the process starts: then staleness falls back to the last activity
    heartbeat_at: Optional[datetime] = None
    timings_json: str = Field(default="", sa_type=sa.Text)
    submission_id: Optional[int] = None


class JobCell(SQLModel, table=True):
    """One finished grid cell of a job, stored whole in one transaction (what makes resume safe)."""

    __table_args__ = (sa.UniqueConstraint("job_key", "cell_key", name="uq_jobcell"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    job_key: str = Field(index=True, max_length=64)
    cell_key: str = Field(max_length=255)
    payload_json: str = Field(default="", sa_type=sa.Text)
    seconds: float = 0.0
    created_at: datetime = Field(default_factory=utcnow)
