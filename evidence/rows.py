"""Convert rows of the results CSV (the seed's columns) to typed result records.

One function, :func:`convert_result_row`, serves the seed loader, the CSV import and the app's
upload: it parses every field (keeping the original text), checks every value, and returns the
record with its warnings, or the list of problems that stop it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from .errors import Problem
from .parsing import (
    parse_adv_training,
    parse_attack,
    parse_epsilon,
    parse_family,
    parse_float,
    parse_int,
    parse_level,
    parse_norm,
    parse_threat_model,
)
from .vocab import Norm, Provenance

__all__ = [
    "RESULT_COLUMNS",
    "OPTIONAL_COLUMNS",
    "REQUIRED_FIELDS",
    "ACCURACY_COLUMNS",
    "ConvertedRow",
    "convert_result_row",
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
OPTIONAL_COLUMNS: tuple[str, ...] = ("cluster",)
REQUIRED_FIELDS: tuple[str, ...] = (
    "study_id", "dataset", "compression_method", "attack", "threat_model", "robust_acc_compressed",
    "verbatim_check", "url_or_path",
)
ACCURACY_COLUMNS: tuple[str, ...] = ("clean_acc_dense", "robust_acc_dense", "clean_acc_compressed", "robust_acc_compressed")
# Fields whose text is mapped to a typed value; the import report counts the values kept as text only.
UNPARSED_FIELDS: tuple[str, ...] = (
    "compression_level", "adversarial_training", "attack", "norm", "epsilon", "attack_steps", "threat_model",
)

_FINGERPRINT_FIELDS = (
    "study_id", "dataset", "architecture", "compression_method", "compression_level_text", "adversarial_training_text",
    "attack_text", "norm_text", "epsilon_text", "steps_text", "threat_model_text", *ACCURACY_COLUMNS, "n_test",
)


def fingerprint(record: dict) -> str:
    """Hash of a result's study, setting and numbers: two rows with the same one are duplicates."""
    key = []
    for name in _FINGERPRINT_FIELDS:
        v = record.get(name)
        if isinstance(v, float):
            v = repr(round(v, 6))
        key.append("" if v is None else str(v).strip().lower())
    return hashlib.sha256(json.dumps(key).encode()).hexdigest()[:40]


@dataclass
class ConvertedRow:
    record: dict
    warnings: list[str] = field(default_factory=list)
    unparsed: dict[str, str] = field(default_factory=dict)  # field -> text kept without a typed value


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


def _text(row: dict, name: str) -> str:
    v = row.get(name)
    return "" if v is None else str(v).strip()


def convert_result_row(row: dict, *, file: str, row_number: int) -> tuple[ConvertedRow | None, list[Problem]]:
    """Parse and check one CSV row; returns ``(converted, [])`` or ``(None, problems)``."""
    problems: list[Problem] = []

    def problem(column: str, reason: str) -> None:
        problems.append(Problem(file, row_number, column, reason))

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
    }
    unparsed: dict[str, str] = {}

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
    except ValueError as exc:
        problem("epsilon", str(exc))

    rec["steps"] = parse_int(rec["steps_text"])
    if rec["steps_text"] and rec["steps"] is None:
        unparsed["attack_steps"] = rec["steps_text"]
    if rec["steps"] is not None and rec["steps"] < 0:
        problem("attack_steps", f"steps {rec['steps_text']!r} is negative")

    rec["adversarial_training"] = parse_adv_training(rec["adversarial_training_text"])
    rec["attack"] = parse_attack(rec["attack_text"])
    rec["norm"] = parse_norm(rec["norm_text"])
    rec["threat_model"] = parse_threat_model(rec["threat_model_text"])
    for name, key, unknown in (
        ("adversarial_training", "adversarial_training", "unknown"),
        ("attack", "attack", "other"),
        ("norm", "norm", "unknown"),
        ("threat_model", "threat_model", "unknown"),
    ):
        text = rec[f"{name}_text"]
        if text and rec[key].value == unknown:
            unparsed[name] = text

    for name in ACCURACY_COLUMNS:
        try:
            value = parse_float(_text(row, name), name)
        except ValueError as exc:
            problem(name, str(exc))
            continue
        if value is not None and not 0.0 <= value <= 100.0:
            problem(name, f"accuracy {value:g} is outside [0, 100] (percent)")
        rec[name] = value

    n_text = _text(row, "n_test")
    if n_text:
        n = parse_int(n_text)
        if n is None or n < 1:
            problem("n_test", f"n_test {n_text!r} is not a positive whole number")
        rec["n_test"] = n
    else:
        rec["n_test"] = None

    verb = _text(row, "verbatim_check").lower()
    if verb in ("yes", "verbatim", "true", "1"):
        rec["provenance"] = Provenance.verbatim
    elif verb in ("no", "derived", "false", "0"):
        rec["provenance"] = Provenance.derived
    elif verb == "replication":
        rec["provenance"] = Provenance.replication
    elif verb:
        problem("verbatim_check", f"{verb!r} is not yes (verbatim), no (derived) or replication")

    if problems:
        return None, problems

    warnings = result_warnings(rec)
    rec["warnings"] = "; ".join(warnings)
    cluster = _text(row, "cluster")
    rec["cluster"] = cluster or f"{rec['study_id']}:{rec['source_location'] or rec['url_or_path']}"[:255]
    rec["fingerprint"] = fingerprint(rec)
    return ConvertedRow(rec, warnings, unparsed), []
