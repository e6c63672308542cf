"""Versioned, citable releases of the evidence: Frictionless Data Packages.

:func:`write_release` writes the current (approved) studies, claims and results as a Frictionless
Data Package (https://specs.frictionlessdata.io/data-package/): one CSV per table with its Table
Schema (types, enum constraints, primary keys) in ``datapackage.json``, each file's SHA-256 and
size, a content hash over the three tables, a changelog against the previous release (entries
added, corrected and removed, and the submissions rejected since), ``CHANGELOG.md`` and a
``CITATION.cff`` (Citation File Format 1.2.0). Living meta-analysis databases publish their data
the same way (Metapsy, MetaLab): a versioned snapshot that an analysis can cite and pin.

A release holds each entry's content, not its history: ids, review columns and timestamps of the
database that wrote it are left out, so the same evidence gives the same bytes and the same hash
in any database (:func:`load_package` then :func:`write_release` round-trips). Each row keeps the
curated release it came from (``release``). :func:`diff_releases` says what changed between two
releases; :func:`release_engine` opens a release as a read-only in-memory database, so an analysis
pinned to a release runs the same queries over exactly its rows.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pydantic
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from .db import upgrade_schema
from .errors import EvidenceError, NotFound, Problem, ValidationFailed
from .models import Claim, ClaimCreate, Result, ResultCreate, Study, StudyCreate, Submission
from .rows import pydantic_problems
from .files import MAX_FILE_BYTES, MAX_SMALL_FILE_BYTES, FileRefused, read_regular_file
from .submit import SubmissionCreate, submit, whoami
from .vocab import ReviewStatus, SubmissionKind

__all__ = [
    "TABLES",
    "ReleaseInfo",
    "ReleasePackage",
    "TableDiff",
    "ReleaseDiff",
    "releases_home",
    "find_release",
    "table_schema",
    "write_release",
    "read_package",
    "diff_releases",
    "load_package",
    "release_engine",
]

# name, table, key column, Create model
TABLES: tuple[tuple[str, type, str, type], ...] = (
    ("studies", Study, "study_id", StudyCreate),
    ("claims", Claim, "uid", ClaimCreate),
    ("results", Result, "uid", ResultCreate),
)
# Columns that belong to one database (row ids, review state, who typed it in when), not to the evidence.
_LOCAL = {"id", "submission_id", "version", "review_status", "current", "created_by", "created_at"}
_VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.\-]{0,31}$")
PACKAGE_NAME = "crev-evidence"


def releases_home() -> Path:
    """Where releases are written by default: ``<user data dir>/crev/releases``."""
    from platformdirs import user_data_dir

    return Path(user_data_dir("crev", appauthor=False)) / "releases"


def find_release(ref: str | Path) -> Path:
    """A release folder from a path or a version in :func:`releases_home`; ``NotFound`` otherwise."""
    p = Path(ref)
    for candidate in (p, releases_home() / str(ref)):
        if (candidate / "datapackage.json").exists():
            return candidate
    raise NotFound(f"no release {str(ref)!r}: neither a folder with datapackage.json nor a version in {releases_home()}")


def _columns(table) -> list[sa.Column]:
    return [c for c in table.__table__.columns if c.name not in _LOCAL]


def _field_type(col: sa.Column) -> tuple[str, dict]:
    t = col.type
    if isinstance(t, sa.Enum):
        return "string", {"enum": list(t.enums)}
    if isinstance(t, sa.Boolean):
        return "boolean", {}
    if isinstance(t, sa.Integer):
        return "integer", {}
    if isinstance(t, sa.Float):
        return "number", {}
    return "string", {}


def table_schema(name: str) -> dict:
    """The Frictionless Table Schema of one release table, from the database model."""
    _, table, key, _ = next(t for t in TABLES if t[0] == name)
    fields = []
    for col in _columns(table):
        ftype, constraints = _field_type(col)
        if col.name == key:
            constraints["required"] = True
        f = {"name": col.name, "type": ftype}
        if ftype == "boolean":
            f.update(trueValues=["true"], falseValues=["false"])
        if constraints:
            f["constraints"] = constraints
        fields.append(f)
    return {"fields": fields, "primaryKey": [key], "missingValues": [""]}


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    return str(getattr(value, "value", value))


def _current_rows(conn, name: str) -> list[dict[str, str]]:
    _, table, key, _ = next(t for t in TABLES if t[0] == name)
    cols = _columns(table)
    t = table.__table__
    rows = conn.execute(sa.select(*[t.c[c.name] for c in cols]).where(t.c.current.is_(True)).order_by(t.c[key])).all()
    return [{c.name: _cell(v) for c, v in zip(cols, r)} for r in rows]


def _csv_bytes(name: str, rows: list[dict[str, str]]) -> bytes:
    _, table, _, _ = next(t for t in TABLES if t[0] == name)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=[c.name for c in _columns(table)], lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue().encode("utf-8")


@dataclass(frozen=True)
class ReleaseInfo:
    """What :func:`write_release` wrote."""

    version: str
    path: Path
    content_hash: str
    counts: dict[str, int]
    previous: str | None
    changelog: dict

    def to_dict(self) -> dict:
        return {"version": self.version, "path": str(self.path), "content_hash": self.content_hash, "counts": self.counts,
                "previous": self.previous, "changelog": self.changelog}

    def to_text(self) -> str:
        c = self.changelog
        lines = [
            f"release {self.version} written to {self.path}",
            f"  {self.counts['studies']} studies, {self.counts['claims']} claims, {self.counts['results']} results",
            f"  content hash: {self.content_hash}",
        ]
        if self.previous:
            lines.append(f"  since {self.previous}: " + "; ".join(
                f"{n}: {len(c['tables'][n]['added'])} added, {len(c['tables'][n]['corrected'])} corrected, {len(c['tables'][n]['removed'])} removed"
                for n in c["tables"]) + f"; {len(c['rejected_submissions'])} submission(s) rejected")
        else:
            lines.append("  first release (no previous release to compare with)")
        return "\n".join(lines)


@dataclass
class ReleasePackage:
    """A release read from disk, its files checked against the hashes it records."""

    path: Path
    descriptor: dict
    tables: dict[str, list[dict[str, str]]]

    @property
    def version(self) -> str:
        return self.descriptor["version"]

    @property
    def content_hash(self) -> str:
        return self.descriptor["crev"]["content_hash"]

    @property
    def created(self) -> str:
        return self.descriptor["created"]


def _content_hash(files: dict[str, bytes]) -> str:
    h = hashlib.sha256()
    for name, _, _, _ in TABLES:
        h.update(name.encode() + b"\0" + hashlib.sha256(files[name]).hexdigest().encode() + b"\n")
    return "sha256:" + h.hexdigest()


def _descriptor(path: Path) -> dict:
    """``datapackage.json``, read safely and checked in shape before anything else is read."""
    where = path / "datapackage.json"
    try:
        descriptor = json.loads(read_regular_file(where, limit=MAX_SMALL_FILE_BYTES, what="datapackage.json").decode("utf-8"))
    except FileRefused as exc:
        raise EvidenceError(str(exc)) from None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise EvidenceError(f"{where}: not a readable data package ({type(exc).__name__}: {str(exc)[:200]})") from None
    if not isinstance(descriptor, dict) or not isinstance(descriptor.get("resources"), list) or not isinstance(descriptor.get("crev"), dict):
        raise EvidenceError(f"{where}: not a crev data package (expected an object with a 'resources' list and a 'crev' object)")
    for i, res in enumerate(descriptor["resources"]):
        if not isinstance(res, dict) or not all(isinstance(res.get(k), str) and res.get(k) for k in ("name", "path", "hash")):
            raise EvidenceError(f"{where}: resource {i + 1} needs a text 'name', 'path' and 'hash'")
    return descriptor


def _resource_bytes(path: Path, res: dict) -> bytes:
    """A resource's bytes: its path confined to the release folder, a regular capped file, matching its hash."""
    root = path.resolve()
    target = (path / res["path"]).resolve()
    if Path(res["path"]).is_absolute() or not target.is_relative_to(root):
        raise EvidenceError(f"{path / 'datapackage.json'}: resource {res['name']!r} points outside the release folder ({res['path']!r}): refused")
    try:
        data = read_regular_file(target, limit=MAX_FILE_BYTES, what="release table")
    except FileRefused as exc:
        raise EvidenceError(str(exc)) from None
    if res["hash"] != "sha256:" + hashlib.sha256(data).hexdigest():
        raise EvidenceError(f"{path / res['path']}: its SHA-256 differs from the one datapackage.json records (the file was changed)")
    return data


