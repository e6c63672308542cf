"""Reading the evidence database into effect tables (the one place this package touches it)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from sqlalchemy.engine import Engine

from evidence import ResultFilter, list_claims, list_studies, query_results

from .effects import EffectSettings, EffectTable, compute_effects

__all__ = ["EvidenceSnapshot", "load_snapshot", "load_effects"]


@dataclass
class EvidenceSnapshot:
    results: pd.DataFrame
    studies: pd.DataFrame
    claims: pd.DataFrame


def load_snapshot(engine: Engine, filt: ResultFilter | None = None) -> EvidenceSnapshot:
    """Approved, current evidence (filtered results; all studies and claims)."""
    return EvidenceSnapshot(query_results(engine, filt), list_studies(engine), list_claims(engine))


def load_effects(engine: Engine, filt: ResultFilter | None = None, settings: EffectSettings | None = None) -> EffectTable:
    return compute_effects(query_results(engine, filt), settings)
