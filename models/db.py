"""Engine, sessions and schema upgrades.

SQLite (the embedded default) runs in WAL mode with a busy timeout so the service and the CLI can share one
file. Every SQLite transaction starts with BEGIN IMMEDIATE: writers queue on the busy timeout instead of
failing with SQLITE_BUSY when a read transaction later tries to write.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, Executable, event, text
from sqlalchemy.engine import CursorResult, make_url
from sqlmodel import Session, create_engine

import models  # noqa: F401  (registers the tables)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def _plain_savepoints(engine: Engine) -> Engine:
    """SAVEPOINT, RELEASE SAVEPOINT and ROLLBACK TO SAVEPOINT sent as the plain strings SQLAlchemy would compile.

    SQLAlchemy builds and compiles a new clause object for each of them (they are not in its statement cache),
    ~70 µs a pair here; the callback's writer takes one savepoint per message. Names are its own sa_savepoint_N.
    """
    dialect: Any = engine.dialect
    dialect.do_savepoint = lambda conn, name: conn.exec_driver_sql(f"SAVEPOINT {name}")
    dialect.do_release_savepoint = lambda conn, name: conn.exec_driver_sql(f"RELEASE SAVEPOINT {name}")
    dialect.do_rollback_to_savepoint = lambda conn, name: conn.exec_driver_sql(f"ROLLBACK TO SAVEPOINT {name}")
    return engine


def make_engine(url: str, *, echo: bool = False, busy_timeout_ms: int = 5000, pool_size: int = 10) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return _plain_savepoints(
            create_engine(url, echo=echo, pool_pre_ping=True, pool_size=pool_size, max_overflow=pool_size)
        )

    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        echo=echo,
        connect_args={"check_same_thread": False, "timeout": busy_timeout_ms / 1000},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # let SQLAlchemy's "begin" below own the transaction
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return _plain_savepoints(engine)


def new_session(engine: Engine) -> Session:
    return Session(engine, expire_on_commit=False)


def execute_core(session: Session, statement: Executable, params: Any = None) -> CursorResult[Any]:
    """A Core statement on the session's connection, inside its current transaction or savepoint.

    For hot paths that skip ORM objects: no autoflush, no identity map. The caller keeps ORM objects of the same
    rows (if any) in step itself.
    """
    return session.connection().execute(statement, params)


def insert_id(session: Session, statement: Executable, params: dict[str, Any]) -> int:
    """Insert one row with a Core INSERT and return its new primary key (RETURNING or lastrowid)."""
    key = execute_core(session, statement, params).inserted_primary_key
    assert key is not None
    return int(key[0])


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A unit of work: commit on success, roll back on any error. Handlers inside never commit."""
    session = new_session(engine)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    cfg.attributes["engine"] = engine
    return cfg


def schema_is_current(engine: Engine) -> bool:
    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
        conn.rollback()
    return current == head


def upgrade_schema(engine: Engine) -> None:
    """Bring the schema to the newest migration; cheap when it is already there."""
    if schema_is_current(engine):
        return
    command.upgrade(alembic_config(engine), "head")


def database_answers(engine: Engine) -> bool:
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            conn.rollback()
        return True
    except Exception:
        return False
