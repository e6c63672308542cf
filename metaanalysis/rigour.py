"""Evaluation rigour: a risk-of-bias score for each adversarial-robustness result.

After Carlini N, Athalye A, Papernot N, et al. (2019), "On Evaluating Adversarial Robustness"
(arXiv:1902.06705): a robustness number is only as good as the attack behind it and the care with
which it was reported. Each component is kept, not only the total, so a reader sees *why* a result
is rated as it is.

Components (higher is better):

- ``attack_strength`` 2: AutoAttack, certified bounds, or an adaptive attack; 1: an iterative or
  optimisation attack (PGD, CW, Square, UAP) with its steps stated; 0: FGSM, an unnamed attack, or
  an iterative attack whose steps are not stated.
- ``epsilon_stated`` 1 if the perturbation budget is known.
- ``n_test_known`` 1 if the number of evaluated images is known.
- ``verbatim`` 1 if the number was copied from the source or measured by a replication, 0 if derived.
- ``not_transfer_only`` 0 for a transfer-only evaluation (it can overstate robustness).
- ``robust_below_clean`` 0 if a robust accuracy exceeds the clean one (a sign of a broken evaluation).

A result is **high risk** when its attack is weak or unknown, its epsilon is not stated, its robust
accuracy exceeds clean accuracy, or a replication check flagged possible gradient masking.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np
import pandas as pd

from evidence.vocab import Attack

__all__ = ["RIGOUR_COMPONENTS", "rigour_scores", "MAX_SCORE", "AttackFamily", "ATTACK_FAMILY", "attack_family"]


class AttackFamily(StrEnum):
    """Kinds of evaluation that measure different things and are not pooled together."""

    iterative_gradient = "iterative gradient"  # PGD and its adaptive variants, APGD, CW
    autoattack = "AutoAttack"
    single_step = "single-step"  # FGSM
    query_based = "query-based"  # Square and other score/decision attacks
    universal = "universal perturbation"  # one perturbation for all images (UAP)
    certified = "certified bound"
    other = "other"


ATTACK_FAMILY: dict[Attack, AttackFamily] = {
    Attack.fgsm: AttackFamily.single_step,
    Attack.pgd: AttackFamily.iterative_gradient,
    Attack.apgd: AttackFamily.iterative_gradient,
    Attack.pgd_pp: AttackFamily.iterative_gradient,
    Attack.eot_pgd: AttackFamily.iterative_gradient,
    Attack.bpda: AttackFamily.iterative_gradient,
    Attack.cw: AttackFamily.iterative_gradient,
    Attack.autoattack: AttackFamily.autoattack,
    Attack.autoattack_fast: AttackFamily.autoattack,
    Attack.autoattack_standard: AttackFamily.autoattack,
    Attack.square: AttackFamily.query_based,
    Attack.uap: AttackFamily.universal,
    Attack.certified: AttackFamily.certified,
    Attack.other: AttackFamily.other,
}


def attack_family(attack: pd.Series) -> pd.Series:
    """The :class:`AttackFamily` value of every attack (``other`` for an unknown text)."""
    table = {a.value: f.value for a, f in ATTACK_FAMILY.items()}
    return attack.astype(str).map(table).fillna(AttackFamily.other.value)

RIGOUR_COMPONENTS = ("attack_strength", "epsilon_stated", "n_test_known", "verbatim", "not_transfer_only", "robust_below_clean")
MAX_SCORE = 7


def rigour_scores(results: pd.DataFrame) -> pd.DataFrame:
    """One row per result (same index): each component, ``rigour_score`` (0-7) and ``high_risk``."""
    r = results
    attack = r["attack"].astype(str)
    steps_known = r["steps"].notna() if "steps" in r else pd.Series(False, index=r.index)
    strong = attack.isin(["autoattack", "certified"])
    iterative = attack.isin(["pgd", "cw", "square", "uap"]) & steps_known
    out = pd.DataFrame(index=r.index)
    out["attack_strength"] = np.where(strong, 2, np.where(iterative, 1, 0))
    out["epsilon_stated"] = (r["epsilon"].notna() | attack.eq("certified")).astype(int)
    out["n_test_known"] = r["n_test"].notna().astype(int)
    out["verbatim"] = r["provenance"].astype(str).isin(["verbatim", "replication"]).astype(int)
    out["not_transfer_only"] = (r["threat_model"].astype(str) != "transfer").astype(int)
    above = (r["robust_acc_compressed"] > r["clean_acc_compressed"]) | (r["robust_acc_dense"] > r["clean_acc_dense"])
    out["robust_below_clean"] = (~above.fillna(False)).astype(int)
    out["rigour_score"] = out[list(RIGOUR_COMPONENTS)].sum(axis=1)
    masking = r["gradient_masking"].fillna(False).astype(bool) if "gradient_masking" in r else False
    out["high_risk"] = (out["attack_strength"] == 0) | (out["epsilon_stated"] == 0) | (out["robust_below_clean"] == 0) | masking
    return out
