"""Parse the free-text fields of a source row into typed values.

Each parser takes the original text and returns the parsed value, or ``None`` where the text has
no meaning the vocabulary can hold ("not seen", "rate not stated in files read"). The text itself
is always stored beside the parsed value, so nothing read from a source is lost. Parsers raise
``ValueError`` only where the text is malformed in a way a user must fix (``eps = "abc"``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from .models import MAX_BITS, MAX_INT
from .vocab import AdvTraining, Attack, CompressionFamily, CompressionKind, Direction, Norm, Provenance, ThreatModel

__all__ = [
    "Annotated",
    "split_annotation",
    "parse_annotated_number",
    "parse_provenance",
    "parse_epsilon",
    "parse_level",
    "parse_year",
    "parse_int",
    "parse_float",
    "parse_adv_training",
    "parse_attack",
    "parse_norm",
    "parse_threat_model",
    "parse_family",
    "parse_compression_kind",
    "parse_direction",
    "parse_review_membership",
    "Level",
]

_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_FRACTION = re.compile(rf"^\s*({_NUMBER})\s*/\s*({_NUMBER})\s*$")
_PLAIN = re.compile(rf"^\s*({_NUMBER})\s*$")
_PERCENT = re.compile(rf"^\s*({_NUMBER})\s*%\s*$")
_BITS = re.compile(r"^\s*(\d+)\s*[- ]?\s*(?:bits?|b)(?:\s*$|\s+[A-Za-z(])", re.IGNORECASE)
_YEAR = re.compile(r"^\s*((?:19|20)\d\d)\b")


def _blank(text: str | None) -> bool:
    return text is None or str(text).strip() == ""


def _finite(value: float, what: str, text: str) -> float:
    """``value`` if finite; ``ValueError`` for ``1e999`` (infinity) or ``1e999/1e999`` (NaN)."""
    if not math.isfinite(value):
        raise ValueError(f"{what} {text!r} is not a finite number")
    return value


def _no_underflow(value: float, literal: str, text: str) -> None:
    """``ValueError`` when a non-zero literal (``1e-400``) became 0.0: stored, it would claim epsilon 0."""
    mantissa = re.split(r"[eE]", literal, maxsplit=1)[0]
    if value == 0.0 and re.search(r"[1-9]", mantissa):
        raise ValueError(f"epsilon {text!r} is too small to store (it would become 0)")


# A leading value followed by a curator's annotation: "8/255 (as printed)", "20 (x10 restarts)",
# "yes (secondhand copy)", "0.005; standardized input". The annotation must be set off by a bracket,
# a semicolon or a comma: "8/255abc" or "0.03 0.05" are not annotations, and neither is a unit
# ("10 epochs over test loader" is not 10 attack steps), which stays descriptive text.
_LEADING = re.compile(rf"^\s*(?P<value>{_NUMBER}(?:\s*/\s*{_NUMBER})?|[A-Za-z]+)(?P<note>\s*[(\[;,].*)?$", re.DOTALL)


@dataclass(frozen=True)
class Annotated:
    """A value read from the start of a cell, and the curator's annotation that followed it."""

    value: str
    note: str = ""


def split_annotation(text: str | None) -> Annotated | None:
    """``"8/255 (as printed)"`` → ``Annotated("8/255", "(as printed)")``; ``None`` for an empty cell.

    Returns the whole text as the value when nothing leads it that could be a value.
    """
    if _blank(text):
        return None
    s = str(text).strip()
    if _PLAIN.match(s):  # the common case: a bare number
        return Annotated(s)
    m = _LEADING.match(s)
    if not m:
        return Annotated(s)
    return Annotated(m.group("value").strip(), (m.group("note") or "").strip())


def parse_annotated_number(text: str | None, field: str) -> tuple[float | None, str]:
    """The leading number of a cell and its annotation: ``"93.1 (as printed)"`` → ``(93.1, "(as printed)")``.

    ``ValueError`` naming ``field`` where the cell does not start with a number (``"abc"``).
    """
    parts = split_annotation(text)
    if parts is None:
        return None, ""
    m = _PLAIN.match(parts.value)
    if not m:
        raise ValueError(f"{field} {str(text).strip()!r} is not a number")
    return _finite(float(m.group(1)), field, str(text).strip()), parts.note


def parse_provenance(text: str | None) -> Provenance | None:
    """A ``verbatim_check`` cell: ``yes`` / ``verbatim`` → verbatim, ``no`` / ``derived`` → derived,
    ``replication``; an annotation after the word is allowed (``yes (secondhand copy)``) and kept by
    the caller. ``None`` for an empty cell; ``ValueError`` for any other word."""
    parts = split_annotation(text)
    if parts is None:
        return None
    word = parts.value.lower()
    if word in ("yes", "verbatim", "true", "1"):
        return Provenance.verbatim
    if word in ("no", "derived", "false", "0"):
        return Provenance.derived
    if word == "replication":
        return Provenance.replication
    raise ValueError(f"{str(text).strip()!r} is not yes (verbatim), no (derived) or replication")


