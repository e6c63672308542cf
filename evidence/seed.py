"""Curated releases shipped with the package: the seed and the batches curated after it.

Each release is a folder ``evidence/data/releases/<name>/`` holding ``release.toml`` (name,
version, title, curator, approved, order) and ``studies.csv``, ``claims.csv`` (optional) and
``results.csv`` in the seed's columns (plus, optionally, the count columns and, for a replication
release, the replication columns). :func:`load_releases` loads every shipped release not yet in the
database, in order, each as one submission through :func:`evidence.submit.submit`, so a database
gets each release once: on first start, and on the first start after an upgrade that ships a new
one. Every row records the release it came from (``release`` column).

A database made before releases existed holds the seed as a submission of kind ``seed`` with no
release label; :func:`load_releases` labels it ``seed-2025.1`` instead of loading the seed again.
"""

from __future__ import annotations

import csv
import hashlib
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from .db import session_scope
from .errors import EvidenceError, Problem, ValidationFailed
from .models import Claim, Result, Study, Submission
from .rows import claim_record, study_record
from .store import convert_rows, validate_entity
from .submit import ImportReport, SubmissionCreate, known_study_ids, submit
from .vocab import SubmissionKind

__all__ = [
    "SEED_RELEASE",
    "SEED_CURATOR",
    "ShippedRelease",
    "releases_dir",
    "shipped_releases",
    "loaded_releases",
    "load_release",
    "load_releases",
    "seed_dir",
    "seed_loaded",
    "load_seed",
]

SEED_RELEASE = "seed-2025.1"
SEED_CURATOR = "seed"


@dataclass(frozen=True)
class ShippedRelease:
    """A curated release folder and what its ``release.toml`` says about it."""

    name: str
    version: str
    title: str
    curator: str
    approved: bool
    order: int
    path: Path
    kind: SubmissionKind = SubmissionKind.release
    claim_uid_prefix: str = ""
    source: str = ""

    @classmethod
    def read(cls, folder: Path) -> "ShippedRelease":
        meta_path = folder / "release.toml"
        try:
            meta = tomllib.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise EvidenceError(f"{meta_path}: cannot read the release description: {exc}") from None
        missing = [k for k in ("name", "version", "title", "curator", "approved", "order") if k not in meta]
        if missing:
            raise EvidenceError(f"{meta_path}: missing {', '.join(missing)}")
        if meta["name"] != folder.name:
            raise EvidenceError(f"{meta_path}: name {meta['name']!r} differs from its folder {folder.name!r}")
        return cls(
            name=str(meta["name"]), version=str(meta["version"]), title=str(meta["title"]), curator=str(meta["curator"]),
            approved=bool(meta["approved"]), order=int(meta["order"]), path=folder,
            kind=SubmissionKind(meta.get("kind", "release")), claim_uid_prefix=str(meta.get("claim_uid_prefix", meta["name"])),
            source=str(meta.get("source", "")),
        )

    def rows(self, name: str) -> list[dict]:
        path = self.path / name
        if not path.exists():
            return []
        with open(path, newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))


def releases_dir() -> Path:
    return Path(str(resources.files("evidence") / "data" / "releases"))


def shipped_releases(folder: Path | None = None) -> list[ShippedRelease]:
    """The releases shipped in ``folder`` (default: the package's), in load order."""
    folder = folder or releases_dir()
    found = [ShippedRelease.read(p) for p in sorted(folder.iterdir()) if (p / "release.toml").exists()]
    return sorted(found, key=lambda r: (r.order, r.name))


def seed_dir() -> Path:
    return releases_dir() / SEED_RELEASE


def _label_legacy_seed(engine: Engine) -> None:
    """A seed loaded before releases existed (kind ``seed``, no release label) becomes ``seed-2025.1``."""
    sub = Submission.__table__
    with engine.connect() as conn:
        ids = conn.execute(sa.select(sub.c.id).where(sub.c.kind == SubmissionKind.seed.value, sub.c.release == "")).scalars().all()
    if not ids:
        return
    with session_scope(engine) as session:
        for table in (Submission, Study, Claim, Result):
            t = table.__table__
            col = t.c.id if table is Submission else t.c.submission_id
            session.execute(sa.update(t).where(col.in_(ids)).values(release=SEED_RELEASE))


