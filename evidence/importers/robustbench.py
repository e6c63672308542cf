"""RobustBench ``model_info/<dataset>/<threat>/<Name>.json`` → pending results of compressed models.

RobustBench (Croce et al. 2021, https://github.com/RobustBench/robustbench, MIT) publishes one
JSON file per model: ``name`` (the paper), ``authors``, ``venue``, ``link``, ``architecture``,
``eps``, ``clean_acc``, ``reported`` (the robust accuracy the authors reported), ``autoattack_acc``
(RobustBench's own AutoAttack evaluation), ``footnote``, ``unreliable``, … with the numbers as
strings.

Which entries are compressed models. The files have no compression field, so an entry counts as
compressed when its ``name``, ``footnote`` or ``architecture`` matches one of
:data:`COMPRESSION_KEYWORDS` (pruning, quantization, low bit widths, binarization, "compressed",
lottery tickets); the report says which keyword in which field matched. "Sparse" alone is not a
keyword: MeanSparse sparsifies activations, not weights. Every other entry is skipped, and said so.

Each compressed entry gives two rows, the ``reported`` and the AutoAttack accuracy, in one
cluster: their difference is the re-evaluation gap the meta-analysis reads. A dense model is paired
only when the entry names it (a ``dense_model`` key, or "dense model: <Name>" / "compressed version
of <Name>" in the footnote) and its file is in the same folder. AutoAttack rows get RobustBench's
evaluation set size as ``n_test`` (the full test set, 10,000 images, for CIFAR-10/100; 5,000 for
ImageNet); reported rows get none (the papers' sets are not in the files).

Malformed entries are reported, never guessed at: a file that is not JSON, a key given twice with
different values, an accuracy that is not a number (``"reported": "null"`` is the *string* null:
no reported row) or is outside [0, 100], an epsilon that cannot be read.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pydantic
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..files import MAX_SMALL_FILE_BYTES, FileRefused, read_regular_file
from ..models import Result, ResultCreate, StudyCreate
from ..parsing import parse_epsilon
from ..rows import pydantic_problems
from ..submit import ImportReport, SubmissionCreate, known_study_ids, normalise_identifier, stored_duplicates, study_identifiers, whoami
from ..vocab import AdvTraining, Attack, CompressionFamily, CompressionKind, Norm, Provenance, ReviewStatus, SubmissionKind, ThreatModel
from .base import Importer

__all__ = ["RobustBenchImporter", "COMPRESSION_KEYWORDS", "EVALUATION_SET_SIZE", "compression_match", "read_entry", "MalformedEntry"]

# (label, pattern) searched in name, footnote and architecture, in this order
COMPRESSION_KEYWORDS: tuple[tuple[str, re.Pattern], ...] = (
    ("pruning", re.compile(r"prun", re.I)),
    ("binarization", re.compile(r"binar", re.I)),
    ("quantization", re.compile(r"quantiz|low[- ]?bit|\b\d{1,2}[- ]?bits?\b|\bint8\b", re.I)),
    ("compressed", re.compile(r"compress", re.I)),
    ("lottery ticket", re.compile(r"lottery|winning ticket", re.I)),
)
_FIELDS = ("name", "footnote", "architecture")
# RobustBench evaluates AutoAttack on the full CIFAR test sets and 5,000 ImageNet validation images.
EVALUATION_SET_SIZE = {"cifar10": 10000, "cifar100": 10000, "imagenet": 5000}
_DATASET = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "imagenet": "ImageNet"}
_NORM = {"linf": Norm.linf, "l2": Norm.l2}
_DENSE_KEY = re.compile(r"(?:dense|uncompressed|unpruned|full[- ]precision|base)\s+model\s*[:=]\s*([A-Za-z0-9_\-]+)|compressed version of\s+([A-Za-z0-9_\-]+)", re.I)
_STEM = re.compile(r"^([A-Z][A-Za-z\-]*?)(\d{4})([A-Z][a-z]+|[A-Za-z]+)?")


class MalformedEntry(ValueError):
    """An entry that cannot be read as RobustBench publishes it."""


def _pairs_hook(repeated: list[str]):
    def hook(pairs: list[tuple[str, object]]) -> dict:
        out: dict = {}
        for key, value in pairs:
            if key in out:
                if out[key] != value:
                    raise MalformedEntry(f"key {key!r} appears twice with different values ({out[key]!r} and {value!r}): cannot tell which is right")
                repeated.append(key)
            out[key] = value
        return out

    return hook


_MAX_INT_DIGITS = 30  # no accuracy, epsilon or count in a model_info file has more digits


def _bounded_int(text: str) -> int:
    """A JSON integer, refused beyond 30 digits (a 400-digit number overflows every float it meets)."""
    if len(text.lstrip("-")) > _MAX_INT_DIGITS:
        raise MalformedEntry(f"a number of {len(text.lstrip('-'))} digits ({text[:12]}...): not a measurement")
    return int(text)


def read_entry(path: Path, repeated: list[str] | None = None) -> dict:
    """One ``model_info`` file as a dict; ``MalformedEntry`` for bad JSON or a conflicting duplicated
    key. Keys repeated with the same value are appended to ``repeated`` (harmless, but reported)."""
    repeated = [] if repeated is None else repeated
    try:  # a regular file of at most 16 MiB (a FIFO or a link to /dev/zero is refused, not read)
        raw = read_regular_file(path, limit=MAX_SMALL_FILE_BYTES, what="model_info file")
        data = json.loads(raw.decode("utf-8"), object_pairs_hook=_pairs_hook(repeated), parse_int=_bounded_int)
    except FileRefused as exc:
        raise MalformedEntry(str(exc).removeprefix(f"{path}: ")) from None
    except UnicodeDecodeError:
        raise MalformedEntry("not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise MalformedEntry(f"not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except RecursionError:
        raise MalformedEntry("JSON nested too deeply to be a model_info file") from None
    if not isinstance(data, dict):
        raise MalformedEntry("the file does not hold one JSON object")
    return data


def compression_match(entry: dict) -> tuple[str, str, str] | None:
    """``(keyword label, field, matched text)`` of the first compression keyword, or ``None``."""
    for label, pattern in COMPRESSION_KEYWORDS:
        for f in _FIELDS:
            text = entry.get(f)
            if isinstance(text, str):
                m = pattern.search(text)
                if m:
                    return label, f, m.group(0)
    return None


def _accuracy(entry: dict, key: str) -> tuple[float | None, str | None]:
    """``(value, None)``, ``(None, None)`` when absent, or ``(None, reason)`` when unreadable."""
    if key not in entry or entry[key] is None or entry[key] == "":
        return None, None
    raw = entry[key]
    if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
        return None, f"{key} {raw!r} is not a number"
    if isinstance(raw, str) and "_" in raw:  # float() would read "8_8.98" as 88.98; the CSV path refuses it too
        return None, f"{key} {raw!r} is not a number (digit separators '_' are not accepted)"
    try:
        value = float(raw)
    except ValueError:
        what = "the string 'null', not a JSON null" if str(raw).strip().lower() in ("null", "none", "nan") else "not a number"
        return None, f"{key} {raw!r} is {what}"
    if value != value or not 0.0 <= value <= 100.0:
        return None, f"{key} {raw!r} is outside [0, 100] (percent)"
    if key == "clean_acc" and 0.0 < value <= 1.0:  # no model in the leaderboard has a clean accuracy under 1 %
        return None, f"{key} {raw!r} looks like a fraction, not percent (RobustBench gives 88.98, not 0.8898)"
    return value, None


def _slug(stem: str) -> str:
    m = _STEM.match(stem)
    if m:
        word = (m.group(3) or "").lower()
        return "_".join(x for x in (m.group(1).lower().replace("-", ""), m.group(2), word) if x)[:120]
    return re.sub(r"[^a-z0-9]+", "_", stem.lower()).strip("_")[:120] or "robustbench_entry"


def _family(entry: dict, label: str) -> CompressionFamily:
    text = " ".join(str(entry.get(f) or "") for f in _FIELDS).lower()
    if label == "binarization":
        return CompressionFamily.binarization
    if label == "quantization":
        return CompressionFamily.quantization
    if re.search(r"structured|filter|channel", text) and "unstructured" not in text:
        return CompressionFamily.structured_pruning
    if label in ("pruning", "lottery ticket"):
        return CompressionFamily.unstructured_pruning
    return CompressionFamily.other


def _same_numbers(conn: Connection, results: list[ResultCreate]) -> list[str]:
    """Rows whose study and accuracies a stored result already has: probably the same measurement
    copied from another source (a curator decides; counted twice it would weigh double)."""
    t = Result.__table__
    ids = sorted({r.study_id for r in results})
    stored = conn.execute(
        sa.select(t.c.uid, t.c.study_id, t.c.clean_acc_compressed, t.c.robust_acc_compressed, t.c.url_or_path)
        .where(t.c.study_id.in_(ids), t.c.review_status != ReviewStatus.rejected.value)
    ).all() if ids else []
    index = {(s.study_id, s.clean_acc_compressed, s.robust_acc_compressed): s for s in stored}
    out = []
    for r in results:
        hit = index.get((r.study_id, r.clean_acc_compressed, r.robust_acc_compressed))
        if hit is not None:
            out.append(f"{r.url_or_path} ({r.source_location}): same study and accuracies as stored result {hit.uid} "
                       f"({hit.url_or_path}); probably one measurement from two sources, check before approving")
    return out


class RobustBenchImporter(Importer):
    """``crev evidence import-robustbench DIR``: every ``model_info`` JSON file under DIR."""

    name = "robustbench"

    def read(self, conn: Connection, source: Path, by: str | None = None) -> tuple[SubmissionCreate, ImportReport]:
        report = ImportReport(source=f"RobustBench model_info under {source}")
        if not source.is_dir():
            report.skipped.append(f"{source}: not a folder (give the model_info folder or one of its dataset/threat folders)")
            return SubmissionCreate(kind=SubmissionKind.robustbench, submitted_by=whoami(by)), report
        files = sorted(source.rglob("*.json"))
        known = known_study_ids(conn)
        by_identifier = study_identifiers(conn)
        studies: dict[str, StudyCreate] = {}
        results: list[ResultCreate] = []
        for path in files:
            rel = path.relative_to(source)
            report.rows_read += 1
            repeated: list[str] = []
            try:
                entry = read_entry(path, repeated)
            except MalformedEntry as exc:
                report.skipped.append(f"{rel}: {exc}")
                continue
            report.warnings.extend(f"{rel}: key {k!r} appears twice with the same value (read once)" for k in repeated)
            match = compression_match(entry)
            if match is None:
                report.skipped.append(f"{rel}: not a compressed model (no compression keyword in {', '.join(_FIELDS)})")
                continue
            rows, reasons = self._rows(path, rel, entry, match, known, by_identifier, studies)
            for r in reasons:
                report.skipped.append(f"{rel}: {r}")
            results.extend(rows)
        dup = stored_duplicates(conn, results)
        for i in sorted(dup):
            report.skipped.append(f"{results[i].url_or_path} ({results[i].source_location}): already in the database")
        results = [r for i, r in enumerate(results) if i not in dup]
        report.warnings.extend(_same_numbers(conn, results))
        report.rows_fully_parsed = len({r.cluster for r in results})
        report.studies, report.results = len(studies), len(results)
        sub = SubmissionCreate(
            kind=SubmissionKind.robustbench, submitted_by=whoami(by), studies=list(studies.values()) if results else [],
            results=results, source_file=str(source),
            summary=f"{len(results)} results of {report.rows_fully_parsed} compressed RobustBench entries ({len(report.skipped)} files or rows skipped)",
        )
        return sub, report

    def _rows(self, path, rel, entry, match, known, by_identifier, studies) -> tuple[list[ResultCreate], list[str]]:
        parts = rel.parts
        dataset_key = (entry.get("dataset") or (parts[-3] if len(parts) >= 3 else "")).lower()
        threat_key = (parts[-2] if len(parts) >= 2 else "").lower()
        reasons: list[str] = []
        if threat_key == "corruptions":
            threat, norm, robust_key = ThreatModel.common_corruptions, Norm.unknown, "corruptions_acc"
        elif threat_key in _NORM:
            threat, norm, robust_key = ThreatModel.white_box, _NORM[threat_key], "autoattack_acc"
        else:
            return [], [f"threat folder {threat_key!r} is not Linf, L2 or corruptions"]
        eps_text = str(entry.get("eps") or "").strip()
        try:
            eps = parse_epsilon(eps_text) if threat is not ThreatModel.common_corruptions else None
        except ValueError as exc:
            return [], [str(exc)]
        clean, why = _accuracy(entry, "clean_acc")
        if why and "fraction" in why:  # the whole file is on the 0-1 scale: its robust accuracies would be stored 100x too small
            return [], [why + ": the entry is skipped"]
        if why:
            reasons.append(why + " (rows written without a clean accuracy)")
        values = {}
        for key in ("reported", robust_key):
            values[key], why = _accuracy(entry, key)
            if why:
                reasons.append(why + f": no {key} row")
        if all(v is None for v in values.values()):
            return [], reasons + ["neither a reported nor an AutoAttack accuracy to import"]
        dense, dense_note = self._dense(path, entry)
        if dense_note:
            reasons.append(dense_note)
        study_id = self._study(path, entry, match, known, by_identifier, studies)
        label, field_name, text = match
        stem = path.stem
        notes = [f"compressed entry: {label!r} matched {text!r} in {field_name}"]
        if entry.get("unreliable") is True:
            notes.append("RobustBench flags this evaluation as unreliable")
        if isinstance(entry.get("number_forward_passes"), int) and entry["number_forward_passes"] > 1:
            notes.append(f"randomised or multi-pass defence ({entry['number_forward_passes']} forward passes)")
        if entry.get("footnote"):
            notes.append(f"footnote: {entry['footnote']}")
        rows = []
        for key, value in values.items():
            if value is None:
                continue
            reported = key == "reported"
            rec = {
                "study_id": study_id,
                "dataset": _DATASET.get(dataset_key, dataset_key),
                "architecture": str(entry.get("architecture") or ""),
                "compression_family": _family(entry, label),
                "compression_method": f"{entry.get('name') or stem} ({label}, per the RobustBench entry)",
                "adversarial_training": AdvTraining.unknown,
                "adversarial_training_text": "not stated in the RobustBench entry",
                "attack": Attack.other if reported else (Attack.autoattack_standard if threat is ThreatModel.white_box else Attack.other),
                "attack_text": "the authors' own evaluation (RobustBench 'reported')" if reported
                else ("AutoAttack, standard version (RobustBench evaluation)" if threat is ThreatModel.white_box else "common corruptions (RobustBench)"),
                "norm": norm,
                "norm_text": threat_key,
                "epsilon": eps,
                "epsilon_text": eps_text,
                "threat_model": threat,
                "threat_model_text": f"RobustBench {threat_key} leaderboard",
                "clean_acc_compressed": clean,
                "robust_acc_compressed": value,
                "clean_acc_dense": dense.get("clean") if dense else None,
                "robust_acc_dense": dense.get(key) if dense else None,
                "n_test": None if reported else EVALUATION_SET_SIZE.get(dataset_key),
                "provenance": Provenance.verbatim,
                "provenance_text": "copied from the RobustBench model_info file",
                "url_or_path": f"RobustBench model_info/{rel.as_posix()}",
                "source_location": key,
                "notes": "; ".join(notes),
                "cluster": f"{study_id}:robustbench:{stem}",
            }
            try:
                rows.append(ResultCreate.model_validate(rec))
            except pydantic.ValidationError as exc:
                reasons.extend(f"{key} row: {p.column}: {p.reason}" for p in pydantic_problems(exc, file=str(rel), row=None))
        return rows, reasons

    def _dense(self, path: Path, entry: dict) -> tuple[dict | None, str | None]:
        name = entry.get("dense_model")
        if not name:
            m = _DENSE_KEY.search(str(entry.get("footnote") or ""))
            name = (m.group(1) or m.group(2)) if m else None
        if not name:
            return None, None
        other = path.with_name(f"{name}.json")
        if not other.exists():
            return None, f"names the dense model {name!r}, but {other.name} is not in the same folder: no dense accuracies"
        try:
            d = read_entry(other)
        except MalformedEntry as exc:
            return None, f"dense model {name!r}: {exc}: no dense accuracies"
        out = {"clean": _accuracy(d, "clean_acc")[0], "reported": _accuracy(d, "reported")[0]}
        out["autoattack_acc"] = _accuracy(d, "autoattack_acc")[0]
        out["corruptions_acc"] = _accuracy(d, "corruptions_acc")[0]
        return out, None

    def _study(self, path: Path, entry: dict, match, known: set[str], by_identifier: dict[str, str], studies: dict) -> str:
        link = str(entry.get("link") or "").strip()
        if link and normalise_identifier(link) in by_identifier:
            return by_identifier[normalise_identifier(link)]
        for s in studies.values():
            if link and normalise_identifier(s.identifier) == normalise_identifier(link):
                return s.study_id
        slug = _slug(path.stem)
        if slug in known or slug in studies:
            return slug
        year_m = re.search(r"(19|20)\d\d", path.stem) or re.search(r"(19|20)\d\d", str(entry.get("venue") or ""))
        kind = {"quantization": CompressionKind.quantization, "binarization": CompressionKind.quantization}.get(match[0], CompressionKind.pruning if match[0] in ("pruning", "lottery ticket") else CompressionKind.other)
        studies[slug] = StudyCreate(
            study_id=slug,
            title=str(entry.get("name") or path.stem),
            authors=str(entry.get("authors") or ""),
            year=int(year_m.group(0)) if year_m else None,
            year_text=year_m.group(0) if year_m else "",
            venue=str(entry.get("venue") or ""),
            identifier=link,
            compression_kind=kind,
            compression_kind_text=f"{match[0]} (RobustBench entry: {match[2]!r} in {match[1]})",
            source_of_info=f"RobustBench model_info/{path.parent.parent.name}/{path.parent.name}/{path.name}",
        )
        return slug
