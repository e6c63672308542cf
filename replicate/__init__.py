"""Replication engine: re-run the literature's claims with PyTorch pruning and quantization and
torchattacks attacks, with evaluation-rigour checks, locally or on a Dask cluster.

Typical use::

    from evidence import init_database
    from replicate import get_claim_spec, run_job
    engine, _ = init_database()
    outcome = run_job(engine, get_claim_spec("pruning_without_at").quick())
"""

from ._deps import require_torchattacks

require_torchattacks()  # fail at import with the install command, not mid-job

from .attacks import ATTACKS, AttackMethod, AttackName, AttackSpec, craft, evaluate_attack, input_gradient_stats, register_attack  # noqa: E402
from . import adaptive_attacks  # noqa: E402,F401  (registers pgd_pp, bpda and eot_pgd in ATTACKS)
from .cells import Cell, CellResult, plan, run_cell  # noqa: E402
from .checks import CHECKS, Check, CheckOutcome, Measurements, run_checks  # noqa: E402
from .compression import (  # noqa: E402
    COMPRESSORS, Compressed, CompressionInfo, Compressor, Granularity, Int8PTQ, Pruner, Quantizer, ScaleRule, build_compressor,
    distinct_weight_values, measured_sparsity, zero_shares,
)
from .datasets import DATASETS, DatasetError, Split, load_split, register_dataset  # noqa: E402
from .jobs import REPLICATION_STUDY, JobStatus, JobSummary, get_job, job_results, job_table, reap_stale_jobs, request_cancel  # noqa: E402
from .launch import job_verdicts, launch_background  # noqa: E402
from .models import MODELS, ModelName, build_model  # noqa: E402
from .runner import JobCancelled, RunOutcome, run_job  # noqa: E402
from .spec import JobSpec, SpecError, catalogue, get_claim_spec, load_spec  # noqa: E402
from .training import CODE_VERSION, TrainConfig, accuracy, fit, package_version, train_model  # noqa: E402
from .verdict import FamilyVerdict, LevelEffect, Verdict, VerdictValue, decide  # noqa: E402

__all__ = [
    "require_torchattacks", "ATTACKS", "AttackMethod", "AttackName", "AttackSpec", "craft", "evaluate_attack", "input_gradient_stats",
    "register_attack", "Cell", "CellResult", "plan", "run_cell", "CHECKS", "Check", "CheckOutcome", "Measurements", "run_checks", "COMPRESSORS",
    "Compressed", "CompressionInfo", "Compressor", "Granularity", "Int8PTQ", "Pruner", "Quantizer", "ScaleRule", "build_compressor",
    "distinct_weight_values", "measured_sparsity", "zero_shares", "DATASETS", "DatasetError", "Split", "load_split", "register_dataset",
    "REPLICATION_STUDY", "JobStatus", "JobSummary", "get_job", "job_results", "job_table", "reap_stale_jobs", "request_cancel", "job_verdicts",
    "launch_background", "MODELS", "ModelName", "build_model", "JobCancelled", "RunOutcome", "run_job", "JobSpec", "SpecError", "catalogue",
    "get_claim_spec", "load_spec", "CODE_VERSION", "TrainConfig", "accuracy", "fit", "package_version", "train_model", "FamilyVerdict",
    "LevelEffect", "Verdict", "VerdictValue", "decide",
]
