"""The one parser: rows of text (the seed's columns) to typed, validated Create models.

:func:`convert_result_row`, :func:`study_record` and :func:`claim_record` serve the seed, the
shipped releases, the CSV import, the app's upload and the API alike. Each field is parsed at the
boundary (see :mod:`evidence.parsing`) with its original text kept beside the value; a curator's
annotation after a value (``8/255 (as printed)``, ``yes (secondhand copy)``) is accepted, the
whole text kept and listed in the import report. The typed record is then validated by the Create
model (:class:`~evidence.models.ResultCreate`), which declares the ranges: nothing is re-checked
here by hand. Only what cannot be parsed at all (``abc``, a negative epsilon, an accuracy of 120)
is refused, naming file, row, column and reason.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import pydantic

from .errors import FieldError, Problem
from .identity import normal_text
from .models import ResultBase, max_lengths
from .models import COUNT_COLUMNS, ResultCreate
from .parsing import (
    parse_adv_training,
    parse_annotated_number,
    parse_attack,
    parse_compression_kind,
    parse_direction,
    parse_epsilon,
    parse_family,
    parse_int,
    parse_level,
    parse_norm,
    parse_provenance,
    parse_review_membership,
    parse_threat_model,
    parse_year,
    split_annotation,
)
from .vocab import AdvTraining, CompressionFamily, Norm, Question, SourceKind, ThreatModel, coerce

__all__ = [
    "RESULT_COLUMNS",
    "OPTIONAL_COLUMNS",
    "RELEASE_COLUMNS",
    "REQUIRED_FIELDS",
    "ACCURACY_COLUMNS",
    "ConvertedRow",
    "convert_result_row",
    "pydantic_problems",
    "study_record",
    "claim_record",
    "fingerprint",
    "result_warnings",
    "UNPARSED_FIELDS",
]

RESULT_COLUMNS: tuple[str, ...] = (
    "study_id", "source_location", "dataset", "architecture", "compression_method", "compression_level",
    "adversarial_training", "attack", "norm", "epsilon", "attack_steps", "threat_model",
    "clean_acc_dense", "robust_acc_dense", "clean_acc_compressed", "robust_acc_compressed", "n_test",
    "verbatim_check", "url_or_path", "notes",
)
# Columns a file may add: the cluster of dependent rows, exact counts and the query budget.
OPTIONAL_COLUMNS: tuple[str, ...] = (
    "cluster", *COUNT_COLUMNS, "n_robust_dense_only", "n_robust_compressed_only", "attack_queries",
)
REQUIRED_FIELDS: tuple[str, ...] = (
    "study_id", "dataset", "compression_method", "attack", "threat_model", "robust_acc_compressed",
    "verbatim_check", "url_or_path",
)
ACCURACY_COLUMNS: tuple[str, ...] = ("clean_acc_dense", "robust_acc_dense", "clean_acc_compressed", "robust_acc_compressed")
# Fields whose text is mapped to a typed value; the import report counts the values kept as text only.
UNPARSED_FIELDS: tuple[str, ...] = (
    "compression_level", "adversarial_training", "attack", "norm", "epsilon", "attack_steps", "threat_model",
)
# Columns only a curated release may carry (a replication release's rows), read as the model's fields.
RELEASE_COLUMNS: tuple[str, ...] = (
    "source_kind", "claim_uid", "verdict", "quick", "gradient_masking", "checks_json", "replication_json", "warnings",
)
# Model field -> the CSV column a problem with it names.
_COLUMN_OF = {
    "sparsity": "compression_level", "bits": "compression_level", "steps": "attack_steps",
    "provenance": "verbatim_check", "compression_family": "compression_method",
}

_FINGERPRINT_FIELDS = (
    "study_id", "dataset", "architecture", "compression_method", "compression_level_text", "adversarial_training_text",
    "attack_text", "norm_text", "epsilon_text", "steps_text", "threat_model_text", *ACCURACY_COLUMNS, "n_test",
)


def fingerprint(record: dict) -> str:
    """Hash of a result's study, setting and numbers: two rows with the same one are duplicates.

    A replication row's cell and seed (its ``cluster`` and ``source_location``) are part of its
    identity: two seeds of one cell may measure the same numbers and are still two results. Text is
    compared by :func:`~evidence.identity.normal_text` (NFKC, format characters removed), so
    ``CIFAR-10\u200b`` or an NFD spelling is the same value, not a second result.
    """
    rec = record
    kind = record.get("source_kind")
    if kind is not None and str(getattr(kind, "value", kind)) == SourceKind.replication.value:
        rec = {**record, "architecture": f"{record.get('architecture', '')}|{record.get('cluster', '')}|{record.get('source_location', '')}"}
    key = []
    for name in _FINGERPRINT_FIELDS:
        v = rec.get(name)
        if isinstance(v, float):
            v = repr(round(v, 6))
        key.append("" if v is None else normal_text(str(v)).strip().lower())  # NFKC, no zero-width/format characters
    return hashlib.sha256(json.dumps(key).encode()).hexdigest()[:40]


@dataclass
class ConvertedRow:
    """One parsed and validated row: the Create model, and what the import report says about it."""

    result: ResultCreate
    warnings: list[str] = field(default_factory=list)
    unparsed: dict[str, str] = field(default_factory=dict)  # column -> text kept without a typed value
    annotated: dict[str, str] = field(default_factory=dict)  # column -> whole text whose leading value was parsed


def result_warnings(rec: dict) -> list[str]:
    """Plausibility warnings: the row is written, flagged with these."""
    warnings: list[str] = []
    for kind in ("dense", "compressed"):
        clean, robust = rec.get(f"clean_acc_{kind}"), rec.get(f"robust_acc_{kind}")
        if clean is not None and robust is not None and robust > clean:
            warnings.append(f"robust accuracy above clean accuracy ({kind} model: {robust:g} > {clean:g})")
    if rec.get("norm") == Norm.linf and rec.get("epsilon") is not None and rec["epsilon"] > 0.5:
        warnings.append(f"Linf epsilon {rec['epsilon']:g} is above 0.5 on the [0, 1] pixel scale")
    return warnings


def pydantic_problems(exc: pydantic.ValidationError, *, file: str, row: int | None, prefix: str = "") -> list[Problem]:
    """A Create model's validation errors as problems naming the source column."""
    out = []
    for e in exc.errors():
        loc = [str(x) for x in e["loc"]]
        name = loc[-1] if loc else None
        column = _COLUMN_OF.get(name, name) if name else None
        value = e.get("input")
        if name in ACCURACY_COLUMNS and e["type"] in ("less_than_equal", "greater_than_equal") and isinstance(value, (int, float)):
            reason = f"accuracy {value:g} is outside [0, 100] (percent)"
        elif e["type"] == "value_error":
            reason = str(e["msg"]).removeprefix("Value error, ")
        elif isinstance(value, (str, int, float)) and not isinstance(value, bool):
            reason = f"{value!r}: {e['msg']}"
        else:
            reason = e["msg"]
        out.append(Problem(file, row, (prefix + column) if column else (prefix.rstrip(".") or None), reason))
    return out


