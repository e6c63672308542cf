"""Database connection: URL resolution, engine set-up, schema migration and the write rules.

The default database is an SQLite file in the user's data directory, in WAL mode, so the app and a
replication job can write at once. ``CREV_DB`` (or the CLI's ``--db``) names any SQLAlchemy URL,
for example ``postgresql+psycopg://user@localhost/crev``. The schema is created and upgraded with
Alembic (``evidence/migrations``) so a user's database survives upgrades.

Failures a user can meet (a damaged, truncated or empty file, an unknown URL scheme, a server that
does not answer) become :class:`~evidence.errors.DatabaseError` naming the database (password
hidden) and the reason. Checking the schema only reads; the write lock (SQLite) or the advisory
lock (PostgreSQL) is taken only when a migration is due, so a long import never blocks another
command's start-up. A write the database refuses through an integrity constraint (migration 0003)
becomes :class:`~evidence.errors.Conflict`.
"""

from __future__ import annotations

import os
import stat
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session

from .errors import Conflict, DatabaseError, NotAuthorized

__all__ = [
    "default_url",
    "resolve_url",
    "get_engine",
    "writer",
    "session_scope",
    "upgrade_schema",
    "schema_revision",
    "head_revision",
    "describe",
    "database_error",
    "init_lock",
    "SCHEMES",
]

_MIGRATIONS = Path(__file__).with_name("migrations")
SCHEMES = ("sqlite", "postgresql")  # SQLAlchemy dialects the schema and its constraints are written for
_SQLITE_MAGIC = b"SQLite format 3\x00"
_LOCK_KEY = 0x63726576  # "crev": the PostgreSQL advisory-lock key for schema migration
_INIT_KEY = _LOCK_KEY + 1  # held around set-up (migration + first load); a different key, or the two would deadlock


def default_url() -> str:
    """``sqlite:///<user data dir>/crev/evidence.db``."""
    from platformdirs import user_data_dir

    folder = Path(user_data_dir("crev", appauthor=False))
    if not folder.exists():
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)  # owner only (docs/SECURITY.md)
    return f"sqlite:///{folder / 'evidence.db'}"


def resolve_url(url: str | None = None) -> str:
    """The explicit URL, else ``CREV_DB``, else the default SQLite file. A bare path is accepted."""
    url = url or os.environ.get("CREV_DB") or default_url()
    if "://" not in url:
        url = f"sqlite:///{Path(url).expanduser().resolve()}"
    return url


def describe(url: str | sa.engine.URL | Engine) -> str:
    """The database as a user may see it: the URL with its password hidden."""
    if isinstance(url, Engine):
        url = url.url
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True) if isinstance(url, str) else url.render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<unparseable database URL>"


def _check_url(url: str) -> sa.engine.URL:
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        raise DatabaseError(f"database URL {describe(url)!r} is not a URL such as sqlite:///path/evidence.db or postgresql+psycopg://user@host/db") from None
    if parsed.get_backend_name() not in SCHEMES:
        raise DatabaseError(
            f"database {describe(parsed)}: unsupported scheme {parsed.drivername!r} (use sqlite:///FILE or postgresql+psycopg://...)"
        )
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        _check_sqlite_file(Path(parsed.database), describe(parsed))
    return parsed


def _check_sqlite_file(path: Path, shown: str) -> None:
    """Refuse a path that is not an SQLite database, before SQLite silently treats it as an empty one."""
    if path.is_dir():
        raise DatabaseError(f"database {shown}: {path} is a directory, not an SQLite file")
    if not path.exists():
        if not path.parent.is_dir():
            raise DatabaseError(f"database {shown}: folder {path.parent} does not exist")
        return  # a new database is created here
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(_SQLITE_MAGIC))
    except OSError as exc:
        raise DatabaseError(f"database {shown}: cannot read {path}: {exc.strerror or exc}") from None
    if not head:
        raise DatabaseError(
            f"database {shown}: {path} is an empty (0-byte) file, not an SQLite database; "
            "remove it to create a new database there"
        )
    if head != _SQLITE_MAGIC:
        raise DatabaseError(f"database {shown}: {path} is not an SQLite database (damaged, or another kind of file)")


def database_error(exc: BaseException, target) -> DatabaseError:
    """A one-line :class:`DatabaseError` naming ``target`` (URL or engine) for a driver error."""
    orig = getattr(exc, "orig", None) or exc
    text = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
    low = text.lower()
    if "malformed" in low or "not a database" in low or "disk image" in low:
        reason = f"the file is damaged or truncated ({text})"
    elif "database is locked" in low:
        reason = "another process holds the write lock and did not release it within the busy timeout; try again later"
    elif isinstance(exc, sa.exc.OperationalError) and ("connect" in low or "connection" in low):
        reason = f"cannot connect ({text})"
    else:
        reason = text
    return DatabaseError(f"database {describe(target)}: {reason}")


