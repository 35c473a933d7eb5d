"""`leadhub sync knowlarity` against the fake Knowlarity on loopback, with faults injected and healed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from leadhub.config import Settings
from leadhub.db.models import Call, Customer, IntakeEvent, Lead, SyncCheckpoint
from leadhub.integrations.http import RetryPolicy
from leadhub.integrations.knowlarity.client import KnowlarityClient
from leadhub.integrations.knowlarity.fake_server import FakeKnowlarity, as_push, fake_calls
from leadhub.integrations.knowlarity.sync import PollerBusy, SyncReport, run_sync
from leadhub.integrations.locks import poller_lock
from leadhub.integrations.status import channel_status

from .conftest import WEBHOOK_KEY

APP_KEY, SR_KEY = "a" * 40, "0b1f6c2e-1111-4c1e-9d2a-aaaaaaaaaaaa"
T0 = datetime(2025, 12, 6, 4, 0, tzinfo=UTC)
UNTIL = T0 + timedelta(hours=2)


@pytest.fixture
def fake() -> Iterator[FakeKnowlarity]:
    with FakeKnowlarity(app_key=APP_KEY, sr_key=SR_KEY) as server:
        yield server


@pytest.fixture
def sync_settings(engine: Engine, fake: FakeKnowlarity) -> Settings:
    return Settings(
        database_url=str(engine.url),
        knowlarity_webhook_key=SecretStr(WEBHOOK_KEY),
        knowlarity_api_url=fake.base_url,
        knowlarity_app_key=SecretStr(APP_KEY),
        knowlarity_sr_key=SecretStr(SR_KEY),
        knowlarity_page_size=7,
        knowlarity_timeout_seconds=0.3,
        knowlarity_sync_overlap_minutes=30,
    )


def _client(settings: Settings, attempts: int = 4) -> KnowlarityClient:
    return KnowlarityClient.from_settings(settings, policy=RetryPolicy(attempts=attempts, base_delay=0.01))


def _sync(engine: Engine, settings: Settings, **kwargs: datetime) -> SyncReport:
    with _client(settings) as client:
        return run_sync(engine, settings, client=client, **kwargs)


def _counts(factory: sessionmaker[Session]) -> tuple[int, int, int, int]:
    with factory() as s:
        return tuple(  # type: ignore[return-value]
            s.execute(select(func.count()).select_from(m)).scalar_one()
            for m in (Call, IntakeEvent, Lead, Customer)
        )


def _checkpoint(factory: sessionmaker[Session]) -> SyncCheckpoint:
    with factory() as s:
        return s.execute(select(SyncCheckpoint)).scalar_one()


def test_sync_ingests_every_call_once_and_moves_the_checkpoint(
    engine: Engine, factory: sessionmaker[Session], fake: FakeKnowlarity, sync_settings: Settings
) -> None:
    fake.add_calls(fake_calls(40, start=T0, callers=25))
    report = _sync(engine, sync_settings, since=T0, until=UNTIL)
    assert report.complete and report.fetched == 40
    assert report.outcomes["created"] == 25 and report.outcomes["attached"] == 15
    assert _counts(factory) == (40, 40, 25, 25)
    checkpoint = _checkpoint(factory)
    assert checkpoint.cursor == UNTIL and checkpoint.last_error is None and checkpoint.last_success_at
    # Every request carried an explicit +05:30 and paged by offset.
    assert all(r["start_time"].endswith("+05:30") and r["end_time"].endswith("+05:30") for r in fake.requests)
    assert [int(r["offset"]) for r in fake.requests] == [0, 7, 14, 21, 28, 35]


def test_faults_then_healed_every_call_exactly_once_and_the_checkpoint_correct(
    engine: Engine, factory: sessionmaker[Session], fake: FakeKnowlarity, sync_settings: Settings
) -> None:
    fake.add_calls(fake_calls(40, start=T0, callers=30))
    # Recoverable faults (each within the retry budget), and records repeated across pages.
    fake.fail_next(2, status=500)
    fake.timeout_next(1, seconds=0.6)
    fake.allow_next(1)
    fake.malformed_next(1)
    fake.fail_next(1, status=429)
    fake.page_delay = 0.05
    fake.duplicate_across_pages = True
    first = _sync(engine, sync_settings, since=T0, until=UNTIL)
    assert first.complete and first.outcomes["repeated_in_run"] > 0
    assert _counts(factory) == (40, 40, 30, 30)
    assert _checkpoint(factory).cursor == UNTIL

    # More calls arrive; Knowlarity then fails past the retry budget after two pages.
    fake.add_calls(fake_calls(20, start=UNTIL + timedelta(minutes=1), callers=20, seed=99))
    later = UNTIL + timedelta(hours=1)
    fake.allow_next(2)
    fake.fail_next(20, status=503)
    broken = _sync(engine, sync_settings, until=later)
    assert not broken.complete and broken.error_kind == "unavailable"
    checkpoint = _checkpoint(factory)
    assert checkpoint.cursor == UNTIL  # never past calls it did not read
    assert checkpoint.error_kind == "unavailable" and checkpoint.last_error
    with factory() as s:
        assert channel_status(s)["problems"]

    fake.heal()
    healed = _sync(engine, sync_settings, until=later)
    assert healed.complete
    assert _counts(factory)[:2] == (60, 60)
    with factory() as s:
        uuids = s.execute(select(Call.call_uuid)).scalars().all()
    assert len(uuids) == len(set(uuids)) == 60
    checkpoint = _checkpoint(factory)
    assert checkpoint.cursor == later and checkpoint.last_error is None


def test_overlapping_windows_pick_up_a_late_record_and_repeat_nothing(
    engine: Engine, factory: sessionmaker[Session], fake: FakeKnowlarity, sync_settings: Settings
) -> None:
    fake.add_calls(fake_calls(10, start=T0))
    _sync(engine, sync_settings, since=T0, until=UNTIL)
    # A record Knowlarity published late: it started 10 minutes before the checkpoint.
    fake.add_calls(fake_calls(1, start=UNTIL - timedelta(minutes=10), seed=5))
    report = _sync(engine, sync_settings, until=UNTIL + timedelta(minutes=5))
    assert report.start == UNTIL - timedelta(minutes=30)
    assert report.outcomes["created"] == 1
    assert _counts(factory)[0] == 11


def test_a_pushed_call_then_polled_is_one_call_enriched_by_the_poll(
    engine: Engine,
    factory: sessionmaker[Session],
    fake: FakeKnowlarity,
    sync_settings: Settings,
    client: TestClient,
) -> None:
    record = fake_calls(1, start=T0, seed=3)[0]
    record["business_call_type"], record["call_duration"], record["agent_number"] = (
        "Call Group",
        90,
        "+917000000100",
    )
    fake.add_calls([record])
    push = as_push(record)
    push["destination"] = ""  # the push did not say who answered; the call log does
    pushed = client.post(f"/webhooks/knowlarity?key={WEBHOOK_KEY}", data=push)
    assert pushed.json()["status"] == "created"
    report = _sync(engine, sync_settings, since=T0, until=UNTIL)
    assert report.outcomes["duplicate"] == 1
    with factory() as s:
        call = s.execute(select(Call)).scalar_one()
    assert call.origin == "push" and call.agent == "+917000000100"
    assert _counts(factory) == (1, 1, 1, 1)


def test_wrong_vendor_keys_are_reported_not_retried(
    engine: Engine, factory: sessionmaker[Session], fake: FakeKnowlarity, sync_settings: Settings
) -> None:
    bad = sync_settings.model_copy(update={"knowlarity_sr_key": SecretStr("nope")})
    report = _sync(engine, bad, since=T0, until=UNTIL)
    assert report.error_kind == "unauthorized" and len(fake.requests) == 0
    assert _checkpoint(factory).error_kind == "unauthorized"


def test_a_second_poller_is_refused(engine: Engine, sync_settings: Settings) -> None:
    with poller_lock(engine, "knowlarity") as held:
        assert held
        with pytest.raises(PollerBusy):
            _sync(engine, sync_settings, since=T0, until=UNTIL)


def test_the_checkpoint_stops_before_a_call_the_database_refused(
    engine: Engine, factory: sessionmaker[Session], fake: FakeKnowlarity, sync_settings: Settings
) -> None:
    from typing import Any

    from sqlalchemy import event
    from sqlalchemy.exc import OperationalError

    records = fake_calls(10, start=T0)
    fake.add_calls(records)
    refused = records[6]

    def refuse(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        # The call's write: the calls INSERT (Python path) or the one server-side call (PostgreSQL).
        writes = (
            statement.lstrip().upper().startswith("INSERT INTO CALLS") or "leadhub_ingest_call" in statement
        )
        if writes and refused["uuid"] in str(params):
            raise OperationalError(statement, params, Exception("disk full"))

    event.listen(engine, "before_cursor_execute", refuse)
    try:
        report = _sync(engine, sync_settings, since=T0, until=UNTIL)
    finally:
        event.remove(engine, "before_cursor_execute", refuse)
    assert report.complete and report.outcomes["not_recorded"] == 1 and report.error_kind == "ingest_failed"
    checkpoint = _checkpoint(factory)
    refused_start = datetime.fromisoformat(refused["start_time"])
    assert checkpoint.cursor == refused_start and checkpoint.error_kind == "ingest_failed"
    with factory() as s:
        uuids = set(s.execute(select(Call.call_uuid)).scalars())
        events = s.execute(select(func.count()).select_from(IntakeEvent)).scalar_one()
    assert refused["uuid"] not in uuids and len(uuids) == 9 and events == 9  # rolled back whole

    healed = _sync(engine, sync_settings, until=UNTIL)  # from the checkpoint minus the overlap
    assert healed.start <= refused_start and healed.outcomes["created"] == 1
    assert _counts(factory)[:2] == (10, 10)
    assert _checkpoint(factory).cursor == UNTIL and _checkpoint(factory).last_error is None
