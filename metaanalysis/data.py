"""Reading the evidence database into effect tables (the one place this package touches it)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from sqlalchemy.engine import Engine

from evidence import ResultFilter, list_claims, list_studies, query_results

from .effects import EffectSettings, EffectTable, compute_effects

__all__ = ["EvidenceSnapshot", "canonical_order", "load_snapshot", "load_effects"]


@dataclass
class EvidenceSnapshot:
    results: pd.DataFrame
    studies: pd.DataFrame
    claims: pd.DataFrame


def canonical_order(results: pd.DataFrame) -> pd.DataFrame:
    """The results in an order that is the same in every database holding the same rows: by study and
    content fingerprint (code-point order, in Python: the backends' text collations differ). A release
    loaded into another database gets other row ids; sorted this way, two fits of the same evidence see
    the same rows in the same order and agree to the last bit, not only to the solver's tolerance."""
    keys = [c for c in ("study_id", "fingerprint") if c in results.columns]
    if not keys or not len(results):
        return results
    return results.sort_values(keys, kind="stable", key=lambda col: col.astype(str)).reset_index(drop=True)


def load_snapshot(engine: Engine, filt: ResultFilter | None = None) -> EvidenceSnapshot:
    """Approved, current evidence (filtered results in :func:`canonical_order`; all studies and claims)."""
    return EvidenceSnapshot(canonical_order(query_results(engine, filt)), list_studies(engine), list_claims(engine))


def load_effects(engine: Engine, filt: ResultFilter | None = None, settings: EffectSettings | None = None) -> EffectTable:
    """The effects of the approved, current results matching ``filt`` (rows in :func:`canonical_order`)."""
    return compute_effects(canonical_order(query_results(engine, filt)), settings)