def _owner_only_if_new(database: str | None) -> None:
    """Make a database file SQLite has just created (still 0 bytes) readable and writable by its owner only.

    Done before the first write (the WAL pragma), so the ``-wal`` and ``-shm`` files SQLite creates
    next take the same 600 mode (SQLite gives them the database file's permissions).
    """
    if database in (None, "", ":memory:") or str(database).startswith("file:"):
        return
    try:
        st = os.stat(database)
        if st.st_size == 0 and stat.S_ISREG(st.st_mode) and st.st_mode & 0o077:
            os.chmod(database, 0o600)
    except OSError:  # not ours to change (another user's file): SQLite reports what matters
        pass


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # pragma: no cover - exercised through every test
        dbapi_conn.isolation_level = None  # let SQLAlchemy's BEGIN below drive transactions
        _owner_only_if_new(engine.url.database)
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
    """A cached engine for ``url`` (resolved with :func:`resolve_url`); ``DatabaseError`` if unusable.

    An existing SQLite file must start with SQLite's header: a zero-byte or foreign file is refused
    rather than silently becoming an empty database.
    """
    resolved = resolve_url(url)
    _check_url(resolved)
    try:
        return _engine_for(resolved)
    except (sa.exc.NoSuchModuleError, ImportError) as exc:
        raise DatabaseError(f"database {describe(resolved)}: no driver for {sa.engine.make_url(resolved).drivername!r} ({exc})") from None
    except sa.exc.ArgumentError as exc:
        raise DatabaseError(f"database {describe(resolved)}: {exc}") from None


def writer(engine: Engine) -> Engine:
    """The same engine, marked so that its transactions take SQLite's write lock when they begin."""
    return engine.execution_options(crev_write=True)


def _constraint_message(exc: sa.exc.IntegrityError) -> str:
    text = str(getattr(exc, "orig", exc))
    name = getattr(getattr(getattr(exc, "orig", None), "diag", None), "constraint_name", None) or ""
    both = f"{name} {text}"
    if "fingerprint" in both:
        return "a result with the same study, setting and numbers is already stored or pending (written by another process at the same time?); nothing was written"
    if "current" in both or ".uid" in both or "study_id" in both and "current" in both:
        return "another version of the same entry became current at the same time; nothing was written, review again"
    return f"the database refused the write ({text.splitlines()[0] if text else 'integrity constraint'}); nothing was written"


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A write session that commits on success and rolls back everything on any error.

    Constraint violations become :class:`Conflict`, and driver failures :class:`DatabaseError`,
    both one line naming what happened.
    """
    session = Session(writer(engine), expire_on_commit=False)
    try:
        yield session
        session.commit()
    except sa.exc.IntegrityError as exc:
        session.rollback()
        raise Conflict(_constraint_message(exc)) from exc
    except sa.exc.OperationalError as exc:
        session.rollback()
        raise database_error(exc, engine) from exc
    except sa.exc.ProgrammingError as exc:
        session.rollback()
        # 42501 insufficient_privilege: a missing GRANT, or a review trigger of migration 0005 refusing
        if getattr(exc.orig, "sqlstate", None) == "42501" or "permission denied" in str(exc.orig).lower():
            user = engine.url.username or "this role"
            raise NotAuthorized(f"database {describe(engine)}: {user} may not make this change ({str(exc.orig).splitlines()[0]})") from exc
        raise
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def _alembic_config(engine: Engine):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return cfg


@lru_cache(maxsize=1)
def head_revision() -> str:
    """The newest migration this code knows."""
    from alembic.script import ScriptDirectory

    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    return ScriptDirectory.from_config(cfg).get_current_head() or ""


def upgrade_schema(engine: Engine) -> str:
    """Create or migrate the schema to the newest revision; returns that revision.

    The check reads only. When a migration is due it runs under SQLite's write lock or, on
    PostgreSQL, a transaction-scoped advisory lock, and re-checks the revision under the lock, so
    processes starting at once migrate once and the others wait, then find nothing to do.
    """
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    from alembic.script import ScriptDirectory

    head = head_revision()
    current = schema_revision(engine)
    if current == head:
        return head
    cfg = _alembic_config(engine)
    if current is not None:
        try:
            ScriptDirectory.from_config(cfg).get_revision(current)
        except Exception:  # alembic's CommandError / ResolutionError: a revision this code has never seen
            raise DatabaseError(
                f"database {describe(engine)}: its schema is at revision {current!r}, newer than this crev knows "
                f"(newest {head}); upgrade crev (it will not write to a database it does not understand)"
            ) from None
    try:
        with writer(engine).begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_LOCK_KEY})")
            if MigrationContext.configure(conn).get_current_revision() != head:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
    except (sa.exc.OperationalError, sa.exc.DatabaseError) as exc:
        raise database_error(exc, engine) from exc
    return schema_revision(engine) or ""


def schema_revision(engine: Engine) -> str | None:
    """The Alembic revision the database is at, ``None`` for an empty database."""
    from alembic.runtime.migration import MigrationContext

    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except (sa.exc.OperationalError, sa.exc.DatabaseError) as exc:
        raise database_error(exc, engine) from exc


@contextmanager
def init_lock(engine: Engine) -> Iterator[None]:
    """Serialise first-time set-up (schema + first load) between processes starting at once.

    PostgreSQL: a session-level advisory lock on a connection held for the block. SQLite: an
    exclusive ``flock`` on ``<file>.init-lock`` beside the database (POSIX; elsewhere, and for
    in-memory databases, no lock is needed or taken).
    """
    if engine.dialect.name == "postgresql":
        try:
            conn = engine.connect()
        except sa.exc.OperationalError as exc:
            raise database_error(exc, engine) from exc
        try:
            conn.exec_driver_sql(f"SELECT pg_advisory_lock({_INIT_KEY})")
            conn.commit()
            yield
        finally:
            try:
                conn.exec_driver_sql(f"SELECT pg_advisory_unlock({_INIT_KEY})")
                conn.commit()
            finally:
                conn.close()
        return
    db = engine.url.database
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        fcntl = None
    if not db or db == ":memory:" or fcntl is None:
        yield
        return
    with open(os.open(f"{db}.init-lock", os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600), "a+b") as fh:  # owner only, like the database
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
