"""Shared fixtures: fresh and seeded databases on SQLite (always) and PostgreSQL (when configured)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa

from evidence import get_engine, init_database
from evidence.db import _engine_for

PG_URL = os.environ.get("CREV_TEST_POSTGRES_URL")
PG_SKIP_REASON = (
    "CREV_TEST_POSTGRES_URL is not set: PostgreSQL tests run in CI (.ci/run starts a PostgreSQL 15 server) "
    "or locally after exporting CREV_TEST_POSTGRES_URL=postgresql+psycopg://user@host/db"
)
DATA = Path(__file__).parent / "data"


def _reset_postgres(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA public CASCADE")
        conn.exec_driver_sql("CREATE SCHEMA public")
    engine.dispose()
    _engine_for.cache_clear()


@pytest.fixture(params=["sqlite", "postgres"])
def empty_url(request, tmp_path) -> str:
    """URL of an empty database with no schema, on each backend."""
    if request.param == "postgres":
        if not PG_URL:
            pytest.skip(PG_SKIP_REASON)
        _reset_postgres(PG_URL)
        return PG_URL
    return f"sqlite:///{tmp_path / 'empty.db'}"


@pytest.fixture(scope="session")
def seeded_template(tmp_path_factory) -> Path:
    """One seeded SQLite file per test session, copied by :func:`seeded_url` for each test."""
    path = tmp_path_factory.mktemp("seed") / "seeded.db"
    engine, _ = init_database(f"sqlite:///{path}")
    engine.dispose()  # closing the last connection checkpoints the WAL into the file
    _engine_for.cache_clear()
    return path


@pytest.fixture
def seeded_url(seeded_template, tmp_path) -> str:
    """A private copy of the seeded SQLite database."""
    dest = tmp_path / "seeded.db"
    shutil.copy(seeded_template, dest)
    wal = seeded_template.with_name(seeded_template.name + "-wal")
    if wal.exists():
        shutil.copy(wal, dest.with_name(dest.name + "-wal"))
    return f"sqlite:///{dest}"


@pytest.fixture
def seeded(seeded_url):
    return get_engine(seeded_url)


@pytest.fixture(params=["sqlite", "postgres"])
def seeded_any(request, seeded_url):
    """A seeded database on each backend (PostgreSQL loads the seed afresh)."""
    if request.param == "sqlite":
        return get_engine(seeded_url)
    if not PG_URL:
        pytest.skip(PG_SKIP_REASON)
    _reset_postgres(PG_URL)
    engine, _ = init_database(PG_URL)
    return engine
