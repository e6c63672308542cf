"""One-call set-up: connect, create or migrate the schema, and load the shipped curated releases."""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from .db import get_engine, init_lock, upgrade_schema
from .models import Study
from .seed import load_releases
from .submit import ImportReport

__all__ = ["InitResult", "init_database", "is_empty"]


@dataclass
class InitResult:
    url: str
    revision: str
    release_reports: list[ImportReport] = field(default_factory=list)  # the releases loaded by this call

    def to_text(self) -> str:
        head = f"database {self.url} at schema revision {self.revision}"
        if not self.release_reports:
            return head + "\nreleases: none loaded (the database holds every shipped release)"
        return "\n".join([head, *(r.to_text() for r in self.release_reports)])


def is_empty(engine: Engine) -> bool:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(Study.__table__)).scalar_one() == 0


def init_database(url: str | None = None, *, load: bool = True) -> tuple[Engine, InitResult]:
    """Create or migrate the schema; load each shipped release the database does not hold yet
    (all of them on first start, a new one once after an upgrade). Safe to repeat."""
    engine = get_engine(url)
    with init_lock(engine):  # processes starting at once: one migrates and loads, the others then find it done
        revision = upgrade_schema(engine)
        reports = load_releases(engine) if load else []
    return engine, InitResult(engine.url.render_as_string(hide_password=True), revision, reports)
