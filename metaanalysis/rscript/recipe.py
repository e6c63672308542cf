"""What an R script must reproduce, read off the objects that ran the fit.

A :class:`FitRecipe` holds the effect table the fit used (with the id column of every random level),
the model (``rma.uni`` / ``rma.mv``, estimator, random structure), the moderators exactly as
:func:`~metaanalysis.models.design.design_matrix` coded them (``TermCoding``: numbers as is, squares,
treatment dummies against the first level in crev's order), the tests (z, Knapp–Hartung, t with
``dfs = "contain"``, or cluster-robust CR0/CR1/CR2 with its omnibus test) and the fitted result whose
numbers the script is to reproduce. :class:`Provenance` is the script's header: crev's version, the
evidence (release and content hash, the live database, or an input file), the filters and the command.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import metadata

import pandas as pd

from ..models.design import Design, TermCoding
from ..models.results import MetaResult
from ..models.structure import EFFECT_LEVEL, random_structure
from ..models.uni import MetaInputError

__all__ = ["LIVE_DATABASE", "FitRecipe", "Provenance", "crev_version", "evidence_text", "recipe_for", "recipe_from_analysis"]

LIVE_DATABASE = "live database (not pinned to a release)"


def crev_version() -> str:
    """The installed crev version (``unknown`` when run from a tree that is not installed)."""
    try:
        return metadata.version("crev")
    except metadata.PackageNotFoundError:
        return "unknown"


def evidence_text(release: str | None = None, content_hash: str | None = None) -> str:
    """Which evidence an analysis read, as its script's header says it: a release and its content hash, or the live database."""
    return f"release {release} (content hash {content_hash})" if release else LIVE_DATABASE


@dataclass(frozen=True)
class Provenance:
    """The script's header: which crev, which evidence, which filters, which command."""

    evidence: str  # "release 2026.1 (content hash sha256:...)", "live database (not pinned to a release)" or "input file x.csv"
    command: str
    filters: str = "none"
    crev: str = field(default_factory=crev_version)

    def lines(self) -> list[str]:
        return [f"crev version: {self.crev}", f"evidence: {self.evidence}", f"filters: {self.filters}", f"command: {self.command}"]


@dataclass(frozen=True)
class FitRecipe:
    """One fitted model, as the R script must rebuild it (see the module docstring)."""

    data: pd.DataFrame  # the rows that entered the model, in order, with the columns the script reads
    fit: MetaResult
    levels: tuple[str, ...]  # random-level columns, outer to inner; () for rma.uni
    coding: tuple[TermCoding, ...]
    method: str
    test: str  # "z" | "knha" | "t" (t: dfs = "contain" for rma.mv)
    robust: str | None = None  # "CR2" | "CR1" | "CR0"
    robust_cluster: str | None = None
    omnibus: str = "HTZ"
    level: float = 0.95
    yi: str = "yi"
    vi: str = "vi"

    @property
    def model(self) -> str:
        return self.fit.model

    @property
    def coef_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.fit.coefficients)

    @property
    def large_clusters(self) -> int:
        """The largest robust cluster when crev used its O(k) symmetric-root CR2 (0 when it used clubSandwich's form)."""
        if self.fit.extra.get("cr2_form") != "symmetric":
            return 0
        return int(self.data[self.robust_cluster].astype(str).value_counts().max())

    def columns(self) -> list[str]:
        """The columns of the effect table the script reads, ids first."""
        cols = [c for c in ("uid", "study_id", "study") if c in self.data]
        for c in (*self.levels, *([self.robust_cluster] if self.robust_cluster else []), *(t.column for t in self.coding), self.yi, self.vi):
            if c not in cols:
                cols.append(c)
        return cols


def recipe_for(fit: MetaResult, data: pd.DataFrame, design: Design | None, levels: tuple[str, ...], *, method: str, test: str,
               robust_cluster: str | None = None, omnibus: str = "HTZ", level: float = 0.95, yi: str = "yi", vi: str = "vi") -> FitRecipe:
    """The recipe of ``fit`` over ``data`` (the rows that entered, random-level columns present)."""
    if len(data) != fit.k:
        raise MetaInputError(f"the effect table has {len(data)} rows but the fit used {fit.k}: cannot write its R script")
    robust = fit.test if fit.test in ("CR2", "CR1", "CR0") else None
    if robust and not robust_cluster:
        raise MetaInputError("a cluster-robust fit needs its cluster column for the R script")
    if EFFECT_LEVEL in levels and EFFECT_LEVEL not in data:
        data = data.assign(**{EFFECT_LEVEL: range(1, len(data) + 1)})
    coding = design.coding if design is not None else ()
    return FitRecipe(data.reset_index(drop=True), fit, tuple(levels), tuple(coding), method.upper(), test, robust,
                     robust_cluster if robust else None, omnibus, level, yi, vi)


def recipe_from_analysis(an) -> FitRecipe:
    """The recipe of a :class:`~metaanalysis.analysis.Analysis` (database or table fit)."""
    fit, spec = an.fit, an.spec
    levels: tuple[str, ...] = ()
    data = an.effects
    if fit.model == "rma.mv":
        data, _, _ = random_structure(an.effects, spec.random)
        levels = tuple(fit.extra.get("random_columns", ()))
        if EFFECT_LEVEL in levels:
            data = data.assign(**{EFFECT_LEVEL: range(1, len(data) + 1)})
    test = "knha" if fit.test == "knha" else ("t" if fit.test == "t" else "z")
    method = "FE" if spec.model == "common" else spec.method
    return recipe_for(fit, data, an.design, levels, method=method, test=test, robust_cluster=fit.extra.get("robust_cluster"),
                      omnibus=spec.omnibus, level=spec.level)

