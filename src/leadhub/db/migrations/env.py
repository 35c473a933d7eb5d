"""Alembic environment: leadhub runs it programmatically (leadhub.db.migrate), never from alembic.ini."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from leadhub.db.base import Base
from leadhub.db.session import make_engine

config = context.config
target_metadata = Base.metadata


def _configure(**kwargs: object) -> None:
    context.configure(
        target_metadata=target_metadata,
        transaction_per_migration=True,
        compare_type=True,
        **kwargs,  # type: ignore[arg-type]
    )


def _run_migrations(connection: Connection) -> None:
    # SQLite changes a table by rebuilding it (revision 0016), which its documented procedure does with
    # foreign keys off, set outside any transaction (inside one the pragma does nothing); the revision
    # then checks them (PRAGMA foreign_key_check) before it commits. Back on afterwards.
    sqlite = connection.dialect.name == "sqlite" and not connection.in_transaction()
    if sqlite:
        connection.connection.dbapi_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
    try:
        _configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
    except BaseException:
        if sqlite and connection.in_transaction():
            connection.rollback()
        raise
    finally:
        if sqlite:
            # Each revision committed its own transaction; what is left (the version read when there
            # was nothing to run) is closed, or the pragma below would do nothing.
            if connection.in_transaction():
                connection.commit()
            connection.connection.dbapi_connection.execute("PRAGMA foreign_keys=ON")  # type: ignore[union-attr]


if context.is_offline_mode():
    _configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    connection: Connection | None = config.attributes.get("connection")
    if connection is not None:
        _run_migrations(connection)
    else:
        engine = make_engine(config.get_main_option("sqlalchemy.url") or "", pool_size=1, max_overflow=0)
        with engine.connect() as conn:
            _run_migrations(conn)
        engine.dispose()