def read_package(ref: str | Path) -> ReleasePackage:
    """Read a release; ``EvidenceError`` if a file is missing or differs from the hash it records.

    Every table is verified against its hash, and the set against the content hash, before any is
    parsed; resource paths must stay inside the release folder; every file is read by
    :func:`evidence.files.read_regular_file` (regular files only, capped).
    """
    path = find_release(ref)
    descriptor = _descriptor(path)
    files = {res["name"]: _resource_bytes(path, res) for res in descriptor["resources"]}
    missing = [n for n, _, _, _ in TABLES if n not in files]
    if missing:
        raise EvidenceError(f"{path}: the release lacks {', '.join(missing)}")
    if _content_hash(files) != descriptor["crev"].get("content_hash"):
        raise EvidenceError(f"{path}: the content hash differs from the one datapackage.json records")
    tables = {}
    for name, data in files.items():
        try:
            tables[name] = list(csv.DictReader(io.StringIO(data.decode("utf-8"))))
        except (UnicodeDecodeError, csv.Error) as exc:
            raise EvidenceError(f"{path}: table {name} is not a UTF-8 CSV ({exc})") from None
        for i, row in enumerate(tables[name], start=2):
            if None in row or any(v is None for v in row.values()):
                raise EvidenceError(f"{path}: table {name} row {i}: {'extra' if None in row else 'missing'} cells (the row does not match the header)")
    return ReleasePackage(path, descriptor, tables)