def parse_epsilon(text: str | None) -> float | None:
    """``"2/255"`` → 0.00784…, ``"0.031"`` → 0.031, ``"8/255 (as printed)"`` → 0.0313…, empty → ``None``.

    The result is on the [0, 1] pixel scale as written; a value above 1 is returned as is (the
    validator flags it). A curator's annotation after the value is allowed (the caller keeps the
    whole text). Raises ``ValueError`` for text that does not start with a number or a fraction,
    and for a negative epsilon.
    """
    if _blank(text):
        return None
    whole = str(text).strip()
    parts = split_annotation(whole)
    s = parts.value if parts is not None else whole
    m = _FRACTION.match(s)
    if m:
        num, den = _finite(float(m.group(1)), "epsilon", whole), _finite(float(m.group(2)), "epsilon", whole)
        _no_underflow(num, m.group(1), whole)
        if den == 0:
            raise ValueError(f"epsilon {whole!r} divides by zero")
        value = _finite(num / den, "epsilon", whole)
    else:
        m = _PLAIN.match(s)
        if not m:
            raise ValueError(f"epsilon {whole!r} is not a number or a fraction such as 8/255")
        value = _finite(float(m.group(1)), "epsilon", whole)
        _no_underflow(value, m.group(1), whole)
    if value < 0:
        raise ValueError(f"epsilon {whole!r} is negative")
    return value


@dataclass(frozen=True)
class Level:
    """A compression level parsed from text: a sparsity fraction or a bit width, or neither."""

    sparsity: float | None = None
    bits: int | None = None

    @property
    def parsed(self) -> bool:
        return self.sparsity is not None or self.bits is not None


_COMBINED = re.compile(r"\s*(?:;|\+|&|\band\b)\s*", re.IGNORECASE)
_SPARSITY_WORDS = re.compile(r"\s+(?:sparsity|sparse|pruned|pruning|pruning ratio)\s*$", re.IGNORECASE)


def parse_level(text: str | None) -> Level:
    """``"0.90"`` → sparsity 0.9, ``"90%"`` and ``"90% sparsity"`` → 0.9, ``"2-bit"`` and ``"1-bit
    weights"`` → 2 and 1 bits; a combined level (``"0.95; 1-bit weights"``, ``"90% + 4-bit"``: parts
    joined by ``;``, ``+``, ``&`` or ``and``) → both, when every part parses and it names at most one
    sparsity and one bit width (otherwise the text is read whole: ``"1-bit weights and activations"`` → 1 bit); other text (``"random precision (4~16-bit)"``, ``"4-bit + 8-bit"``) →
    neither, kept as text.

    Raises ``ValueError`` for a sparsity outside [0, 1) or a bit width below 1, in any part: those are
    numbers a user wrote wrongly, not descriptions to keep as text.
    """
    if _blank(text):
        return Level()
    s = str(text).strip()
    parts = [p for p in _COMBINED.split(s) if p.strip()]
    if len(parts) < 2:
        return _parse_one_level(s)
    levels = [_parse_one_level(p) for p in parts]
    sparsities = [lv.sparsity for lv in levels if lv.sparsity is not None]
    bits = [lv.bits for lv in levels if lv.bits is not None]
    if not all(lv.parsed for lv in levels) or len(sparsities) > 1 or len(bits) > 1:
        return _parse_one_level(s)  # not a combination of levels: read it whole ("1-bit weights and activations")
    return Level(sparsity=sparsities[0] if sparsities else None, bits=bits[0] if bits else None)


def _parse_one_level(s: str) -> Level:
    s = _SPARSITY_WORDS.sub("", s.strip())
    m = _BITS.match(s)
    if m:
        bits = int(m.group(1)) if len(m.group(1)) <= 6 else MAX_BITS + 1
        if bits < 1:
            raise ValueError(f"bit width {s!r} is below 1")
        if bits > MAX_BITS:
            raise ValueError(f"bit width {s!r} is above {MAX_BITS}")
        return Level(bits=bits)
    m = _PERCENT.match(s)
    if m:
        value = _finite(float(m.group(1)), "sparsity", s) / 100.0
    else:
        m = _PLAIN.match(s)
        if not m:
            return Level()
        value = _finite(float(m.group(1)), "sparsity", s)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"sparsity {s!r} is outside [0, 1)")
    return Level(sparsity=value)


def parse_year(text: str | None) -> int | None:
    """``"2022 (arXiv Aug 2021)"`` → 2022; ``"not seen"`` → ``None``."""
    if _blank(text):
        return None
    m = _YEAR.match(str(text))
    return int(m.group(1)) if m else None


def parse_int(text: str | None) -> int | None:
    """An integer such as ``"10"`` or ``"20 (x10 restarts)"`` (the leading value of an annotated
    cell), or ``None`` for empty or descriptive text.

    Raises ``ValueError`` for a number too large to store (beyond ±2³¹−1, PostgreSQL's INTEGER) or
    not finite: ``"1e999"`` or twenty digits are a typing error, not a description to keep as text.
    """
    parts = split_annotation(text)
    if parts is None:
        return None
    m = _PLAIN.match(parts.value)
    if not m:
        return None
    value = float(m.group(1))
    if not math.isfinite(value) or abs(value) > MAX_INT:
        raise ValueError(f"{str(text).strip()!r} is outside the range a whole number can be stored in (±{MAX_INT})")
    return int(value) if value.is_integer() else None


