"""The fake Knowlarity pushes to leadhub over real HTTP on loopback (uvicorn in a thread)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from leadhub.api.app import create_app
from leadhub.config import Settings
from leadhub.db.models import Call, IntakeEvent
from leadhub.integrations.knowlarity.fake_server import FakeKnowlarity, fake_calls

from .conftest import WEBHOOK_KEY


@pytest.fixture
def live_url(engine: Engine, settings: Settings, factory: sessionmaker[Session]) -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    config = uvicorn.Config(create_app(settings, engine), host="127.0.0.1", port=port, log_level="warning",
                            ws="none", lifespan="off", access_log=False)  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    yield f"http://127.0.0.1:{port}/webhooks/knowlarity"
    server.should_exit = True
    thread.join(timeout=10)


def test_pushes_in_every_shape_over_http_and_redelivered_are_one_call_each(
    live_url: str, factory: sessionmaker[Session]
) -> None:
    records = fake_calls(3, callers=2, seed=11)
    with FakeKnowlarity(app_key="a", sr_key="s") as fake:
        for record, shape in zip(records, ("get", "form", "json"), strict=True):
            statuses = [
                fake.push(live_url, record, key=WEBHOOK_KEY, shape=shape).json()["status"] for _ in range(2)
            ]
            assert statuses[1] == "duplicate" and statuses[0] in ("created", "attached")
        assert fake.push(live_url, records[0], key="not-the-key-at-all-123").status_code == 401
    with factory() as s:
        assert s.execute(select(func.count()).select_from(Call)).scalar_one() == 3
        assert s.execute(select(func.count()).select_from(IntakeEvent)).scalar_one() == 3
