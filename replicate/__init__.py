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

from .attacks import ATTACKS, AttackSpec, craft, evaluate_attack, input_gradient_stats  # noqa: E402
from .cells import Cell, plan, run_cell  # noqa: E402
from .checks import CHECKS, Check, CheckOutcome, Measurements, run_checks  # noqa: E402
from .compression import COMPRESSORS, Compressed, Compressor, Int8PTQ, Pruner, Quantizer, build_compressor, distinct_weight_values, measured_sparsity  # noqa: E402
from .datasets import DATASETS, DatasetError, Split, load_split, register_dataset  # noqa: E402
from .jobs import REPLICATION_STUDY, get_job, job_results, job_table, request_cancel  # noqa: E402
from .launch import job_verdicts, launch_background  # noqa: E402
from .models import MODELS, build_model  # noqa: E402
from .runner import JobCancelled, RunOutcome, run_job  # noqa: E402
from .spec import JobSpec, SpecError, catalogue, get_claim_spec, load_spec  # noqa: E402
from .training import TrainConfig, accuracy, fit, train_model  # noqa: E402
from .verdict import Verdict, decide  # noqa: E402

__all__ = [
    "require_torchattacks", "ATTACKS", "AttackSpec", "craft", "evaluate_attack", "input_gradient_stats", "Cell", "plan", "run_cell",
    "CHECKS", "Check", "CheckOutcome", "Measurements", "run_checks", "COMPRESSORS", "Compressed", "Compressor", "Int8PTQ", "Pruner",
    "Quantizer", "build_compressor", "distinct_weight_values", "measured_sparsity", "DATASETS", "DatasetError", "Split", "load_split",
    "register_dataset", "REPLICATION_STUDY", "get_job", "job_results", "job_table", "request_cancel", "job_verdicts", "launch_background", "MODELS", "build_model", "JobCancelled", "RunOutcome",
    "run_job", "JobSpec", "SpecError", "catalogue", "get_claim_spec", "load_spec", "TrainConfig", "accuracy", "fit", "train_model",
    "Verdict", "decide",
]