@dataclass(frozen=True)
class TableDiff:
    """Entries of one table added, corrected (same key, other content) and removed between releases."""

    added: tuple[str, ...] = ()
    corrected: dict[str, dict[str, tuple[str, str]]] = field(default_factory=dict)  # key -> field -> (old, new)
    removed: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"added": list(self.added), "corrected": {k: {f: list(v) for f, v in ch.items()} for k, ch in self.corrected.items()},
                "removed": list(self.removed)}


@dataclass(frozen=True)
class ReleaseDiff:
    """What changed from release ``a`` to release ``b``, table by table."""

    a: str
    b: str
    tables: dict[str, TableDiff]

    def to_dict(self) -> dict:
        return {"from": self.a, "to": self.b, "tables": {n: d.to_dict() for n, d in self.tables.items()}}

    def to_text(self, limit: int = 10) -> str:
        lines = [f"release {self.a} -> {self.b}"]
        for name, d in self.tables.items():
            lines.append(f"  {name}: {len(d.added)} added, {len(d.corrected)} corrected, {len(d.removed)} removed")
            for key in d.added[:limit]:
                lines.append(f"    + {key}")
            for key, changes in list(d.corrected.items())[:limit]:
                lines.append(f"    ~ {key}: " + "; ".join(f"{f}: {o!r} -> {n!r}" for f, (o, n) in changes.items()))
            for key in d.removed[:limit]:
                lines.append(f"    - {key}")
        return "\n".join(lines)


def _diff_tables(name: str, old: list[dict], new: list[dict]) -> TableDiff:
    key = next(t[2] for t in TABLES if t[0] == name)
    a, b = {r[key]: r for r in old}, {r[key]: r for r in new}
    corrected = {}
    for k in sorted(a.keys() & b.keys()):
        changes = {f: (a[k].get(f, ""), v) for f, v in b[k].items() if a[k].get(f, "") != v}
        if changes:
            corrected[k] = changes
    return TableDiff(tuple(sorted(b.keys() - a.keys())), corrected, tuple(sorted(a.keys() - b.keys())))


def diff_releases(a: str | Path | ReleasePackage, b: str | Path | ReleasePackage) -> ReleaseDiff:
    """What changed from release ``a`` to release ``b`` (versions or folders)."""
    pa = a if isinstance(a, ReleasePackage) else read_package(a)
    pb = b if isinstance(b, ReleasePackage) else read_package(b)
    return ReleaseDiff(pa.version, pb.version, {n: _diff_tables(n, pa.tables[n], pb.tables[n]) for n, _, _, _ in TABLES})


def _rejected_since(conn, since: str | None) -> list[dict]:
    s = Submission.__table__
    stmt = sa.select(s.c.id, s.c.kind, s.c.submitted_by, s.c.reviewed_by, s.c.reviewed_at, s.c.reason).where(
        s.c.status == ReviewStatus.rejected.value
    )
    rows = conn.execute(stmt.order_by(s.c.id)).all()
    cutoff = datetime.fromisoformat(since) if since else None
    out = []
    for r in rows:
        when = r.reviewed_at
        if when is not None and when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        if cutoff is None or when is None or when > cutoff:
            out.append({"submission": r.id, "kind": str(r.kind), "submitted_by": r.submitted_by, "reviewed_by": r.reviewed_by,
                        "reason": r.reason or ""})
    return out


