"""Meta-analysis of compression vs adversarial robustness, with metafor's numbers.

Typical use::

    from evidence import init_database, ResultFilter
    from metaanalysis import load_effects, EffectSettings, run_analysis, AnalysisSpec
    engine, _ = init_database()
    table = load_effects(engine, ResultFilter(families=["quantization"]), EffectSettings(assume_n="dataset"))
    print(run_analysis(table, AnalysisSpec(mods="epsilon")).summary())

Low-level models work on plain arrays: :func:`rma_uni`, :func:`rma_mv`, :func:`robust`.
"""

from importlib import import_module

# The core models are imported with the package (numpy, pandas, scipy only): `crev meta run --input`
# needs nothing else. The rest load on first use (PEP 562), so that fitting a CSV never imports the
# evidence store (sqlalchemy, sqlmodel) behind `load_effects` (issue 13: whole-process time).
from .models.design import design_matrix
from .models.multilevel import rma_mv
from .models.results import Coefficient, MetaResult
from .models.robust import robust
from .models.uni import METHODS, MetaInputError, TauCI, q_profile_ci, rma_uni

_LAZY = {
    "analysis": ("Analysis", "AnalysisSpec", "StudyEstimate", "SubgroupResult", "per_study", "run_analysis", "study_estimate", "subgroups"),
    "dose": ("DoseResponse", "dose_response"),
    "sensitivity": ("Sensitivity", "rigour_sensitivity", "RigourModerators", "rigour_moderators", "CorrelationSensitivity",
                    "correlation_sensitivity"),
    "answers": ("Answers", "KindAnswer", "QuestionAnswer", "answer"),
    "kinds": ("EvaluationKind", "require_one_kind"),
    "bias.funnel": ("EggerResult", "RankTestResult", "TrimFillResult", "egger_test", "rank_test", "trim_and_fill"),
    "diagnostics": ("influence", "leave_one_out"),
    "contradictions": ("ContradictionReport", "PairReport", "PairVerdict", "contradiction_report"),
    "multiverse": ("MultiverseResult", "specifications"),
    "bias.pubbias": ("BiasReport", "bias_report", "multilevel_egger", "pet_peese"),
    "bias.pubsens": ("PubBiasSensitivity", "pubbias_sensitivity"),
    "report": ("ReportDocument", "build_report"),
    "bias.selection": ("SelectionModelResult", "step_selection_model"),
    "data": ("EvidenceSnapshot", "load_effects", "load_snapshot"),
    "effects": ("STANDARD_TEST_SIZES", "EffectSource", "EffectMeasure", "EffectSettings", "EffectTable", "compute_effects"),
    "overview": ("Headline", "evidence_map", "headline"),
    "reeval": ("ReevaluationGaps", "reevaluation_gaps"),
    "rigour": ("RIGOUR_COMPONENTS", "rigour_scores"),
    "votes": ("VOTE_CAVEAT", "VoteCount", "vote_count"),
}
_LAZY_FROM = {name: module for module, names in _LAZY.items() for name in names}


def __getattr__(name: str):
    """Import a lazily exported name from its module on first access (PEP 562)."""
    module = _LAZY_FROM.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "Analysis", "AnalysisSpec", "DoseResponse", "Sensitivity", "StudyEstimate", "SubgroupResult",
    "Answers", "EvaluationKind", "require_one_kind", "KindAnswer", "QuestionAnswer", "answer", "dose_response", "per_study", "rigour_sensitivity",
    "run_analysis", "study_estimate", "subgroups", "RigourModerators", "rigour_moderators", "CorrelationSensitivity", "correlation_sensitivity",
    "EggerResult", "RankTestResult", "TrimFillResult", "egger_test", "influence", "leave_one_out", "rank_test", "trim_and_fill",
    "ContradictionReport", "PairReport", "PairVerdict", "contradiction_report", "MultiverseResult", "specifications", "BiasReport", "bias_report",
    "multilevel_egger", "pet_peese", "PubBiasSensitivity", "pubbias_sensitivity", "ReportDocument", "build_report", "SelectionModelResult",
    "step_selection_model",
    "EvidenceSnapshot", "load_effects", "load_snapshot",
    "design_matrix",
    "STANDARD_TEST_SIZES", "EffectSource", "EffectMeasure", "EffectSettings", "EffectTable", "compute_effects",
    "rma_mv", "evidence_map", "headline", "ReevaluationGaps", "reevaluation_gaps", "Coefficient", "MetaResult", "RIGOUR_COMPONENTS", "rigour_scores", "robust",
    "METHODS", "MetaInputError", "TauCI", "q_profile_ci", "rma_uni", "VOTE_CAVEAT", "VoteCount", "vote_count",
]
