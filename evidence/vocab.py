"""Controlled vocabularies of the evidence database.

Every free-text field read from a source is mapped to one of these enums at the boundary (see
:mod:`evidence.parsing`); the original text is always stored beside the parsed value. Values are
lowercase identifiers so they read the same in SQL, JSON and CSV.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, StrEnum

from .errors import UnknownValue

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
    "JobStatus",
    "Executor",
    "QuestionScope",
    "Question",
    "coerce",
]


class CompressionFamily(StrEnum):
    unstructured_pruning = "unstructured_pruning"
    structured_pruning = "structured_pruning"
    quantization = "quantization"
    binarization = "binarization"
    ensemble = "ensemble"
    other = "other"


class CompressionKind(StrEnum):
    """What a study compresses (the study-level summary)."""

    pruning = "pruning"
    quantization = "quantization"
    both = "both"
    other = "other"


class AdvTraining(StrEnum):
    yes = "yes"
    no = "no"
    both = "both"
    unknown = "unknown"


class Attack(StrEnum):
    fgsm = "fgsm"
    pgd = "pgd"
    cw = "cw"
    autoattack = "autoattack"
    uap = "uap"
    square = "square"
    certified = "certified"
    apgd = "apgd"  # APGD-CE / APGD-DLR on its own (Croce & Hein 2020)
    autoattack_fast = "autoattack_fast"  # a reduced AutoAttack (e.g. APGD-CE + APGD-T only, "fast"/"rand" versions)
    autoattack_standard = "autoattack_standard"  # the standard four-attack AutoAttack ensemble
    pgd_pp = "pgd_pp"  # temperature-scaled PGD++ (logit scaling against gradient masking)
    eot_pgd = "eot_pgd"  # PGD with Expectation over Transformation (Athalye et al. 2018)
    bpda = "bpda"  # Backward Pass Differentiable Approximation (Athalye et al. 2018)
    other = "other"


class Norm(StrEnum):
    linf = "linf"
    l2 = "l2"
    l0 = "l0"
    unknown = "unknown"


class ThreatModel(StrEnum):
    white_box = "white_box"
    transfer = "transfer"
    black_box_query = "black_box_query"
    certified = "certified"
    common_corruptions = "common_corruptions"  # CIFAR-10-C style corruptions: not adversarial
    unknown = "unknown"


class Direction(StrEnum):
    """A claim's answer for the robustness of the compressed model."""

    up = "up"
    down = "down"
    neutral = "neutral"
    mixed = "mixed"
    unknown = "unknown"


class ReviewStatus(StrEnum):
    pending = "pending"
    approved = "approved"
    rejected = "rejected"


class SubmissionKind(StrEnum):
    seed = "seed"
    add_study = "add_study"
    import_results = "import_results"
    correction = "correction"
    replication = "replication"
    release = "release"  # a curated release shipped with the package or read from a data package
    robustbench = "robustbench"  # entries imported from RobustBench model_info files
    bibtex = "bibtex"  # study stubs from a BibTeX file or a DOI list


class Provenance(StrEnum):
    """Whether a number was copied from the source or computed from it."""

    verbatim = "verbatim"
    derived = "derived"
    replication = "replication"


class SourceKind(StrEnum):
    literature = "literature"
    replication = "replication"


class JobStatus(StrEnum):
    """A replication job's state (``job.status``, stored as the value)."""

    queued = "queued"
    running = "running"
    done = "done"
    cancelled = "cancelled"
    failed = "failed"

    @classmethod
    def active(cls) -> tuple["JobStatus", ...]:
        """The states of a job that has not ended (counted against quotas; reaped when stale)."""
        return (cls.queued, cls.running)

    @property
    def is_active(self) -> bool:
        return self in self.active()


class Executor(StrEnum):
    """Where a replication job's cells run (``job.executor``, stored as the value)."""

    local = "local"  # one after another in the job's own process
    dask = "dask"  # a Dask LocalCluster, or a running scheduler (--scheduler)
    slurm = "slurm"  # Dask workers as SLURM batch jobs (dask-jobqueue)
    pbs = "pbs"  # Dask workers as PBS / Torque batch jobs (dask-jobqueue)


