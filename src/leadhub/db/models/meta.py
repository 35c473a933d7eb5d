"""Meta pages (with their page access tokens) and lead forms (with their branch and field mapping)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Text
from sqlalchemy.orm import Mapped, mapped_column

from leadhub.db.base import Base
from leadhub.db.types import JSONType, UTCDateTime


class MetaPage(Base):
    __tablename__ = "meta_pages"

    page_id: Mapped[str] = mapped_column(Text, primary_key=True)
    name: Mapped[str | None] = mapped_column(Text)
    # A page access token is a credential: never logged, never returned by the API or the CLI.
    access_token: Mapped[str] = mapped_column(Text)
    # Set when Graph rejects the token (code 190); the page's sync stops until a new token is stored.
    token_error: Mapped[str | None] = mapped_column(Text)
    token_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class MetaForm(Base):
    __tablename__ = "meta_forms"

    form_id: Mapped[str] = mapped_column(Text, primary_key=True)
    page_id: Mapped[str] = mapped_column(Text, ForeignKey("meta_pages.page_id"))
    name: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str | None] = mapped_column(Text)  # ACTIVE, ARCHIVED, ... as Meta reports it
    questions: Mapped[Any] = mapped_column(JSONType, nullable=True)  # [{key, label, type}] from discovery
    branch_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("branches.id"))
    source_label: Mapped[str | None] = mapped_column(Text)  # e.g. "Nexon EV Diwali campaign"
    # Custom question key -> name | first_name | last_name | phone | email | city.
    field_map: Mapped[Any] = mapped_column(JSONType, nullable=True)
    sync_enabled: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
