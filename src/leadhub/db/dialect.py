"""The one place that picks dialect-specific statements (INSERT ... ON CONFLICT exists in both)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import InstrumentedAttribute, Session


def dialect_name(session: Session) -> str:
    return session.get_bind().dialect.name


def upsert(session: Session, model: Any) -> postgresql.Insert | sqlite.Insert:
    """`insert(model)` with `.on_conflict_do_nothing()` available on both databases."""
    if dialect_name(session) == "postgresql":
        return postgresql.insert(model)
    return sqlite.insert(model)


def name_contains(column: InstrumentedAttribute[str | None], text: str) -> ColumnElement[bool]:
    """Case-insensitive "contains" on both databases, LIKE's wildcards in `text` matched literally."""
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return func.lower(column).like(f"%{escaped}%", escape="\\")
