from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from leadhub.api.app import create_app
from leadhub.config import Settings
from leadhub.db.session import session_scope
from leadhub.integrations.meta import service
from leadhub.integrations.meta.client import GraphClient
from leadhub.integrations.meta.fake_server import FakeGraph, running_fake_graph
from leadhub.integrations.meta.sync import make_client

APP_SECRET = "app-secret-for-tests-0123456789"
VERIFY = "verify-token-for-tests"
PAGE, TOKEN = "100000000000001", "page-token-1"
FORM = "300000000000001"


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    with running_fake_graph() as fake:
        fake.add_page(PAGE, TOKEN)
        fake.add_form(FORM, PAGE, custom=("which_branch_is_nearest_to_you?",))
        yield fake


@pytest.fixture
def settings(engine: Engine, graph: FakeGraph) -> Settings:
    return Settings(
        database_url=str(engine.url),
        meta_app_secret=SecretStr(APP_SECRET),
        meta_verify_token=SecretStr(VERIFY),
        meta_graph_url=graph.url,
        meta_fetch_attempts=2,
        meta_retry_base_delay=0.01,
        meta_max_rate_wait_seconds=1,
        admin_api_key=SecretStr("k" * 32),
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[GraphClient]:
    with make_client(settings) as c:
        yield c


@pytest.fixture
def configured(
    factory: sessionmaker[Session], graph: FakeGraph, client: GraphClient
) -> sessionmaker[Session]:
    """The page stored and its forms discovered, as an operator does with `leadhub channels meta`."""
    with session_scope(factory) as s:
        service.save_page(s, page_id=PAGE, token=TOKEN, name="Acme Motors")
        service.discover_forms(s, client, page_id=PAGE)
    return factory


@pytest.fixture
def api(settings: Settings, engine: Engine, configured: sessionmaker[Session]) -> Iterator[TestClient]:
    app = create_app(settings, engine)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c
    fetcher = getattr(app.state, "meta_fetcher", None)
    if fetcher is not None:
        fetcher.shutdown(wait=True)


def wait_for_fetches(api: TestClient) -> None:
    fetcher = getattr(api.app.state, "meta_fetcher", None)  # type: ignore[attr-defined]
    if fetcher is not None:
        fetcher.shutdown(wait=True)
        api.app.state.meta_fetcher = None  # type: ignore[attr-defined]
