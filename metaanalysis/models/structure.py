"""The random-effects structure as data: nested grouping columns, outer to inner (metafor's
``random = ~ 1 | a/b/c``), their integer codes, and the effect level ``es`` (one unit per effect).

Reference: Viechtbauer W (2010), metafor ``rma.mv`` (nested random effects and the names of their
components: ``a``, ``a/b``, ``a/b/c``); Van den Noortgate et al. (2013) for the effect level.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .design import ALIASES
from .uni import MetaInputError

__all__ = ["EFFECT_LEVEL", "DEFAULT_RANDOM", "Levels", "encode_levels", "parse_random", "random_structure"]

EFFECT_LEVEL = "es"  # the effect level: one unit per effect (added to a table that lacks it)
DEFAULT_RANDOM = ("study", "cluster", EFFECT_LEVEL)  # the database default: study / cluster / effect


def parse_random(text: str | tuple | list | None) -> tuple[str, ...]:
    """``"a/b/c"`` (outer to inner, metafor's ``~ 1 | a/b/c``) as a tuple of column names."""
    if text is None:
        return DEFAULT_RANDOM
    parts = tuple(text) if isinstance(text, (tuple, list)) else tuple(t.strip() for t in str(text).replace("~", "").replace("1 |", "").split("/"))
    parts = tuple(ALIASES.get(p, p) for p in parts if p)
    if not parts:
        raise MetaInputError(f"cannot read the random structure {text!r}: give column names outer to inner, e.g. study/cluster/es")
    if len(set(parts)) != len(parts):
        raise MetaInputError(f"the random structure {text!r} names a column twice")
    return parts


def random_structure(df: pd.DataFrame, names: tuple[str, ...], *, simplify: bool = True) -> tuple[pd.DataFrame, tuple[str, ...], list[str]]:
    """The table with the effect level ``es`` added when named and missing, and the levels that can
    be estimated: an outer level with a single group (confounded with the intercept) and a level
    with the same groups as the next one inside it (not identifiable apart) are dropped, with a note."""
    notes = []
    missing = [n for n in names if n not in df.columns and n != EFFECT_LEVEL]
    if missing:
        raise MetaInputError(f"no column {', '.join(map(repr, missing))} for the random structure (have: {', '.join(map(str, df.columns[:30]))})")
    if EFFECT_LEVEL in names and EFFECT_LEVEL not in df.columns:
        df = df.assign(**{EFFECT_LEVEL: np.arange(len(df))})
    if not simplify:
        return df, names, notes
    keys = list(encode_levels([df[n] for n in names], list(names)).counts)
    kept = []
    for i, n in enumerate(names):
        if keys[i] == 1:
            notes.append(f"random level {n!r} has a single group: dropped (its variance cannot be told from the intercept)")
        elif i > 0 and keys[i] == keys[i - 1] and keys[i - 1] > 1:
            notes.append(f"random level {n!r} has the same groups as {names[i - 1]!r}: dropped (the two variances cannot be told apart)")
        else:
            kept.append(n)
    if not kept:
        raise MetaInputError("no random level with more than one group: no between-unit variance can be estimated")
    return df, tuple(kept), notes




@dataclass(frozen=True)
class Levels:
    """Nested groupings, outer to inner: metafor's component names (``a``, ``a/b``, ``a/b/c``), the
    group of every effect at each level (codes nested: a group lies inside one group of every outer level)."""

    names: tuple[str, ...]
    codes: tuple[np.ndarray, ...]
    counts: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.names)

    def without(self, i: int) -> "Levels":
        keep = [j for j in range(len(self)) if j != i]
        return Levels(tuple(self.names[j] for j in keep), tuple(self.codes[j] for j in keep), tuple(self.counts[j] for j in keep))


def _factor(col) -> tuple[np.ndarray, int]:
    """Codes 0..n-1 of the values in sorted order, and n (``pd.factorize(sort=True)``)."""
    a = col.to_numpy() if isinstance(col, pd.Series) and not isinstance(col.dtype, pd.CategoricalDtype) else col
    if isinstance(a, np.ndarray) and a.dtype.kind in "iu" and len(a) and 0 <= a.min() and a.max() < 4 * len(a) + 64:
        # small non-negative integers (effect ids, nested codes): rank through a bitmap, the same codes in O(k)
        seen = np.zeros(int(a.max()) + 1, dtype=bool)
        seen[a] = True
        rank = np.cumsum(seen) - 1
        return rank[a].astype(np.int64), int(rank[-1] + 1)
    s = pd.Series(col)
    if s.isna().any():
        raise MetaInputError(f"a grouping column has {int(s.isna().sum())} missing value(s)")
    if s.dtype == object:
        s = s.astype(str)
    codes, uniques = pd.factorize(s, sort=True)
    return codes.astype(np.int64), len(uniques)


def encode_levels(groups: Sequence, names: Sequence[str]) -> Levels:
    """Codes of the nested groupings ``groups[0] / groups[1] / ...`` (outer to inner), named as metafor
    names the components of ``~ 1 | a/b/c``: ``a``, ``a/b``, ``a/b/c``."""
    if len(groups) != len(names) or not groups:
        raise MetaInputError("give one name per grouping column, and at least one")
    codes, counts, labels = [], [], []
    prev = None
    for i, col in enumerate(groups):
        c, n = _factor(col)
        if prev is not None:
            c, n = _factor(prev * n + c)
        codes.append(c)
        counts.append(n)
        labels.append("/".join(names[: i + 1]))
        prev = c
    return Levels(tuple(labels), tuple(codes), tuple(counts))
