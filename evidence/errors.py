"""Errors a user can act on: each names the file, row, column and reason."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Problem", "EvidenceError", "ValidationFailed", "NotFound"]


@dataclass(frozen=True)
class Problem:
    """One problem in one cell of an input file. ``row`` is the 1-based data row (header = row 0)."""

    file: str
    row: int | None
    column: str | None
    reason: str

    def __str__(self) -> str:
        where = [self.file]
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column:
            where.append(f"column {self.column}")
        return f"{', '.join(where)}: {self.reason}"


class EvidenceError(Exception):
    """Base class of every error the evidence package raises on purpose."""


class ValidationFailed(EvidenceError):
    """Input that failed validation; nothing was written. ``problems`` lists every problem."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        head = f"{len(self.problems)} problem(s), nothing was written"
        super().__init__(head + ":\n" + "\n".join(f"  {p}" for p in self.problems[:50]))


class NotFound(EvidenceError):
    """An id that names no entry."""
