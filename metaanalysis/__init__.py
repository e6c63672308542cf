"""Meta-analysis of compression vs adversarial robustness, with metafor's numbers.

Typical use::

    from evidence import init_database, ResultFilter
    from metaanalysis import load_effects, EffectSettings, run_analysis, AnalysisSpec
    engine, _ = init_database()
    table = load_effects(engine, ResultFilter(families=["quantization"]), EffectSettings(assume_n="dataset"))
    print(run_analysis(table, AnalysisSpec(mods="epsilon")).summary())

Low-level models work on plain arrays: :func:`rma_uni`, :func:`rma_mv`, :func:`robust`.
"""

from .analysis import (
    Analysis, AnalysisSpec, DoseResponse, Sensitivity, SubgroupResult, dose_response, per_study, rigour_sensitivity, run_analysis,
    study_estimate, subgroups,
)
from .bias import EggerResult, RankTestResult, TrimFillResult, egger_test, influence, leave_one_out, rank_test, trim_and_fill
from .contradictions import ContradictionReport, contradiction_report
from .data import EvidenceSnapshot, load_effects, load_snapshot
from .design import design_matrix
from .effects import STANDARD_TEST_SIZES, EffectMeasure, EffectSettings, EffectTable, compute_effects
from .multilevel import rma_mv
from .overview import evidence_map, headline
from .reeval import ReevaluationGaps, reevaluation_gaps
from .results import Coefficient, MetaResult
from .rigour import RIGOUR_COMPONENTS, rigour_scores
from .robust import robust
from .uni import METHODS, MetaInputError, TauCI, q_profile_ci, rma_uni
from .votes import VOTE_CAVEAT, VoteCount, vote_count

__all__ = [
    "Analysis", "AnalysisSpec", "DoseResponse", "Sensitivity", "SubgroupResult", "dose_response", "per_study", "rigour_sensitivity",
    "run_analysis", "study_estimate", "subgroups",
    "EggerResult", "RankTestResult", "TrimFillResult", "egger_test", "influence", "leave_one_out", "rank_test", "trim_and_fill",
    "ContradictionReport", "contradiction_report",
    "EvidenceSnapshot", "load_effects", "load_snapshot",
    "design_matrix",
    "STANDARD_TEST_SIZES", "EffectMeasure", "EffectSettings", "EffectTable", "compute_effects",
    "rma_mv", "evidence_map", "headline", "ReevaluationGaps", "reevaluation_gaps", "Coefficient", "MetaResult", "RIGOUR_COMPONENTS", "rigour_scores", "robust",
    "METHODS", "MetaInputError", "TauCI", "q_profile_ci", "rma_uni", "VOTE_CAVEAT", "VoteCount", "vote_count",
]
