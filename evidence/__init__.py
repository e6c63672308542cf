"""The evidence database: studies, claims and results on compression vs adversarial robustness.

Typical use::

    from evidence import init_database, query_results, ResultFilter
    engine, _ = init_database()                    # CREV_DB or the default SQLite file
    df = query_results(engine, ResultFilter(families=["quantization"]))
"""

from .api import InitResult, init_database, is_empty
from .db import get_engine, resolve_url, session_scope, upgrade_schema
from .errors import Conflict, DatabaseError, EvidenceError, NotAuthorized, NotFound, Problem, UnknownValue, ValidationFailed
from .identity import canonical_identity, check_identity, same_identity
from .export import FORMATS, escape_for_spreadsheet, export_results, template_csv, to_interchange, write_template
from .models import Claim, ClaimCreate, Job, JobCell, Result, ResultCreate, Study, StudyCreate, Submission
from .queries import ResultFilter, data_version, count_results, distinct_values, list_claims, list_studies, query_results, stats
from .review import approve, self_approval_allowed, history, pending_submissions, propose_correction, reject, submission_diff, submission_rows, whoami
from .rows import RESULT_COLUMNS, convert_result_row
from .seed import ShippedRelease, load_releases, load_seed, loaded_releases, seed_loaded, shipped_releases
from .store import add_study, import_results, preview_import, read_study_file
from .submit import ImportReport, SubmissionCreate, stored_duplicates, submit
from .vocab import (
    AdvTraining,
    Attack,
    CompressionFamily,
    CompressionKind,
    Direction,
    Norm,
    Provenance,
    Question,
    QuestionScope,
    ReviewStatus,
    SourceKind,
    SubmissionKind,
    ThreatModel,
)

__all__ = [
    "InitResult", "init_database", "is_empty",
    "get_engine", "resolve_url", "session_scope", "upgrade_schema",
    "Conflict", "DatabaseError", "EvidenceError", "NotAuthorized", "NotFound", "Problem", "UnknownValue", "ValidationFailed",
    "canonical_identity", "check_identity", "same_identity",
    "FORMATS", "escape_for_spreadsheet", "export_results", "template_csv", "to_interchange", "write_template",
    "Claim", "ClaimCreate", "Job", "JobCell", "Result", "ResultCreate", "Study", "StudyCreate", "Submission",
    "ResultFilter", "data_version", "count_results", "distinct_values", "list_claims", "list_studies", "query_results", "stats",
    "approve", "self_approval_allowed", "history", "pending_submissions", "propose_correction", "reject", "submission_diff", "submission_rows", "whoami",
    "RESULT_COLUMNS", "convert_result_row",
    "ShippedRelease", "load_releases", "load_seed", "loaded_releases", "seed_loaded", "shipped_releases",
    "add_study", "import_results", "preview_import", "read_study_file",
    "ImportReport", "SubmissionCreate", "stored_duplicates", "submit",
    "AdvTraining", "Attack", "CompressionFamily", "CompressionKind", "Direction", "Norm", "Provenance", "Question", "QuestionScope",
    "ReviewStatus", "SourceKind", "SubmissionKind", "ThreatModel",
]