def loaded_releases(engine: Engine) -> set[str]:
    """Names of the releases this database holds (any review status)."""
    sub = Submission.__table__
    with engine.connect() as conn:
        return set(conn.execute(sa.select(sub.c.release).where(sub.c.release != "").distinct()).scalars())


def seed_loaded(engine: Engine) -> bool:
    _label_legacy_seed(engine)
    return SEED_RELEASE in loaded_releases(engine)


def _claim_uid(prefix: str, rec) -> str:
    key = f"{rec.question_id}|{rec.study_id}|{rec.position}"
    return f"{prefix}-" + hashlib.sha256(key.encode()).hexdigest()[:15]


def release_submission(release: ShippedRelease, engine: Engine, *, results: bool = True) -> tuple[SubmissionCreate, ImportReport]:
    """A shipped release parsed by the one parser into one submission (studies already present are skipped)."""
    report = ImportReport(source=f"release {release.name} ({release.path.name})")
    problems: list[Problem] = []
    with engine.connect() as conn:
        known = known_study_ids(conn)
    studies = []
    for i, raw in enumerate(release.rows("studies.csv"), start=1):
        try:
            study = validate_entity("study", study_record(raw), file="studies.csv", row=i)
        except ValidationFailed as exc:
            problems.extend(exc.problems)
            continue
        if study.study_id in known:
            report.skipped.append(f"studies.csv, row {i}: study {study.study_id!r} is already in the database (kept as it is)")
            continue
        studies.append(study)
    claims = []
    for i, raw in enumerate(release.rows("claims.csv"), start=1):
        try:
            claim = validate_entity("claim", claim_record(raw), file="claims.csv", row=i)
        except ValidationFailed as exc:
            problems.extend(exc.problems)
            continue
        except ValueError as exc:
            problems.append(Problem("claims.csv", i, getattr(exc, "field", None), str(exc)))
            continue
        claim.uid = claim.uid or _claim_uid(release.claim_uid_prefix, claim)
        claims.append(claim)
    known |= {s.study_id for s in studies}
    result_models, row_numbers = [], []
    if results:
        try:
            result_models, row_numbers = convert_rows("results.csv", release.rows("results.csv"), report, known, release=True)
        except ValidationFailed as exc:
            problems.extend(exc.problems)
    if problems:
        raise ValidationFailed([Problem(f"{release.name}/{p.file}", p.row, p.column, p.reason) for p in problems])
    sub = SubmissionCreate(
        kind=release.kind, submitted_by=release.curator, reviewed_by=release.curator, approved=release.approved,
        release=release.name, studies=studies, claims=claims, results=result_models, result_rows=row_numbers, uids_from_fingerprint=True,
        source_file=f"evidence/data/releases/{release.name}",
        summary=f"{release.title} (curated release {release.name}, version {release.version}; source: {release.source})",
    )
    report.studies, report.claims, report.results = len(studies), len(claims), len(result_models)
    return sub, report


def load_release(engine: Engine, release: ShippedRelease, *, results: bool = True) -> ImportReport | None:
    """Load one shipped release through :func:`evidence.submit`; ``None`` if the database holds it."""
    _label_legacy_seed(engine)
    if release.name in loaded_releases(engine):
        return None
    sub, report = release_submission(release, engine, results=results)
    written = submit(engine, sub)
    report.submission_id, report.written = written.id, True
    return report


def load_releases(engine: Engine, folder: Path | None = None, *, results: bool = True) -> list[ImportReport]:
    """Load every shipped release the database does not hold yet, in order; the reports of those loaded.

    ``results=False`` loads the studies and claims only (used to test export → import round trips).
    """
    reports = []
    for release in shipped_releases(folder):
        report = load_release(engine, release, results=results)
        if report is not None:
            reports.append(report)
    return reports


def load_seed(engine: Engine, *, results: bool = True) -> ImportReport | None:
    """Load the seed release as approved evidence; ``None`` if it is already loaded.

    ``results=False`` loads the studies and claims only (used to test export → import round trips).
    """
    return load_release(engine, ShippedRelease.read(seed_dir()), results=results)
