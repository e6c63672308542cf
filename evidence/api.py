"""One-call set-up: connect, create or migrate the schema, and load the seed into an empty database."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from .db import get_engine, upgrade_schema
from .models import Study
from .seed import load_seed
from .store import ImportReport

__all__ = ["InitResult", "init_database", "is_empty"]


@dataclass
class InitResult:
    url: str
    revision: str
    seed_report: ImportReport | None  # None: the database already held evidence

    def to_text(self) -> str:
        head = f"database {self.url} at schema revision {self.revision}"
        if self.seed_report is None:
            return head + "\nseed: not loaded (the database already holds evidence)"
        return head + "\n" + self.seed_report.to_text()


def is_empty(engine: Engine) -> bool:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(Study.__table__)).scalar_one() == 0


def init_database(url: str | None = None, *, load: bool = True) -> tuple[Engine, InitResult]:
    """Create or migrate the schema; load the seed if the database holds no study. Safe to repeat."""
    engine = get_engine(url)
    revision = upgrade_schema(engine)
    report = load_seed(engine) if load and is_empty(engine) else None
    return engine, InitResult(engine.url.render_as_string(hide_password=True), revision, report)
