"""Evaluation rigour: a risk-of-bias score for each adversarial-robustness result.

After Carlini N, Athalye A, Papernot N, et al. (2019), "On Evaluating Adversarial Robustness"
(arXiv:1902.06705), and Athalye, Carlini & Wagner (2018) on adaptive attacks: a robustness number is
only as good as the attack behind it and the care with which it was reported. Each component is
kept, not only the total, so a reader sees *why* a result is rated as it is, and each can enter a
meta-regression as a moderator (:func:`metaanalysis.sensitivity.rigour_moderators`).

Components (higher is better):

- ``attack_strength`` 2: AutoAttack (standard or unspecified), certified bounds, or an adaptive
  attack against masking (PGD++, EOT-PGD, BPDA); 1: a per-image iterative or optimisation attack
  (PGD, CW) with its steps known — stated, or the documented default of the named library
  (``steps_text`` "library default": foolbox 3 and advertorch PGD 40, torchattacks PGD 10,
  ART PGD 100, cleverhans PGD 40) — APGD and a reduced AutoAttack (parameter-free), or a
  query attack (Square) with its budget stated; 0: FGSM, a universal perturbation (one
  perturbation for every image: not a per-image worst case), an unnamed attack, or an iterative
  attack whose steps are unknown.
- ``epsilon_stated`` 1 if the perturbation budget is known.
- ``n_test_known`` 1 if the number of evaluated images is known.
- ``verbatim`` 1 if the number was copied from the source or measured by a replication, 0 if derived.
- ``not_transfer_only`` 0 for a transfer-only evaluation (it can overstate robustness).
- ``robust_below_clean`` 0 if a robust accuracy exceeds the clean one by more than binomial noise
  on the same images (a sign of a broken evaluation). Not assessed (1) where the row says clean and
  robust accuracy come from different image sets (e.g. robust on the first 1,000 images, clean on
  the full test set): there the comparison means nothing; ``same_images`` records it.

A result is **high risk** when its attack is weak or unknown, its epsilon is not stated, its robust
accuracy exceeds clean accuracy, or a replication check flagged possible gradient masking.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np
import pandas as pd

from evidence.vocab import Attack

__all__ = ["RIGOUR_COMPONENTS", "rigour_scores", "AttackFamily", "ATTACK_FAMILY", "attack_family", "LIBRARY_DEFAULT_STEPS", "ATTACK_STRENGTH"]


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

# documented default iteration counts of PGD in common libraries (their docs / signatures)
LIBRARY_DEFAULT_STEPS = {"foolbox": 40, "advertorch": 40, "cleverhans": 40, "torchattacks": 10, "adversarial robustness toolbox": 100, "art ": 100}

# attack strength without conditions (2, or 0); the others need their steps (or query budget) known
ATTACK_STRENGTH = {
    Attack.autoattack: 2, Attack.autoattack_standard: 2, Attack.certified: 2, Attack.pgd_pp: 2, Attack.eot_pgd: 2, Attack.bpda: 2,
    Attack.apgd: 1, Attack.autoattack_fast: 1, Attack.fgsm: 0, Attack.uap: 0, Attack.other: 0,
}
_NEEDS_STEPS = (Attack.pgd, Attack.cw)
_DIFFERENT_IMAGES = r"attack set:.*first \d+|clean acc(?:uracy)? from .*(?:test split|full test)|robust on a subset|different (?:images|subset)"


def _library_default_steps(r: pd.DataFrame) -> pd.Series:
    """Steps of a PGD run with "library default" steps, from the library named in the attack text."""
    out = pd.Series(np.nan, index=r.index)
    if "steps_text" not in r or "attack_text" not in r:
        return out
    default = r["steps_text"].astype(str).str.contains("default", case=False, na=False)
    text = r["attack_text"].astype(str).str.lower()
    for lib, steps in LIBRARY_DEFAULT_STEPS.items():
        out[default & text.str.contains(lib, regex=False) & out.isna()] = steps
    return out


def rigour_scores(results: pd.DataFrame) -> pd.DataFrame:
    """One row per result (same index): each component, ``rigour_score`` (0-7), ``high_risk``,
    ``steps_effective`` (stated or library-default steps) and ``same_images``."""
    r = results
    attack = r["attack"].astype(str)
    steps = pd.to_numeric(r["steps"], errors="coerce") if "steps" in r else pd.Series(np.nan, index=r.index)
    steps = steps.fillna(_library_default_steps(r))
    queries = pd.to_numeric(r["attack_queries"], errors="coerce") if "attack_queries" in r else pd.Series(np.nan, index=r.index)
    strength = attack.map({a.value: v for a, v in ATTACK_STRENGTH.items()})
    needs = attack.isin([a.value for a in _NEEDS_STEPS])
    strength = strength.where(~needs, np.where(steps.notna(), 1, 0))
    square = attack.eq(Attack.square.value)
    strength = strength.where(~square, np.where(queries.notna() | steps.notna(), 1, 0))
    out = pd.DataFrame(index=r.index)
    out["attack_strength"] = strength.fillna(0).astype(int)
    out["epsilon_stated"] = (r["epsilon"].notna() | attack.eq("certified")).astype(int)
    out["n_test_known"] = r["n_test"].notna().astype(int)
    out["verbatim"] = r["provenance"].astype(str).isin(["verbatim", "replication"]).astype(int)
    out["not_transfer_only"] = (r["threat_model"].astype(str) != "transfer").astype(int)
    text = r["notes"].astype(str) if "notes" in r else pd.Series("", index=r.index)
    same = ~text.str.contains(_DIFFERENT_IMAGES, case=False, regex=True, na=False)
    n = pd.to_numeric(r["n_test"], errors="coerce").astype(float)
    above = pd.Series(False, index=r.index)
    for rob, cl in (("robust_acc_compressed", "clean_acc_compressed"), ("robust_acc_dense", "clean_acc_dense")):
        c = r[cl].astype(float) / 100
        noise = 2 * np.sqrt((c * (1 - c)).clip(lower=0.25 / n.fillna(1000) ** 2) / n.fillna(1000))  # 2 binomial SEs
        above |= ((r[rob].astype(float) - r[cl].astype(float)) / 100 > noise).fillna(False)
    out["robust_below_clean"] = (~(above & same)).astype(int)
    out["same_images"] = same.astype(bool)
    out["steps_effective"] = steps
    out["rigour_score"] = out[list(RIGOUR_COMPONENTS)].sum(axis=1)
    masking = r["gradient_masking"].fillna(False).astype(bool) if "gradient_masking" in r else False
    out["high_risk"] = (out["attack_strength"] == 0) | (out["epsilon_stated"] == 0) | (out["robust_below_clean"] == 0) | masking
    return out
