"""Schemathesis against the OpenAPI schema, on a real database: no request the schema allows (or
nearly allows) makes the API answer 5xx. Authenticated as the operator's admin key, with a few
leads, customers and a user in the database so that ids in paths sometimes exist."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from pydantic import SecretStr
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from leadhub.api.app import create_app
from leadhub.auth import users
from leadhub.config import Settings
from leadhub.db.models import Branch
from leadhub.db.session import session_scope
from leadhub.leads.intake import Channel, Intake, ingest

ADMIN_KEY = "k" * 32


@pytest.fixture
def api_schema(engine: Engine, factory: sessionmaker[Session]) -> Any:
    with session_scope(factory) as s:
        branch = Branch(name="Pune")
        s.add(branch)
        s.flush()
        users.create_user(s, username="asha", role="CRE", password="correct horse battery")
        for i in range(3):
            ingest(
                s, Intake(source=Channel.WEBSITE, phone=f"98333 0000{i}", branch_id=branch.id, name=f"C {i}")
            )
    app = create_app(Settings(database_url=str(engine.url), admin_api_key=SecretStr(ADMIN_KEY),
                              secret_key=SecretStr("s" * 48)), engine)  # fmt: skip
    # The staff API; the vendor webhooks have their own tests (and answer 503 when not configured).
    return schemathesis.openapi.from_asgi("/openapi.json", app).include(path_regex="^/api/")


def test_no_request_makes_the_api_fail_with_5xx(api_schema: Any) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 20  # the whole staff API is in the schema
    failures: list[str] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case: Any) -> None:
            response = case.call(headers={"X-API-Key": ADMIN_KEY})
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:200]}"
                )

        check()
    assert not failures, "\n".join(failures[:10])