def _citation(version: str, title: str, curator: str, created: str, content_hash: str) -> str:
    return "\n".join([
        "cff-version: 1.2.0",
        'message: "If you use this evidence, cite this release by its version and content hash."',
        "type: dataset",
        f"title: {json.dumps(title)}",
        f"version: {json.dumps(version)}",
        f"date-released: {created[:10]}",
        "authors:",
        f"  - name: {json.dumps(curator)}",
        'license: "MIT"',
        f"abstract: {json.dumps('Studies, coded claims and results on compression (pruning, quantization) and adversarial robustness, each number with its source. Content hash ' + content_hash + '.')}",
        "keywords:",
        '  - "adversarial robustness"',
        '  - "model compression"',
        '  - "meta-analysis"',
        "",
    ])


def _changelog_md(version: str, previous: str | None, diff: ReleaseDiff | None, rejected: list[dict], counts: dict) -> str:
    lines = [f"# Release {version}", "", f"{counts['studies']} studies, {counts['claims']} claims, {counts['results']} results.", ""]
    if diff is None:
        lines.append("First release: everything is new.")
    else:
        lines.append(f"## Since {previous}")
        for name, d in diff.tables.items():
            lines.append(f"- {name}: {len(d.added)} added, {len(d.corrected)} corrected, {len(d.removed)} removed")
            lines.extend(f"  - corrected {k}: " + ", ".join(sorted(ch)) for k, ch in d.corrected.items())
    lines += ["", f"## Rejected submissions{' since ' + previous if previous else ''}: {len(rejected)}"]
    lines.extend(f"- submission {r['submission']} ({r['kind']}, by {r['submitted_by']}): {r['reason']}" for r in rejected)
    return "\n".join(lines) + "\n"


def write_release(
    engine: Engine,
    version: str,
    out: str | Path | None = None,
    *,
    previous: str | Path | None = None,
    title: str | None = None,
    curator: str | None = None,
) -> ReleaseInfo:
    """Write the current evidence as release ``version`` (a Frictionless Data Package) into ``out``
    (default ``releases_home()/version``). ``previous`` (a version or folder; default: the newest
    other release in :func:`releases_home`) is what the changelog compares with."""
    if not _VERSION.match(version):
        raise EvidenceError(f"release version {version!r} must be letters, digits, '.' and '-' (e.g. 2026.11), at most 32 characters")
    out = Path(out) if out else releases_home() / version
    if (out / "datapackage.json").exists():
        raise EvidenceError(f"{out} already holds a release: a release is never overwritten (choose another version or folder)")
    prev_pkg = _previous_package(previous, exclude=out)
    with engine.connect() as conn:
        tables = {name: _current_rows(conn, name) for name, _, _, _ in TABLES}
        rejected = _rejected_since(conn, prev_pkg.created if prev_pkg else None)
    files = {name: _csv_bytes(name, rows) for name, rows in tables.items()}
    content_hash = _content_hash(files)
    counts = {name: len(rows) for name, rows in tables.items()}
    created = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    diff = None
    if prev_pkg is not None:
        diff = ReleaseDiff(prev_pkg.version, version, {n: _diff_tables(n, prev_pkg.tables[n], tables[n]) for n, _, _, _ in TABLES})
    changelog = {
        "previous": prev_pkg.version if prev_pkg else None,
        "tables": {n: {"added": list(d.added), "corrected": sorted(d.corrected), "removed": list(d.removed)} for n, d in diff.tables.items()}
        if diff else {},
        "rejected_submissions": rejected,
    }
    curator = whoami(curator)
    title = title or f"crev evidence on compression and adversarial robustness, release {version}"
    descriptor = {
        "profile": "data-package",
        "name": PACKAGE_NAME,
        "title": title,
        "version": version,
        "created": created,
        "contributors": [{"title": curator, "role": "curator"}],
        "licenses": [{"name": "MIT", "title": "MIT License"}],
        "resources": [
            {
                "name": name, "path": f"{name}.csv", "profile": "tabular-data-resource", "format": "csv", "mediatype": "text/csv",
                "encoding": "utf-8", "bytes": len(files[name]), "hash": "sha256:" + hashlib.sha256(files[name]).hexdigest(),
                "schema": table_schema(name),
            }
            for name, _, _, _ in TABLES
        ],
        "crev": {"content_hash": content_hash, "counts": counts, "changelog": changelog},
    }
    out.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (out / f"{name}.csv").write_bytes(data)
    (out / "datapackage.json").write_text(json.dumps(descriptor, indent=1) + "\n", encoding="utf-8")
    (out / "CHANGELOG.md").write_text(_changelog_md(version, changelog["previous"], diff, rejected, counts), encoding="utf-8")
    (out / "CITATION.cff").write_text(_citation(version, title, curator, created, content_hash), encoding="utf-8")
    return ReleaseInfo(version, out, content_hash, counts, changelog["previous"], changelog)


