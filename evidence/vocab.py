"""Controlled vocabularies of the evidence database.

Every free-text field read from a source is mapped to one of these enums at the boundary (see
:mod:`evidence.parsing`); the original text is always stored beside the parsed value. Values are
lowercase identifiers so they read the same in SQL, JSON and CSV.
"""

from __future__ import annotations

from enum import Enum

__all__ = [
    "CompressionFamily",
    "CompressionKind",
    "AdvTraining",
    "Attack",
    "Norm",
    "ThreatModel",
    "Direction",
    "ReviewStatus",
    "SubmissionKind",
    "Provenance",
    "SourceKind",
    "coerce",
]


class _StrEnum(str, Enum):
    def __str__(self) -> str:  # pragma: no cover - cosmetic
        return self.value


class CompressionFamily(_StrEnum):
    unstructured_pruning = "unstructured_pruning"
    structured_pruning = "structured_pruning"
    quantization = "quantization"
    binarization = "binarization"
    ensemble = "ensemble"
    other = "other"


class CompressionKind(_StrEnum):
    """What a study compresses (the study-level summary)."""

    pruning = "pruning"
    quantization = "quantization"
    both = "both"
    other = "other"


class AdvTraining(_StrEnum):
    yes = "yes"
    no = "no"
    both = "both"
    unknown = "unknown"


class Attack(_StrEnum):
    fgsm = "fgsm"
    pgd = "pgd"
    cw = "cw"
    autoattack = "autoattack"
    uap = "uap"
    square = "square"
    certified = "certified"
    other = "other"


class Norm(_StrEnum):
    linf = "linf"
    l2 = "l2"
    l0 = "l0"
    unknown = "unknown"


class ThreatModel(_StrEnum):
    white_box = "white_box"
    transfer = "transfer"
    black_box_query = "black_box_query"
    certified = "certified"
    unknown = "unknown"


class Direction(_StrEnum):
    """A claim's answer for the robustness of the compressed model."""

    up = "up"
    down = "down"
    neutral = "neutral"
    mixed = "mixed"
    unknown = "unknown"


class ReviewStatus(_StrEnum):
    pending = "pending"
    approved = "approved"
    rejected = "rejected"


class SubmissionKind(_StrEnum):
    seed = "seed"
    add_study = "add_study"
    import_results = "import_results"
    correction = "correction"
    replication = "replication"


class Provenance(_StrEnum):
    """Whether a number was copied from the source or computed from it."""

    verbatim = "verbatim"
    derived = "derived"
    replication = "replication"


class SourceKind(_StrEnum):
    literature = "literature"
    replication = "replication"


def coerce(enum: type[Enum], value: "str | Enum") -> Enum:
    """Convert a user-supplied string (value or name, any case) to ``enum``; raise ValueError."""
    if isinstance(value, enum):
        return value
    text = str(value).strip().lower().replace("-", "_").replace(" ", "_")
    for member in enum:
        if text in (member.value, member.name):
            return member
    allowed = ", ".join(m.value for m in enum)
    raise ValueError(f"{value!r} is not a valid {enum.__name__} (allowed: {allowed})")
