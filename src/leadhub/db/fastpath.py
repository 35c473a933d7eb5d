"""Autocommit psycopg connections for the one-statement hot path on PostgreSQL (the Knowlarity push).

A push is one call of a server-side function (revision 0006). Through a SQLAlchemy Session it costs
BEGIN, the call and COMMIT, a pool ping, a hop to a worker thread, and about 0.6 ms of Python CPU
for the layers. Here it is one statement on an autocommit connection (so it is its own
transaction), awaited on the server's event loop. Everything else keeps the Session.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from sqlalchemy import Engine

from leadhub.errors import DatabaseUnavailable

log = logging.getLogger(__name__)
# How these connections show in pg_stat_activity.
APPLICATION_NAME = "leadhub-webhook"


class StatementPool:
    """A pool of autocommit connections, opened on first use in the event loop that uses it."""

    def __init__(self, engine: Engine, *, max_size: int) -> None:
        url = engine.url.set(drivername="postgresql")
        self._conninfo = url.render_as_string(hide_password=False)
        self._max_size = max_size
        self._pool: AsyncConnectionPool | None = None
        self._lock: asyncio.Lock | None = None
        self._check: asyncio.Task[None] | None = None

    async def _open(self) -> AsyncConnectionPool:
        self._lock = self._lock or asyncio.Lock()
        async with self._lock:
            if self._pool is None:
                pool = AsyncConnectionPool(
                    self._conninfo,
                    min_size=1,
                    max_size=self._max_size,
                    kwargs={"autocommit": True, "application_name": APPLICATION_NAME},
                    name="leadhub-statements",
                    open=False,
                )
                await pool.open()
                self._pool = pool
            return self._pool

    async def call_json(self, sql: str, payload: str, *, resend_conflicts: bool = True) -> Any:
        """Run `sql` (one %s placeholder, a JSON document) and return the single value it selects.

        Only for idempotent statements: a connection the server dropped (a restart, a pooler's idle
        timeout) is discarded by the pool and the statement is sent once more on a fresh one. If the
        first attempt had committed, the second finds its inbox row and answers "duplicate".
        With `resend_conflicts` False, a deadlock or serialization failure is raised as it is (a
        psycopg error) for the caller to retry its own way.
        """
        pool = self._pool or await self._open()
        try:
            async with pool.connection() as conn:
                return await _one(conn, sql, payload)
        except PoolTimeout as error:  # saturated, not broken: a fresh connection would only add load
            raise DatabaseUnavailable("the database is busy; nothing was stored, please retry") from error
        except psycopg.OperationalError as error:
            if not resend_conflicts and is_conflict(error):
                raise
            if not _retryable(error):
                raise DatabaseUnavailable(
                    "the database refused the write; nothing was stored, please retry"
                ) from error
            log.warning(
                "database connection lost, deadlock or concurrent write (%s); sending the statement once more",
                type(error).__name__,
            )
        # The server may have dropped every pooled connection (a restart): check them in the background
        # and send this statement on a connection of its own.
        self._check = asyncio.get_running_loop().create_task(pool.check())  # a reference keeps it alive
        try:
            async with await psycopg.AsyncConnection.connect(
                self._conninfo, autocommit=True, application_name=APPLICATION_NAME, connect_timeout=10
            ) as fresh:
                return await _one(fresh, sql, payload)
        except psycopg.OperationalError as error:
            raise DatabaseUnavailable(
                "the database is unreachable; nothing was stored, please retry"
            ) from error

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


async def _one(conn: psycopg.AsyncConnection[Any], sql: str, payload: str) -> Any:
    cursor = await conn.execute(sql, (payload,))
    row = await cursor.fetchone()
    assert row is not None
    return row[0]


def is_conflict(error: BaseException) -> bool:
    """A deadlock or a serialization failure: the transaction lost a race and kept nothing."""
    return isinstance(error, psycopg.Error) and error.sqlstate in ("40P01", "40001")


def _retryable(error: psycopg.OperationalError) -> bool:
    """A dropped connection, a deadlock or a serialization failure (revision 0012: the same event was
    recorded concurrently): worth one more attempt (the statement is idempotent)."""
    return error.sqlstate is None or error.sqlstate.startswith(("08", "57P")) or is_conflict(error)
