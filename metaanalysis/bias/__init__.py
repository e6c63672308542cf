"""Publication-bias and small-study methods.

- :mod:`metaanalysis.bias.pubbias` — the report for dependent effects: multilevel Egger with CR2 by
  study, PET-PEESE on study aggregates, and :func:`bias_report`;
- :mod:`metaanalysis.bias.selection` — the three-parameter step selection model (Vevea & Hedges 1995);
- :mod:`metaanalysis.bias.pubsens` — Mathur & VanderWeele's sensitivity analysis;
- :mod:`metaanalysis.bias.funnel` — row-level Egger, Begg and trim-and-fill (one effect per study).

A new bias method is one module here returning a typed result with ``to_dict()``, called from
:func:`bias_report` behind its minimum-studies gate, with its R reference under ``tests/data/metafor/``.
"""

from .funnel import EggerResult, RankTestResult, TrimFillResult, egger_test, rank_test, trim_and_fill
from .pubbias import BiasReport, bias_report, multilevel_egger, pet_peese
from .pubsens import PubBiasSensitivity, pubbias_sensitivity
from .selection import SelectionModelResult, step_selection_model

__all__ = ["EggerResult", "RankTestResult", "TrimFillResult", "egger_test", "rank_test", "trim_and_fill", "BiasReport", "bias_report",
           "multilevel_egger", "pet_peese", "PubBiasSensitivity", "pubbias_sensitivity", "SelectionModelResult", "step_selection_model"]
