"""Model matrices from a moderator formula such as ``"family + sparsity + sparsity^2"``.

Terms are joined by ``+``. A numeric column enters as is, ``x^2`` as its square; a text (or
boolean) column becomes treatment dummies against its first level in alphabetical order, as R's
``factor()`` does, named ``column[level]``. Rows where a moderator is missing cannot enter the
model: they are reported, not dropped silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .uni import MetaInputError

__all__ = ["ALIASES", "Design", "TermCoding", "design_matrix", "parse_formula"]

ALIASES = {
    "family": "compression_family",
    "adv": "adversarial_training",
    "at": "adversarial_training",
    "threat": "threat_model",
    "eps": "epsilon",
    "bit": "bits",
    "bit_width": "bits",
}


@dataclass(frozen=True)
class TermCoding:
    """How one term entered the model matrix: a number as is, its square, or treatment dummies of a
    factor against ``levels[0]`` (the levels in the order the columns were made)."""

    term: str
    column: str
    kind: str  # "numeric" | "square" | "factor"
    levels: tuple[str, ...] = ()


@dataclass
class Design:
    X: np.ndarray
    names: list[str]
    rows: np.ndarray  # boolean mask of the rows used
    dropped_reason: str | None
    terms: list[str]
    coding: tuple[TermCoding, ...] = ()  # one per term, as the columns of X were made (for the R script)


def parse_formula(formula: str | None) -> list[str]:
    if formula is None or not str(formula).strip() or str(formula).strip() in ("1", "~1", "~ 1"):
        return []
    text = str(formula).strip().lstrip("~")
    terms = [t.strip() for t in text.split("+") if t.strip()]
    for t in terms:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\^2)?", t):
            raise MetaInputError(f"cannot read moderator term {t!r}: use column names joined by +, and x^2 for a square")
    return terms


def _column(df: pd.DataFrame, name: str) -> str:
    col = ALIASES.get(name, name)
    if col not in df.columns:
        raise MetaInputError(f"no column {name!r} for a moderator (have: {', '.join(map(str, df.columns[:30]))})")
    return col


def design_matrix(df: pd.DataFrame, formula: str | None, *, intercept: bool = True) -> Design:
    """The model matrix for ``formula`` over ``df``; rows with a missing moderator are left out."""
    terms = parse_formula(formula)
    cols, names = [], []
    rows = np.ones(len(df), dtype=bool)
    missing_in = []
    parts = []
    coding = []
    for t in terms:
        square = t.endswith("^2")
        col = _column(df, t[:-2] if square else t)
        s = df[col]
        miss = s.isna().to_numpy()
        if miss.any():
            missing_in.append(col)
        rows &= ~miss
        parts.append((t, col, square, s))
    for t, col, square, s in parts:
        s = s[rows]
        numeric = pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)
        if numeric:
            x = s.astype(float).to_numpy()
            cols.append(x ** 2 if square else x)
            names.append(f"{col}^2" if square else col)
            coding.append(TermCoding(t, col, "square" if square else "numeric"))
        else:
            if square:
                raise MetaInputError(f"{col} is categorical: it cannot be squared")
            levels = sorted(pd.unique(s.astype(str)))
            if len(levels) < 2:
                raise MetaInputError(f"moderator {col} has a single level ({levels[0] if levels else 'none'}) among the effects: nothing to compare")
            for lvl in levels[1:]:
                cols.append((s.astype(str) == lvl).to_numpy().astype(float))
                names.append(f"{col}[{lvl}]")
            coding.append(TermCoding(t, col, "factor", tuple(levels)))
    n = int(rows.sum())
    if intercept:
        cols.insert(0, np.ones(n))
        names.insert(0, "intrcpt")
    X = np.column_stack(cols) if cols else np.ones((n, 0))
    reason = f"moderator missing ({', '.join(sorted(set(missing_in)))})" if missing_in else None
    return Design(X, names, rows, reason, terms, tuple(coding))
