"""Replication engine: re-run the literature's claims with PyTorch pruning and quantization and
torchattacks attacks, with evaluation-rigour checks, locally or on a Dask cluster.

Sub-packages, one per plugin family or stage (each family's registry is its only dispatch):

- :mod:`replicate.attacks` — attacks behind ``AttackMethod``, registry ``ATTACKS``;
- :mod:`replicate.checks` — rigour checks behind ``Check``, registry ``CHECKS``;
- :mod:`replicate.compress` — compressors behind ``Compressor``, registry ``COMPRESSORS``;
- :mod:`replicate.train` — data sets (registry ``DATASETS``), architectures (``MODELS``), training;
- :mod:`replicate.jobs` — specs and the catalogue, the grid, the executors, jobs, verdicts.

Typical use::

    from evidence import init_database
    from replicate import get_claim_spec, run_job
    engine, _ = init_database()
    outcome = run_job(engine, get_claim_spec("pruning_without_at").quick())
"""

from ._deps import require_torchattacks

require_torchattacks()  # fail at import with the install command, not mid-job

from .attacks import ATTACKS, AttackMethod, AttackName, AttackSpec, craft, evaluate_attack, input_gradient_stats, register_attack  # noqa: E402
from .errors import ReplicateError  # noqa: E402
from .checks import CHECKS, Check, CheckOutcome, Measurements, register_check, run_checks  # noqa: E402
from .compress import (  # noqa: E402
    COMPRESSORS, Compressed, CompressionInfo, Compressor, CompressorKind, Granularity, Int8PTQ, Pruner, Quantizer, ScaleRule, build_compressor,
    compressor_for, distinct_weight_values, measured_sparsity, register_compressor, zero_shares,
)
from .train import (  # noqa: E402
    CODE_VERSION, DATASETS, MODELS, DatasetError, ModelName, Split, TrainConfig, accuracy, build_model, fit, load_split, package_version,
    register_dataset, train_model,
)
from .jobs import (  # noqa: E402
    REPLICATION_STUDY, Cell, CellResult, FamilyVerdict, JobCancelled, JobSpec, JobStatus, JobSummary, LevelEffect, RunOutcome, SpecError,
    ReplicationVerdict, VerdictValue, catalogue, decide, get_claim_spec, get_job, job_results, job_table, job_verdicts, launch_background,
    load_spec, plan, reap_stale_jobs, request_cancel, run_cell, run_job,
)

__all__ = [
    "ReplicateError", "require_torchattacks", "ATTACKS", "AttackMethod", "AttackName", "AttackSpec", "craft", "evaluate_attack", "input_gradient_stats",
    "register_attack", "CHECKS", "Check", "CheckOutcome", "Measurements", "register_check", "run_checks", "COMPRESSORS", "Compressed",
    "CompressionInfo", "Compressor", "CompressorKind", "Granularity", "Int8PTQ", "Pruner", "Quantizer", "ScaleRule", "build_compressor",
    "compressor_for", "distinct_weight_values", "measured_sparsity", "register_compressor", "zero_shares", "CODE_VERSION", "DATASETS", "MODELS",
    "DatasetError", "ModelName", "Split", "TrainConfig", "accuracy", "build_model", "fit", "load_split", "package_version", "register_dataset",
    "train_model", "REPLICATION_STUDY", "Cell", "CellResult", "FamilyVerdict", "JobCancelled", "JobSpec", "JobStatus", "JobSummary",
    "LevelEffect", "RunOutcome", "SpecError", "ReplicationVerdict", "VerdictValue", "catalogue", "decide", "get_claim_spec", "get_job",
    "job_results", "job_table", "job_verdicts", "launch_background", "load_spec", "plan", "reap_stale_jobs", "request_cancel", "run_cell",
    "run_job",
]