_MAX_LENGTHS = max_lengths(ResultBase)


def _text(row: dict, name: str) -> str:
    return row.get(name) or ""


def convert_result_row(row: dict, *, file: str, row_number: int, release: bool = False) -> tuple[ConvertedRow | None, list[Problem]]:
    """Parse one row of text and validate it as a :class:`ResultCreate`.

    ``release=True`` (a curated release) also reads :data:`RELEASE_COLUMNS`. Returns
    ``(converted, [])`` or ``(None, problems)``.
    """
    problems: list[Problem] = []

    def problem(column: str, reason: str) -> None:
        problems.append(Problem(file, row_number, column, reason))

    row = {k: ("" if v is None else str(v).strip()) for k, v in row.items()}  # every cell as stripped text, once
    for name in REQUIRED_FIELDS:
        if not _text(row, name):
            problem(name, "required field is missing")

    rec: dict = {
        "study_id": _text(row, "study_id"),
        "dataset": _text(row, "dataset"),
        "architecture": _text(row, "architecture"),
        "compression_method": _text(row, "compression_method"),
        "compression_level_text": _text(row, "compression_level"),
        "adversarial_training_text": _text(row, "adversarial_training"),
        "attack_text": _text(row, "attack"),
        "norm_text": _text(row, "norm"),
        "epsilon_text": _text(row, "epsilon"),
        "steps_text": _text(row, "attack_steps"),
        "threat_model_text": _text(row, "threat_model"),
        "url_or_path": _text(row, "url_or_path"),
        "source_location": _text(row, "source_location"),
        "notes": _text(row, "notes"),
        "provenance_text": _text(row, "verbatim_check"),
    }
    unparsed: dict[str, str] = {}
    annotated: dict[str, str] = {}

    def note_of(column: str, text: str) -> None:
        parts = split_annotation(text)
        if parts is not None and parts.note:
            annotated[column] = text

    try:
        level = parse_level(rec["compression_level_text"])
    except ValueError as exc:
        problem("compression_level", str(exc))
        level = None
    if level is not None:
        rec["sparsity"], rec["bits"] = level.sparsity, level.bits
        if rec["compression_level_text"] and not level.parsed:
            unparsed["compression_level"] = rec["compression_level_text"]
        rec["compression_family"] = parse_family(rec["compression_method"], level)

    try:
        rec["epsilon"] = parse_epsilon(rec["epsilon_text"])
        note_of("epsilon", rec["epsilon_text"])
    except ValueError as exc:
        problem("epsilon", str(exc))

    try:
        rec["steps"] = parse_int(rec["steps_text"])
    except ValueError as exc:  # a number too large to store (1e30 steps)
        problem("attack_steps", f"steps {exc}")
        rec["steps"] = None
    if rec["steps_text"] and rec["steps"] is None and not any(p.column == "attack_steps" for p in problems):
        unparsed["attack_steps"] = rec["steps_text"]
    elif rec["steps"] is not None:
        note_of("attack_steps", rec["steps_text"])

    rec["adversarial_training"] = parse_adv_training(rec["adversarial_training_text"])
    rec["attack"] = parse_attack(rec["attack_text"])
    rec["norm"] = parse_norm(rec["norm_text"])
    rec["threat_model"] = parse_threat_model(rec["threat_model_text"])
    for name, unknown in (("adversarial_training", "unknown"), ("attack", "other"), ("norm", "unknown"), ("threat_model", "unknown")):
        text = rec[f"{name}_text"]
        if text and rec[name].value == unknown:
            unparsed[name] = text

    # Numbers: the leading value of a cell; an annotation after it is kept in the notes, by column.
    numeric_notes = []
    for name in ACCURACY_COLUMNS:
        text = _text(row, name)
        try:
            rec[name], note = parse_annotated_number(text, name)
        except ValueError as exc:
            problem(name, str(exc))
            continue
        if note:
            annotated[name] = text
            numeric_notes.append(f"{name} as written: {text!r}")
    for name in ("n_test", *COUNT_COLUMNS, "n_robust_dense_only", "n_robust_compressed_only", "attack_queries"):
        text = _text(row, name)
        if not text:
            continue
        try:
            n = parse_int(text)
        except ValueError as exc:  # a number too large to store
            problem(name, f"{name} {exc}")
            continue
        if n is None:
            problem(name, f"{name} {text!r} is not a whole number")
            continue
        rec[name] = n
        parts = split_annotation(text)
        if parts is not None and parts.note:
            annotated[name] = text
            numeric_notes.append(f"{name} as written: {text!r}")
    if numeric_notes:
        rec["notes"] = "; ".join([rec["notes"], *numeric_notes] if rec["notes"] else numeric_notes)

    try:
        provenance = parse_provenance(rec["provenance_text"])
    except ValueError as exc:
        problem("verbatim_check", str(exc))
    else:
        if provenance is not None:
            rec["provenance"] = provenance
            note_of("verbatim_check", rec["provenance_text"])

    if release:
        for name in RELEASE_COLUMNS:
            if _text(row, name):
                rec[name] = _text(row, name)
    cluster = _text(row, "cluster")
    rec["cluster"] = cluster or f"{rec['study_id']}:{rec['source_location'] or rec['url_or_path']}"[:255]
    for name, limit in _MAX_LENGTHS.items():  # checked here: SQLite would store any length, PostgreSQL fail
        value = rec.get(name) if name != "cluster" else _text(row, "cluster")
        if isinstance(value, str) and len(value) > limit:
            problem(name, f"is {len(value)} characters long; at most {limit} can be stored")

    if problems:
        return None, problems
    try:
        result = ResultCreate.model_validate(rec)
    except pydantic.ValidationError as exc:
        return None, pydantic_problems(exc, file=file, row=row_number)
    warnings = result_warnings(result.__dict__)
    if not result.warnings:
        result.warnings = "; ".join(warnings)
    return ConvertedRow(result, warnings, unparsed, annotated), []


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
    """Typed claim fields; conditions not given are coded from the question's scope, and say so."""
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
        raise FieldError("direction", f"direction {direction_text!r} is not up, down, neutral or mixed")
    question = Question(rec["question_id"]) if rec["question_id"] in Question.__members__ else None
    if question is not None:
        rec.update(question.scope.claim_conditions())
        rec["conditions_note"] = "coded from the question: " + question.scope.conditions
        rec["question"] = rec["question"] or question.text
    for name, enum in (("compression_family", CompressionFamily), ("adversarial_training", AdvTraining), ("threat_model", ThreatModel)):
        if raw.get(name) not in (None, ""):
            try:
                rec[name] = coerce(enum, raw[name])
            except ValueError as exc:
                raise FieldError(name, str(exc)) from None
    if raw.get("conditions_note"):
        rec["conditions_note"] = str(raw["conditions_note"])
    if raw.get("uid"):
        rec["uid"] = str(raw["uid"]).strip()
    return rec

