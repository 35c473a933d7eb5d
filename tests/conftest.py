"""Test databases: every test runs on SQLite, or on PostgreSQL when LEADHUB_TEST_DATABASE_URL says so.

PostgreSQL runs get a database of their own, created for the session and dropped after it; each test
starts from empty tables (truncated), so concurrency tests can commit across real connections.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from leadhub.auth.roles import seed_built_in_roles
from leadhub.config import get_settings
from leadhub.db import migrate
from leadhub.db.session import make_engine, make_session_factory, session_scope
from leadhub.leads.reasons import seed_default_reasons

TEST_URL = os.environ.get("LEADHUB_TEST_DATABASE_URL", "")
ON_POSTGRES = TEST_URL.startswith("postgres")
REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("LEADHUB_SHARED_DIR", REPO.parent / "shared"))


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def fresh_database(tmp_dir: Path) -> Iterator[str]:
    """An empty database of the kind this run tests, dropped afterwards. Yields its URL."""
    if not ON_POSTGRES:
        yield f"sqlite:///{tmp_dir / f'{uuid.uuid4().hex}.db'}"
        return
    name = f"leadhub_t_{uuid.uuid4().hex[:12]}"
    admin = _libpq(TEST_URL)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(TEST_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def psql(url: str, *args: str) -> None:
    """Run psql against a test database (used to build legacy fixtures with ../shared/legacy/fixture.sql)."""
    import subprocess

    subprocess.run(
        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", _libpq(url), *args],
        check=True,
        capture_output=True,
        text=True,
    )


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with fresh_database(tmp_path_factory.mktemp("db")) as url:
        migrate.upgrade(url)
        yield url


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    eng = make_engine(database_url, pool_size=40, max_overflow=10)
    yield eng
    eng.dispose()


def _tables(engine: Engine) -> list[str]:
    import leadhub.db.models  # noqa: F401  (registers every table)
    from leadhub.db.base import Base

    return [t.name for t in reversed(Base.metadata.sorted_tables)]


def empty_database(engine: Engine) -> None:
    """Every table emptied (ids start at 1 again), the built-in roles and reasons seeded again."""
    tables = _tables(engine)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                conn.execute(text(f"DELETE FROM {table}"))
            conn.execute(text("DELETE FROM sqlite_sequence"))  # ids start at 1 again (revision 0016)
    with session_scope(make_session_factory(engine)) as session:  # revisions 0007 and 0008 seed these
        seed_built_in_roles(session)
        seed_default_reasons(session)


@pytest.fixture
def factory(engine: Engine) -> sessionmaker[Session]:
    """A session factory on empty tables."""
    empty_database(engine)
    return make_session_factory(engine)


@pytest.fixture
def session(factory: sessionmaker[Session]) -> Iterator[Session]:
    with factory() as s:
        yield s
        s.rollback()


@pytest.fixture(autouse=True)
def _no_cached_settings() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


requires_postgres = pytest.mark.skipif(
    not ON_POSTGRES, reason="PostgreSQL-only behaviour (run with the PG URL)"
)
