"""Database connection: URL resolution, engine set-up and schema migration.

The default database is an SQLite file in the user's data directory, in WAL mode, so the app and a
replication job can write at once. ``CREV_DB`` (or the CLI's ``--db``) names any SQLAlchemy URL,
for example ``postgresql+psycopg://user@localhost/crev``. The schema is created and upgraded with
Alembic (``evidence/migrations``) so a user's database survives upgrades.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session

__all__ = ["default_url", "resolve_url", "get_engine", "writer", "session_scope", "upgrade_schema", "schema_revision"]

_MIGRATIONS = Path(__file__).with_name("migrations")


def default_url() -> str:
    """``sqlite:///<user data dir>/crev/evidence.db``."""
    from platformdirs import user_data_dir

    folder = Path(user_data_dir("crev", appauthor=False))
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'evidence.db'}"


def resolve_url(url: str | None = None) -> str:
    """The explicit URL, else ``CREV_DB``, else the default SQLite file. A bare path is accepted."""
    url = url or os.environ.get("CREV_DB") or default_url()
    if "://" not in url:
        url = f"sqlite:///{Path(url).expanduser().resolve()}"
    return url


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # pragma: no cover - exercised through every test
        dbapi_conn.isolation_level = None  # let SQLAlchemy's BEGIN below drive transactions
        cur = dbapi_conn.cursor()
        if engine.url.database not in (None, "", ":memory:"):
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA mmap_size=268435456")
        cur.execute("PRAGMA cache_size=-65536")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):  # pragma: no cover - exercised through every test
        # A write transaction takes the write lock up front (IMMEDIATE): concurrent writers then wait
        # on busy_timeout instead of failing with "database is locked" when a read transaction tries
        # to upgrade to a write. Reads stay DEFERRED, so in WAL mode they never wait for a writer.
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("crev_write") else "BEGIN")


@lru_cache(maxsize=16)
def _engine_for(url: str) -> Engine:
    if url.startswith("sqlite"):
        kwargs: dict = {"connect_args": {"check_same_thread": False, "timeout": 60}}
        if url in ("sqlite://", "sqlite:///:memory:"):
            from sqlalchemy.pool import StaticPool

            kwargs["poolclass"] = StaticPool
        engine = sa.create_engine(url, **kwargs)
        _sqlite_setup(engine)
    else:
        engine = sa.create_engine(url, pool_pre_ping=True)
    return engine


def get_engine(url: str | None = None) -> Engine:
    """A cached engine for ``url`` (resolved with :func:`resolve_url`)."""
    return _engine_for(resolve_url(url))


def writer(engine: Engine) -> Engine:
    """The same engine, marked so that its transactions take SQLite's write lock when they begin."""
    return engine.execution_options(crev_write=True)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A write session that commits on success and rolls back everything on any error."""
    session = Session(writer(engine), expire_on_commit=False)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def _alembic_config(engine: Engine):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return cfg


def upgrade_schema(engine: Engine) -> str:
    """Create or migrate the schema to the newest revision; returns that revision."""
    from alembic import command

    cfg = _alembic_config(engine)
    with writer(engine).begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    return schema_revision(engine) or ""


def schema_revision(engine: Engine) -> str | None:
    """The Alembic revision the database is at, ``None`` for an empty database."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