def _previous_package(previous: str | Path | None, exclude: Path) -> ReleasePackage | None:
    if previous is not None:
        return read_package(previous)
    home = releases_home()
    if not home.exists():
        return None
    found = []
    for p in home.iterdir():
        if p.resolve() != exclude.resolve() and (p / "datapackage.json").exists():
            pkg = read_package(p)
            found.append((pkg.created, pkg))
    return max(found, key=lambda t: t[0])[1] if found else None


def _number(kind, text: str, table: str, column: str):
    try:
        value = kind(text)
    except ValueError:
        raise EvidenceError(f"release table {table}, column {column}: {text[:20]!r} is not a number") from None
    if kind is float and value != value or value in (float("inf"), float("-inf")):
        raise EvidenceError(f"release table {table}, column {column}: {text[:20]!r} is not a finite number")
    return value


def _typed_row(name: str, row: dict[str, str]) -> dict:
    _, table, _, _ = next(t for t in TABLES if t[0] == name)
    out = {}
    for col in _columns(table):
        text = row.get(col.name, "")
        ftype, _ = _field_type(col)
        if text == "":
            out[col.name] = None if col.nullable else ("" if ftype == "string" else None)
        elif ftype == "integer":
            out[col.name] = _number(int, text, name, col.name)
        elif ftype == "number":
            out[col.name] = _number(float, text, name, col.name)
        elif ftype == "boolean":
            if text not in ("true", "false"):  # the descriptor's trueValues/falseValues; "TRUE" is not read as false
                raise EvidenceError(f"release table {name}, column {col.name}: {text[:20]!r} is not true or false")
            out[col.name] = text == "true"
        else:
            out[col.name] = text
    return out


def load_package(engine: Engine, ref: str | Path | ReleasePackage, by: str | None = None) -> list[Submission]:
    """Load a release into a database through :func:`evidence.submit`, approved, each row keeping the
    curated release it came from (one submission per release for the studies, one for the rest)."""
    pkg = ref if isinstance(ref, ReleasePackage) else read_package(ref)
    by = whoami(by)
    groups: dict[str, dict[str, list]] = {}
    problems: list[Problem] = []
    for name, _, _, model in TABLES:
        for i, row in enumerate(pkg.tables[name], start=1):
            rec = _typed_row(name, row)
            release = rec.pop("release") or ""
            rec.pop("fingerprint", None)
            try:
                obj = model.model_validate(rec)
            except pydantic.ValidationError as exc:
                problems.extend(pydantic_problems(exc, file=f"{pkg.path.name}/{name}.csv", row=i))
                continue
            groups.setdefault(release, {"studies": [], "claims": [], "results": []})[name].append(obj)
    if problems:
        raise ValidationFailed(problems)
    written = []
    summary = f"release {pkg.version} ({pkg.content_hash})"
    for part in (("studies",), ("claims", "results")):
        for release, g in sorted(groups.items(), key=lambda kv: (kv[0] == "", kv[0])):
            content = {p: g[p] for p in part if g[p]}
            if not content:
                continue
            sub = SubmissionCreate(kind=SubmissionKind.release, submitted_by=by, reviewed_by=by, approved=True, release=release,
                                   source_file=str(pkg.path), summary=summary, **content)
            written.append(submit(engine, sub))
    return written


def release_engine(ref: str | Path) -> tuple[Engine, ReleasePackage]:
    """An in-memory database holding exactly the rows of a release (to pin an analysis to it)."""
    pkg = read_package(ref)
    engine = sa.create_engine("sqlite://", poolclass=sa.pool.StaticPool, connect_args={"check_same_thread": False})
    upgrade_schema(engine)
    load_package(engine, pkg, by=f"release {pkg.version}")
    return engine, pkg

