"""Shared fixtures: fresh and seeded databases on SQLite (always) and PostgreSQL (when configured).

The evidence suite runs on both backends: in ``tests/test_evidence_*.py`` every test that takes
``seeded`` is parametrised over ``sqlite`` and ``postgres`` (through the ``backend`` fixture). A
seeded PostgreSQL database is a copy of a template database seeded once per session
(``CREATE DATABASE ... TEMPLATE``), as fast as copying the SQLite file. Other packages' tests
(meta, app) keep the SQLite ``seeded`` database.
"""

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
BACKENDS = ("sqlite", "postgres")


def _reset_postgres(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA public CASCADE")
        conn.exec_driver_sql("CREATE SCHEMA public")
    engine.dispose()
    _engine_for.cache_clear()


def _pg_admin():
    """An autocommit engine on the server's ``postgres`` database (to create and drop databases)."""
    url = sa.engine.make_url(PG_URL).set(database="postgres")
    return sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)


def _pg_url_for(database: str) -> str:
    return sa.engine.make_url(PG_URL).set(database=database).render_as_string(hide_password=False)


def pytest_generate_tests(metafunc):
    """Run the evidence suite's ``seeded`` tests on both backends."""
    module = metafunc.module.__name__.rsplit(".", 1)[-1]
    if "backend" in metafunc.fixturenames and module.startswith("test_evidence_") and "seeded_url" not in metafunc.fixturenames:
        metafunc.parametrize("backend", BACKENDS, indirect=True)


@pytest.fixture
def backend(request) -> str:
    """``sqlite`` or ``postgres`` (skipped without ``CREV_TEST_POSTGRES_URL``)."""
    name = getattr(request, "param", "sqlite")
    if name == "postgres" and not PG_URL:
        pytest.skip(PG_SKIP_REASON)
    return name


@pytest.fixture(params=BACKENDS)
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


@pytest.fixture(scope="session")
def pg_seeded_template() -> str:
    """Name of a PostgreSQL database seeded once per session (``<test db>_seeded_tpl``)."""
    if not PG_URL:
        pytest.skip(PG_SKIP_REASON)
    name = f"{sa.engine.make_url(PG_URL).database}_seeded_tpl"
    admin = _pg_admin()
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine, _ = init_database(_pg_url_for(name))
    engine.dispose()  # a template database must have no open connections
    _engine_for.cache_clear()
    admin.dispose()
    return name


def _pg_seeded_copy(template: str):
    """The test database, recreated as a copy of the seeded template; its engine."""
    name = sa.engine.make_url(PG_URL).database
    _engine_for.cache_clear()
    admin = _pg_admin()
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    admin.dispose()
    return get_engine(PG_URL)


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
def seeded(backend, request, seeded_template, tmp_path):
    """A seeded database: a private SQLite copy, or (evidence suite, ``postgres``) a PostgreSQL copy."""
    if backend == "postgres":
        return _pg_seeded_copy(request.getfixturevalue("pg_seeded_template"))
    return get_engine(request.getfixturevalue("seeded_url"))


@pytest.fixture(params=BACKENDS)
def seeded_any(request, seeded_template, tmp_path):
    """A seeded database on each backend (for tests outside the evidence modules too)."""
    if request.param == "sqlite":
        return get_engine(request.getfixturevalue("seeded_url"))
    if not PG_URL:
        pytest.skip(PG_SKIP_REASON)
    return _pg_seeded_copy(request.getfixturevalue("pg_seeded_template"))
