"""One poller per channel, wherever pollers are started.

PostgreSQL: a session-level advisory lock held on a dedicated connection for the poller's lifetime;
it is released when the process exits or its connection drops, so a crashed poller never blocks the
next. SQLite: an exclusive `fcntl` lock on a file beside the database, released the same way.
"""

from __future__ import annotations

import fcntl
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, text


def _key(name: str) -> int:
    # A stable signed 64-bit key (hashtext() is not guaranteed stable across PostgreSQL versions).
    return int.from_bytes(hashlib.sha256(f"leadhub.poller.{name}".encode()).digest()[:8], "big", signed=True)


@contextmanager
def poller_lock(engine: Engine, name: str) -> Iterator[bool]:
    """Yield True while this process holds the `name` poller lock, False if another process does."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            acquired = bool(
                connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": _key(name)}).scalar()
            )
            connection.commit()
            try:
                yield acquired
            finally:
                if acquired:
                    connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _key(name)})
                    connection.commit()
        return
    database = engine.url.database
    lock_path = Path(f"{database}.{name}.lock") if database and database != ":memory:" else None
    if lock_path is None:
        yield True  # an in-memory database is private to this process
        return
    with lock_path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
