"""Replication jobs: the spec and its catalogue (:mod:`replicate.jobs.spec`, TOML files under
``replicate/catalogue/``), the grid of cells (:mod:`replicate.jobs.cells`), the one grid loop for
every executor (:mod:`replicate.jobs.executors`), running a job (:mod:`replicate.jobs.runner`),
its state and results in the database (:mod:`replicate.jobs.store`), background launches
(:mod:`replicate.jobs.launch`), the heartbeat (:mod:`replicate.jobs.heartbeat`) and the verdict per
claim (:mod:`replicate.jobs.verdict`).
"""

from .spec import AttackGrid, ClaimRef, CompressionSpec, DataSpec, JobSpec, SpecError, TrainSpec, catalogue, get_claim_spec, load_spec
from .cells import AttackOutcome, Cell, CellResult, TrainRecord, plan, run_cell
from .verdict import FamilyVerdict, LevelEffect, ReplicationVerdict, VerdictValue, decide
from .store import (HEARTBEAT_EVERY, HEARTBEAT_STALE_AFTER, REPLICATION_STUDY, STALE_AFTER, JobStatus, JobSummary, get_job, job_results, job_table,
                    reap_stale_jobs, request_cancel)
from .runner import JobCancelled, RunOutcome, run_job
from .launch import cancel_job, job_verdicts, launch_background

__all__ = ["AttackGrid", "ClaimRef", "CompressionSpec", "DataSpec", "JobSpec", "SpecError", "TrainSpec", "catalogue", "get_claim_spec", "load_spec",
           "AttackOutcome", "Cell", "CellResult", "TrainRecord", "plan", "run_cell", "FamilyVerdict", "LevelEffect", "ReplicationVerdict",
           "VerdictValue", "decide", "HEARTBEAT_EVERY", "HEARTBEAT_STALE_AFTER", "STALE_AFTER", "REPLICATION_STUDY", "JobStatus", "JobSummary", "get_job", "job_results", "job_table", "reap_stale_jobs",
           "request_cancel", "JobCancelled", "RunOutcome", "run_job", "cancel_job", "job_verdicts", "launch_background"]
