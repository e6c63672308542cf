"""The importer base class: read a source into a submission and a report; write it through submit()."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import Connection, Engine

from ..errors import Problem, ValidationFailed
from ..submit import ImportReport, SubmissionCreate, submit

__all__ = ["Importer"]


class Importer:
    """Reads one source format. Subclasses set ``name`` and implement :meth:`read`.

    :meth:`read` never writes: it returns the pending submission and the report (with every
    skipped entry and its reason); :meth:`run` writes it, or raises ``ValidationFailed`` (nothing
    written) when nothing in the source could be imported.
    """

    name: str = ""

    def read(self, conn: Connection, source: Path, by: str | None = None) -> tuple[SubmissionCreate, ImportReport]:
        raise NotImplementedError

    def run(self, engine: Engine, source: str | Path, by: str | None = None) -> ImportReport:
        source = Path(source)
        with engine.connect() as conn:
            sub, report = self.read(conn, source, by)
        if sub.is_empty():
            reasons = "; ".join(report.skipped[:5]) or "the source holds no entry"
            raise ValidationFailed([Problem(str(source), None, None, f"nothing to import ({len(report.skipped)} skipped: {reasons})")])
        written = submit(engine, sub)
        report.submission_id, report.written = written.id, True
        return report
