"""The rigour-check family: one small class per check behind :class:`Check`, registered in
:data:`CHECKS` (run in registration order by :func:`run_checks`, the only way a cell reaches a check).

A new check is one class in the module of its kind (``attack_strength.py``, ``epsilon.py``,
``gradients.py``, or a module of its own imported here) that calls :func:`register_check`; the
tests parametrised over :data:`CHECKS` then require a planted model that makes it fail.
"""

from .base import (ALPHA, CHECKS, CONSISTENCY_MIN, LARGE_EPS, SWEEP_MIN_GAIN_PP, Check, CheckOutcome, Measurements, Paired, paired_less, reference,
                   register_check, run_checks)
from . import attack_strength, epsilon, fidelity, gradients  # noqa: F401  (each registers its checks, in this order)

__all__ = ["ALPHA", "CHECKS", "CONSISTENCY_MIN", "LARGE_EPS", "SWEEP_MIN_GAIN_PP", "Check", "CheckOutcome", "Measurements", "Paired", "paired_less",
           "reference", "register_check", "run_checks"]
