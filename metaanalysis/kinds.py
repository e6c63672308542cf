"""Evaluation kinds: what a row measured, threat model × adversarial training × attack family.

An untargeted PGD loss, a universal perturbation, a certified bound and a transfer attack measure
different constructs, so one pooled number over several kinds is not an answer to anything. The
answers pool per kind (:mod:`metaanalysis.answers`); a stand-alone analysis over the database
(``crev meta run``, ``sensitivity``, ``bias``, ``multiverse``) calls :func:`require_one_kind`, which
refuses with the kinds listed unless the rows are filtered to one kind or pooling is asked for
explicitly (``--pool-kinds``). Reference: Carlini N et al. (2019), On evaluating adversarial
robustness, arXiv:1902.06705 (why attack families are not interchangeable).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from .models.uni import MetaInputError
from .rigour import attack_family

__all__ = ["EvaluationKind", "with_families", "kind_groups", "kind_counts", "require_one_kind"]


@dataclass(frozen=True)
class EvaluationKind:
    """What was measured: threat model × adversarial training × attack family."""

    threat_model: str
    adversarial_training: str
    attack_family: str

    @property
    def label(self) -> str:
        at = {"yes": "with adversarial training", "no": "without adversarial training"}.get(self.adversarial_training,
                                                                                             f"adversarial training: {self.adversarial_training}")
        return f"{self.threat_model.replace('_', '-')}, {self.attack_family}, {at}"


def with_families(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` (effects or results) with its ``attack_family`` column."""
    frame = frame.copy()
    if len(frame):
        frame["attack_family"] = attack_family(frame["attack"])
    return frame


def kind_groups(frame: pd.DataFrame):
    """``frame`` (with ``attack_family``) grouped by evaluation kind, in sorted order."""
    return frame.groupby([frame["threat_model"].astype(str), frame["adversarial_training"].astype(str), frame["attack_family"]], sort=True)


def kind_counts(frame: pd.DataFrame) -> list[tuple[EvaluationKind, int, int]]:
    """Each evaluation kind in ``frame`` (effects or results) with its rows and studies."""
    if not len(frame):
        return []
    f = with_families(frame)
    study = "study" if "study" in f else "study_id"
    return [(EvaluationKind(*key), len(g), g[study].nunique()) for key, g in kind_groups(f)]


def require_one_kind(frame: pd.DataFrame, pool_kinds: bool = False) -> list[tuple[EvaluationKind, int, int]]:
    """The kinds of ``frame``; raises :class:`MetaInputError` listing them where there are several
    and ``pool_kinds`` is not set (one pooled number over incomparable constructs)."""
    kinds = kind_counts(frame)
    if len(kinds) > 1 and not pool_kinds:
        listed = "; ".join(f"{k.label} (k = {n:,}, {s} stud{'y' if s == 1 else 'ies'})" for k, n, s in kinds)
        raise MetaInputError(f"the rows hold {len(kinds)} evaluation kinds, which measure different things and are not pooled silently: "
                             f"{listed}. Filter to one kind (--threat, --adv, --attack), use `crev meta answer` (per kind), "
                             "or pass --pool-kinds to pool them anyway")
    return kinds