def parse_float(text: str | None, field: str) -> float | None:
    """A number, ``None`` for an empty cell; ``ValueError`` naming ``field`` otherwise."""
    if _blank(text):
        return None
    m = _PLAIN.match(str(text))
    if not m:
        raise ValueError(f"{field} {str(text)!r} is not a number")
    return _finite(float(m.group(1)), field, str(text).strip())


def _low(text: str | None) -> str:
    return "" if text is None else str(text).strip().lower()


def parse_adv_training(text: str | None) -> AdvTraining:
    """``"yes (AT, TRADES)"`` → yes; ``"no (not stated)"`` → no; ``"both (...)"`` → both."""
    s = _low(text)
    for member in (AdvTraining.yes, AdvTraining.no, AdvTraining.both):
        if s == member.value or s.startswith(member.value + " ") or s.startswith(member.value + "("):
            return member
    return AdvTraining.unknown


def parse_attack(text: str | None) -> Attack:
    """Map an attack description to the attack vocabulary.

    BIM (iterative FGSM, Kurakin et al. 2017) is PGD without the random start and is mapped to PGD.
    """
    s = _low(text)
    if not s:
        return Attack.other
    # the adaptive attacks and AutoAttack variants named as such (crev replicate's labels, curated texts)
    if s.startswith("eot") or "expectation over transformation" in s or "eot_pgd" in s:
        return Attack.eot_pgd
    if s.startswith("bpda"):
        return Attack.bpda
    if "pgd++" in s or "pgd_pp" in s:
        return Attack.pgd_pp
    if "autoattack_standard" in s or s.startswith("autoattack standard ("):
        return Attack.autoattack_standard
    if "autoattack_fast" in s or s.startswith("autoattack, fast subset"):
        return Attack.autoattack_fast
    if "autoattack" in s or "auto-attack" in s or "apgd" in s:
        return Attack.autoattack
    if "certif" in s or "smoothing" in s or "verified" in s:
        return Attack.certified
    if "uap" in s or "universal" in s:
        return Attack.uap
    if "square" in s:
        return Attack.square
    if re.search(r"\bpgd\b|projected ?gradient|\bbim\b", s):
        return Attack.pgd
    if re.search(r"\bfgsm\b|fast gradient", s):
        return Attack.fgsm
    if re.search(r"\bcw\b|carlini|c&w", s):
        return Attack.cw
    return Attack.other


def parse_norm(text: str | None) -> Norm:
    s = _low(text).replace("_", "").replace(" ", "")
    if s.startswith(("linf", "l∞", "l-inf", "infinity")):
        return Norm.linf
    if s.startswith("l2"):
        return Norm.l2
    if s.startswith("l0"):
        return Norm.l0
    return Norm.unknown


def parse_threat_model(text: str | None) -> ThreatModel:
    s = _low(text)
    if s.startswith(("white-box", "white box", "whitebox", "white_box")):
        return ThreatModel.white_box
    if s.startswith("transfer"):
        return ThreatModel.transfer
    if s.startswith(("black", "query", "score")):
        return ThreatModel.black_box_query
    if s.startswith("certif"):
        return ThreatModel.certified
    return ThreatModel.unknown


def parse_family(method: str | None, level: Level) -> CompressionFamily:
    """Compression family from the method text and the parsed level.

    Pruning whose text names no structure (filter, channel, kernel, structured) is taken to be
    unstructured, the common default for magnitude and score-based pruning.
    """
    s = _low(method)
    if "ensemble" in s or "empir" in s:
        return CompressionFamily.ensemble
    if "binar" in s or level.bits == 1:
        return CompressionFamily.binarization
    if "quantiz" in s or "bit" in s or level.bits is not None:
        return CompressionFamily.quantization
    if "prun" in s or level.sparsity is not None:
        if "unstructured" in s:
            return CompressionFamily.unstructured_pruning
        if re.search(r"structured|filter|channel|kernel", s):
            return CompressionFamily.structured_pruning
        return CompressionFamily.unstructured_pruning
    return CompressionFamily.other


def parse_compression_kind(text: str | None) -> CompressionKind:
    s = _low(text)
    for member in CompressionKind:
        if s == member.value:
            return member
    return CompressionKind.other


def parse_direction(text: str | None) -> Direction:
    """``robustness_up`` / ``up`` → up, and so on; anything else → unknown."""
    s = _low(text).replace("robustness_", "")
    for member in Direction:
        if s == member.value:
            return member
    return Direction.unknown


def parse_review_membership(text: str | None) -> bool | None:
    """Part of the 2023 review? ``False`` where the text says it cannot be; ``None`` where unverified."""
    s = _low(text)
    if "cannot be in it" in s or "post-dates" in s:
        return False
    if "not verified" in s or not s:
        return None
    if s.startswith(("yes", "verified", "in review")):
        return True
    return None
