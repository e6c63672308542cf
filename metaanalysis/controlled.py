"""The project's own controlled replications, reported beside the literature and never pooled with it.

A replication (``source_kind = replication``, study ``crev_replications``) re-runs a claim on a small
controlled model with fixed seeds and a known test split. Pooled as one more "study" it would count
as if it were an independent published evaluation (and, with hundreds of rows, dominate a pool of
three studies), so :func:`metaanalysis.compute_effects` keeps it out by default
(:class:`metaanalysis.effects.EffectSource`) and :func:`metaanalysis.answer` gives one
:class:`ReplicationLine` per evaluation kind next to the literature's answer: its own estimate (the
replication rows as one study: clusters and effects as the random levels, t tests with
``dfs = "contain"``, as :func:`metaanalysis.analysis.study_estimate`), the seeds, the test-set
sizes and the claims it checks with their replication verdicts.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import pandas as pd

from .analysis import AnalysisSpec, study_estimate
from .models.results import clean

__all__ = ["ReplicationLine", "replication_line"]


@dataclass(frozen=True)
class ReplicationLine:
    """The controlled replication of one evaluation kind under one question."""

    kind_label: str
    k: int
    estimate: float
    ci_low: float
    ci_high: float
    n_seeds: int
    n_test_min: int
    n_test_max: int
    claims: tuple[str, ...]  # "claim uid (verdict)"; empty where the runs check no coded claim
    unit: str

    def to_dict(self) -> dict:
        return clean(asdict(self))

    @property
    def text(self) -> str:
        n = f"n_test {self.n_test_min:,}" if self.n_test_min == self.n_test_max else f"n_test {self.n_test_min:,}-{self.n_test_max:,}"
        u = " pp" if self.unit == "pp" else ""
        checks = f"; checks {', '.join(self.claims)}" if self.claims else "; checks no coded claim"
        return (f"controlled replication ({self.kind_label}; k = {self.k}, {self.n_seeds} seed{'' if self.n_seeds == 1 else 's'}, {n}): "
                f"{self.estimate:+.1f}{u} [{self.ci_low:+.1f}, {self.ci_high:+.1f}]{checks}; not pooled with the literature")


def _seed(row: pd.Series) -> str:
    try:
        return str(json.loads(row["replication_json"])["seed"])
    except (TypeError, ValueError, KeyError):
        return str(row.get("cluster", "")).rsplit(":", 1)[-1]


def replication_line(g: pd.DataFrame, kind_label: str, spec: AnalysisSpec, unit: str) -> ReplicationLine | None:
    """One evaluation kind's replication rows summarised, or None where they cannot be estimated."""
    if not len(g):
        return None
    rows = g.assign(study="crev_replications")
    e = study_estimate(rows, "crev_replications", spec)
    if e is None:
        return None
    seeds = {_seed(r) for _, r in g.iterrows()} if "replication_json" in g or "cluster" in g else set()
    claims: list[str] = []
    if "claim_uid" in g:
        for uid, sub in g.dropna(subset=["claim_uid"]).groupby("claim_uid", sort=True):
            verdicts = sorted(set(sub["verdict"].dropna().astype(str))) if "verdict" in sub else []
            claims.append(f"{uid} ({'/'.join(verdicts) or 'no verdict'})")
    n_test = g["n_test"].astype(float)
    return ReplicationLine(kind_label, len(g), e.estimate, e.ci_low, e.ci_high, max(len(seeds), 1), int(n_test.min()), int(n_test.max()),
                           tuple(claims), unit)
