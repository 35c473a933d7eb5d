"""The providers note's example pushes (../shared/providers/knowlarity.md §1.5) and a webhook client."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from leadhub.api.app import create_app
from leadhub.config import Settings

WEBHOOK_KEY = "w" * 32

P1_IVR: dict[str, Any] = {
    "dispnumber": "+918000000010",
    "extension": "None",
    "callid": "ec8a4ba6-0000-4e71-888f-000000000001",
    "call_duration": "7",
    "destination": "Welcome Sound",
    "caller_id": "+919000000011",
    "end_time": "2016-09-27 09:19:34.667036+05:30",
    "action": "6",
    "timezone": "Asia/Kolkata",
    "resource_url": "",
    "hangup_cause": "900",
    "type": "dtmf",
    "start_time": "2016-09-27 03:49:44.391601+00:00",
    "call_type": "incoming",
}
P2_MISSED: dict[str, Any] = {
    "customer_missed_number": "",
    "agent_missed_number": "",
    "dispnumber": "+918000000012",
    "extension": "None",
    "callid": "4cd60251-0000-4345-b9a6-000000000002",
    "call_duration": "0",
    "destination": "Missed Call",
    "caller_id": "+919000000012",
    "end_time": "2020-01-22 13:38:52.218728+05:30",
    "action": "8",
    "timezone": "Asia/Kolkata",
    "resource_url": "",
    "hangup_cause": "900",
    "type": "missed call",
    "start_time": "2020-01-22 13:38:52.218728+05:30",
    "call_type": "incoming",
}
P3_ANSWERED: dict[str, Any] = {
    "dispnumber": "+918000000010",
    "callid": "11111111-2222-4333-8444-555555555555",
    "caller_id": "+919000000013",
    "destination": "+917000000100",
    "call_duration": "182",
    "start_time": "2025-12-06 11:11:21.000000+05:30",
    "end_time": "2025-12-06 11:14:23.000000+05:30",
    "timezone": "Asia/Kolkata",
    "resource_url": "https://recordings.example/p3.mp3",
    "call_type": "incoming",
}
EXAMPLES = {"P1": P1_IVR, "P2": P2_MISSED, "P3": P3_ANSWERED}
# (answered, duration) each example must come out as.
EXPECTED = {"P1": (False, 7), "P2": (False, 0), "P3": (True, 182)}


@pytest.fixture
def settings(engine: Engine) -> Settings:
    return Settings(database_url=str(engine.url), knowlarity_webhook_key=SecretStr(WEBHOOK_KEY))


@pytest.fixture
def client(engine: Engine, factory: sessionmaker[Session], settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings, engine), raise_server_exceptions=False) as c:
        yield c


def send(client: TestClient, payload: dict[str, Any], shape: str, *, key: str | None = WEBHOOK_KEY) -> Any:
    """Deliver a push as Knowlarity would: GET query string, POST form, or POST JSON."""
    params = {"key": key} if key else {}
    if shape == "get":
        return client.get("/webhooks/knowlarity", params={**payload, **params})
    if shape == "form":
        return client.post("/webhooks/knowlarity", params=params, data=payload)
    return client.post("/webhooks/knowlarity", params=params, json=payload)
