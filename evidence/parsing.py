"""Parse the free-text fields of a source row into typed values.

Each parser takes the original text and returns the parsed value, or ``None`` where the text has
no meaning the vocabulary can hold ("not seen", "rate not stated in files read"). The text itself
is always stored beside the parsed value, so nothing read from a source is lost. Parsers raise
``ValueError`` only where the text is malformed in a way a user must fix (``eps = "abc"``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .vocab import AdvTraining, Attack, CompressionFamily, CompressionKind, Direction, Norm, ThreatModel

__all__ = [
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
_BITS = re.compile(r"^\s*(\d+)\s*[- ]?\s*(?:bits?|b)\s*$", re.IGNORECASE)
_YEAR = re.compile(r"^\s*((?:19|20)\d\d)\b")


def _blank(text: str | None) -> bool:
    return text is None or str(text).strip() == ""


def parse_epsilon(text: str | None) -> float | None:
    """``"2/255"`` → 0.00784…, ``"0.031"`` → 0.031, empty → ``None``.

    The result is on the [0, 1] pixel scale as written; a value above 1 is returned as is (the
    validator flags it). Raises ``ValueError`` for text that is not a number or a fraction, and
    for a negative epsilon.
    """
    if _blank(text):
        return None
    s = str(text).strip()
    m = _FRACTION.match(s)
    if m:
        num, den = float(m.group(1)), float(m.group(2))
        if den == 0:
            raise ValueError(f"epsilon {s!r} divides by zero")
        value = num / den
    else:
        m = _PLAIN.match(s)
        if not m:
            raise ValueError(f"epsilon {s!r} is not a number or a fraction such as 8/255")
        value = float(m.group(1))
    if value < 0:
        raise ValueError(f"epsilon {s!r} is negative")
    return value


@dataclass(frozen=True)
class Level:
    """A compression level parsed from text: a sparsity fraction or a bit width, or neither."""

    sparsity: float | None = None
    bits: int | None = None

    @property
    def parsed(self) -> bool:
        return self.sparsity is not None or self.bits is not None


def parse_level(text: str | None) -> Level:
    """``"0.90"`` → sparsity 0.9, ``"90%"`` → 0.9, ``"2-bit"`` → 2 bits; other text → neither.

    Raises ``ValueError`` for a sparsity outside [0, 1) or a bit width below 1: those are numbers a
    user wrote wrongly, not descriptions to keep as text.
    """
    if _blank(text):
        return Level()
    s = str(text).strip()
    m = _BITS.match(s)
    if m:
        bits = int(m.group(1))
        if bits < 1:
            raise ValueError(f"bit width {s!r} is below 1")
        return Level(bits=bits)
    m = _PERCENT.match(s)
    if m:
        value = float(m.group(1)) / 100.0
    else:
        m = _PLAIN.match(s)
        if not m:
            return Level()
        value = float(m.group(1))
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
    """An integer such as ``"10"``, or ``None`` for empty or descriptive text."""
    if _blank(text):
        return None
    m = _PLAIN.match(str(text))
    if not m:
        return None
    value = float(m.group(1))
    return int(value) if value.is_integer() else None


def parse_float(text: str | None, field: str) -> float | None:
    """A number, ``None`` for an empty cell; ``ValueError`` naming ``field`` otherwise."""
    if _blank(text):
        return None
    m = _PLAIN.match(str(text))
    if not m:
        raise ValueError(f"{field} {str(text)!r} is not a number")
    return float(m.group(1))


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
