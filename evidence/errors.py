"""Errors a user can act on: each names the file, row, column and reason (or the database and reason)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

__all__ = ["Problem", "EvidenceError", "ValidationFailed", "NotFound", "DatabaseError", "Conflict", "NotAuthorized", "UnknownValue", "FieldError", "SHOWN_PROBLEMS"]

SHOWN_PROBLEMS = 20  # problems listed one by one; the rest are summarised by column


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
        super().__init__("\n".join(self.lines()))

    def lines(self, limit: int = SHOWN_PROBLEMS) -> list[str]:
        """A head line, the first ``limit`` problems, then the others counted by column.

        A file with a wrong column can have a problem on each of 300,000 rows; a reader needs the
        first few and the count per column, not 300,000 lines.
        """
        out = [f"{len(self.problems)} problem(s), nothing was written:"]
        out += [f"  {p}" for p in self.problems[:limit]]
        rest = self.problems[limit:]
        if rest:
            by_column = Counter(p.column or "(whole row)" for p in rest)
            out.append(f"  ... and {len(rest)} more, by column:")
            for col, n in by_column.most_common():
                first = next(p for p in rest if (p.column or "(whole row)") == col)
                out.append(f"    {col}: {n} row(s), e.g. {first}")
        return out


class NotFound(EvidenceError):
    """An id that names no entry."""


class DatabaseError(EvidenceError):
    """The database cannot be opened or used (damaged file, unknown URL scheme, server unreachable)."""


class Conflict(EvidenceError):
    """A write the database refused because it would break an integrity rule (duplicate, second current version)."""


class NotAuthorized(EvidenceError):
    """An action the acting user may not take (approving their own submission, cancelling another's job)."""


class UnknownValue(EvidenceError, ValueError):
    """A value outside a controlled vocabulary (a filter, an option); the message lists the allowed values."""


class FieldError(ValueError):
    """A value that cannot be read, raised with the field it belongs to (so it is reported under that field)."""

    def __init__(self, field: str, reason: str):
        self.field = field
        super().__init__(reason)
