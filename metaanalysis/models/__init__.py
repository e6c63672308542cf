"""The metafor-matched engine: ``rma.uni`` (:mod:`metaanalysis.models.uni`, with its tau² estimator
registry ``TAU2_ESTIMATORS``), nested ``rma.mv`` (:mod:`metaanalysis.models.multilevel`, random
structure in :mod:`metaanalysis.models.structure`), cluster-robust CR0/CR1/CR2 inference
(:mod:`metaanalysis.models.robust`), the shared weighted least squares and tests
(:mod:`metaanalysis.models.inference`), moderator formulas (:mod:`metaanalysis.models.design`) and
the typed results (:mod:`metaanalysis.models.results`). numpy, pandas and scipy only.
"""

from .design import Design, design_matrix, parse_formula
from .multilevel import MULTILEVEL_METHODS, rma_mv
from .results import Coefficient, ComponentTest, MetaResult
from .robust import ROBUST_KINDS, robust
from .structure import DEFAULT_RANDOM, EFFECT_LEVEL, parse_random
from .uni import METHODS, TAU2_ESTIMATORS, MetaInputError, TauCI, check_inputs, q_profile_ci, rma_uni, tau2_estimate

__all__ = ["Design", "design_matrix", "parse_formula", "MULTILEVEL_METHODS", "rma_mv", "Coefficient", "ComponentTest", "MetaResult",
           "ROBUST_KINDS", "robust", "DEFAULT_RANDOM", "EFFECT_LEVEL", "parse_random", "METHODS", "TAU2_ESTIMATORS", "MetaInputError", "TauCI",
           "check_inputs", "q_profile_ci", "rma_uni", "tau2_estimate"]
