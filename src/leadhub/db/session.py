"""Engines and sessions for SQLite (embedded) and PostgreSQL (psycopg 3), and the one commit point."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

from leadhub.db.types import json_dumps
from leadhub.errors import NotConfiguredError

MIN_SQLITE = (3, 35, 0)  # INSERT ... ON CONFLICT ... RETURNING


def normalize_url(url: str) -> URL:
    """Accept the URLs people paste (Supabase gives `postgres://` and `postgresql://`) and pick psycopg 3."""
    parsed = make_url(url)
    if parsed.drivername in ("postgres", "postgresql", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername not in ("postgresql+psycopg", "sqlite", "sqlite+pysqlite"):
        raise NotConfiguredError(
            f"unsupported database URL scheme {parsed.drivername!r}: use sqlite:///path or postgresql://..."
        )
    return parsed


def make_engine(url: str, *, pool_size: int = 10, max_overflow: int = 10, echo: bool = False) -> Engine:
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, echo=echo)
    return create_engine(
        parsed,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=True,
        echo=echo,
        json_serializer=json_dumps,  # jsonb refuses NUL characters; payloads sometimes carry them
    )


def _sqlite_engine(url: URL, *, echo: bool) -> Engine:
    if sqlite3.sqlite_version_info < MIN_SQLITE:
        raise NotConfiguredError(
            f"SQLite {sqlite3.sqlite_version} is too old; leadhub needs {'.'.join(map(str, MIN_SQLITE))} or newer"
        )
    engine = create_engine(url, echo=echo, connect_args={"check_same_thread": False, "timeout": 60})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, open transactions, so that BEGIN IMMEDIATE below applies.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Take the write lock up front: a deferred transaction that later writes can fail with
        # SQLITE_BUSY without waiting, which is how concurrent intakes would lose work.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A unit of work: commits when the block ends normally, rolls back otherwise."""
    with factory() as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
