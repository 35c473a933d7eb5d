"""Run Alembic programmatically: `leadhub db upgrade`, `leadhub db sql`, and the readiness check."""

from __future__ import annotations

import io
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from leadhub.db.session import make_engine, normalize_url

MIGRATIONS = Path(__file__).parent / "migrations"


def _config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", normalize_url(url).render_as_string(hide_password=False))
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config("sqlite://")).get_current_head()
    assert head is not None
    return head


def upgrade(url: str, revision: str = "head") -> None:
    engine = make_engine(url, pool_size=1, max_overflow=0)
    try:
        upgrade_engine(engine, revision)
    finally:
        engine.dispose()


def upgrade_engine(engine: Engine, revision: str = "head") -> None:
    cfg = _config(engine.url.render_as_string(hide_password=False))
    with engine.connect() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)
        connection.commit()


def upgrade_sql(url: str, revision: str = "head", *, since: str | None = None) -> str:
    """The SQL the upgrade would run, for a DBA to review or paste into the Supabase SQL editor."""
    buffer = io.StringIO()
    cfg = _config(url)
    cfg.output_buffer = buffer
    command.upgrade(cfg, f"{since}:{revision}" if since else revision, sql=True)
    return buffer.getvalue()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