@dataclass(frozen=True)
class QuestionScope:
    """Which results bear on a question, and which conditions its claims are coded with.

    An empty tuple means "any". ``baseline_threat_models`` are results read beside the question's
    own as the comparison (white-box attacks on the same models, for the transfer question).
    ``measurable`` is False where no result in the database measures what the question asks.
    """

    families: tuple[CompressionFamily, ...] = ()
    adversarial_training: tuple[AdvTraining, ...] = ()
    threat_models: tuple[ThreatModel, ...] = ()
    baseline_threat_models: tuple[ThreatModel, ...] = ()
    conditions: str = ""
    measurable: bool = True

    def claim_conditions(self) -> dict:
        """The claim fields this scope fixes: each condition that has exactly one value."""
        out: dict = {}
        for name, values in (
            ("compression_family", self.families),
            ("adversarial_training", self.adversarial_training),
            ("threat_model", self.threat_models),
        ):
            if len(values) == 1:
                out[name] = values[0]
        return out

    def result_threat_models(self) -> tuple[ThreatModel, ...]:
        """Threat models of the results an analysis of the question reads (its own and the baseline)."""
        return self.threat_models + self.baseline_threat_models


_PRUNING = (CompressionFamily.unstructured_pruning, CompressionFamily.structured_pruning)


class Question(StrEnum):
    """The six disputed questions of the seed review, each with its text and its scope.

    The one declaration of what each question covers (the claim coding in :mod:`evidence.store`
    and the contradiction analysis read it from here). Quantization covers binarization (1 bit)
    and EMPIR-style ensembles of mixed-precision models; the transfer question reads white-box
    results on the same models as its baseline; no result measures model capacity.
    """

    def __new__(cls, value: str, text: str, scope: QuestionScope) -> "Question":
        obj = str.__new__(cls, value)
        obj._value_ = value
        obj.text = text
        obj.scope = scope
        return obj

    pruning_without_at = (
        "pruning_without_at",
        "Does pruning a network trained without adversarial training change its adversarial robustness?",
        QuestionScope(families=_PRUNING, adversarial_training=(AdvTraining.no,), conditions="pruning (any structure) without adversarial training"),
    )
    sparsity_level = (
        "sparsity_level",
        "How does the sparsity level change adversarial robustness (monotone loss, or a sweet spot)?",
        QuestionScope(families=_PRUNING, conditions="pruning (any structure) at different sparsity levels"),
    )
    quantization = (
        "quantization",
        "Does quantization to low bit widths (down to binary) change adversarial robustness?",
        QuestionScope(
            families=(CompressionFamily.quantization, CompressionFamily.binarization, CompressionFamily.ensemble),
            conditions="quantization / low bit width, binarization and mixed-precision ensembles",
        ),
    )
    transfer = (
        "transfer",
        "Do adversarial examples crafted on the dense model still fool the compressed model?",
        QuestionScope(
            threat_models=(ThreatModel.transfer,),
            baseline_threat_models=(ThreatModel.white_box,),
            conditions="adversarial examples transferred between dense and compressed models",
        ),
    )
    robust_aware_pruning = (
        "robust_aware_pruning",
        "Does robustness-aware pruning with adversarial training keep robustness after compression?",
        QuestionScope(families=_PRUNING, adversarial_training=(AdvTraining.yes,), conditions="pruning with adversarial (robustness-aware) training"),
    )
    capacity = (
        "capacity",
        "Does adversarial robustness need model capacity, so that compression must cost robustness?",
        QuestionScope(conditions="model capacity / width", measurable=False),
    )


def coerce(enum: type[Enum], value: "str | Enum") -> Enum:
    """Convert a user-supplied string (value or name, any case) to ``enum``; raise
    :class:`evidence.errors.UnknownValue` (a ``ValueError``) naming the allowed values."""

    if isinstance(value, enum):
        return value
    text = str(value).strip().lower().replace("-", "_").replace(" ", "_")
    for member in enum:
        if text in (member.value, member.name):
            return member
    allowed = ", ".join(m.value for m in enum)
    raise UnknownValue(f"{value!r} is not a valid {enum.__name__} (allowed: {allowed})")
