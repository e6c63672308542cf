"""The attack family: one small class per attack behind :class:`AttackMethod`, registered in
:data:`ATTACKS` (the only way a spec, a check or a cell reaches an attack).

- :mod:`replicate.attacks.base`: :class:`AttackName` (the one declaration of attack names),
  :class:`AttackSpec`, :class:`AttackMethod`, the registry, :func:`craft`, :func:`correct`;
- :mod:`replicate.attacks.standard`: the torchattacks wrappers and the random-noise baselines;
- :mod:`replicate.attacks.adaptive`: attacks adapted to a defence (PGD++, BPDA, EOT);
- :mod:`replicate.attacks.gradients`: input-gradient measurements read by the rigour checks.

A new attack is one class in ``standard.py`` or ``adaptive.py`` (or a module of its own imported
here) that calls :func:`register_attack`; the tests parametrised over :data:`ATTACKS` cover it.
"""

from .base import ATTACKS, AttackMethod, AttackName, AttackSpec, correct, craft, evaluate_attack, model_to_attack, register_attack
from . import standard  # noqa: F401  (registers the standard attacks)
from . import adaptive  # noqa: F401  (registers pgd_pp, bpda and eot_pgd)
from .gradients import gradient_consistency, input_gradient_stats
from .masking import is_non_differentiable

__all__ = ["ATTACKS", "AttackMethod", "AttackName", "AttackSpec", "correct", "craft", "evaluate_attack", "model_to_attack", "register_attack",
           "gradient_consistency", "input_gradient_stats", "is_non_differentiable"]
