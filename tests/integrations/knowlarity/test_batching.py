"""Knowlarity pushes written together (integrations/knowlarity/batching.py, revision 0014), on a real
PostgreSQL server: concurrency, a refused call inside a batch, callbacks within a batch, deadlock retry.

Calls that one transaction wrote share their rows' `xmin`, which is how these tests see what a batch
held without looking inside the batcher.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest
from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from leadhub.api.app import create_app
from leadhub.config import Settings
from leadhub.db import migrate
from leadhub.db.fastpath import APPLICATION_NAME, StatementPool
from leadhub.db.models import Call, CallbackTask, Customer, IntakeEvent, Lead
from leadhub.db.session import make_engine
from leadhub.integrations.knowlarity.batching import CallBatcher
from leadhub.integrations.knowlarity.calls import CallIngest
from leadhub.integrations.knowlarity.payloads import CallRecord, parse_push
from tests.conftest import _libpq, fresh_database, requires_postgres

from .conftest import P2_MISSED, P3_ANSWERED, WEBHOOK_KEY, send

T = TypeVar("T")
REFUSED_AGENT = "+917000000199"
BATCHING_LOG = "leadhub.integrations.knowlarity.batching"


def _count(factory: sessionmaker[Session], model: Any) -> int:
    with factory() as s:
        return int(s.execute(select(func.count()).select_from(model)).scalar_one())


def _call(callid: str, caller: str, *, answered: bool = True, start: str = "2025-12-06 11:11:21+05:30",
          **fields: str) -> CallRecord:  # fmt: skip
    base = P3_ANSWERED if answered else P2_MISSED
    return parse_push({**base, "callid": callid, "caller_id": caller, "start_time": start, **fields})


def _with_batcher(engine: Engine, scenario: Callable[[CallBatcher], Awaitable[T]], *, batch_max: int = 64,
                  in_flight: int = 1) -> T:  # fmt: skip
    """Run `scenario` on an event loop of its own with a batcher on a fresh statement pool."""

    async def run() -> T:
        pool = StatementPool(engine, max_size=8)
        try:
            return await scenario(CallBatcher(pool, batch_max=batch_max, in_flight=in_flight))
        finally:
            await pool.close()

    return asyncio.run(run())


def _batches(caplog: pytest.LogCaptureFixture) -> list[int]:
    """The size of each batch committed while `caplog` listened (the batcher logs it at DEBUG)."""
    return [
        int(r.getMessage().split()[3])
        for r in caplog.records
        if r.name == BATCHING_LOG and r.getMessage().endswith("calls committed")
    ]


@requires_postgres
def test_concurrent_pushes_with_redeliveries_are_each_stored_once_and_answered(
    engine: Engine, factory: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    phones = [f"+9198765{n:05d}" for n in range(40)]
    calls = [_call(f"batch-{n}", phones[n % len(phones)], answered=n % 4 != 0) for n in range(240)]
    deliveries = [c for n, c in enumerate(calls) for _ in range(1 + n % 3)]  # 1 to 3 copies of each

    async def scenario(batcher: CallBatcher) -> list[CallIngest]:
        return await asyncio.gather(*(batcher.ingest(c) for c in deliveries))

    with caplog.at_level(logging.DEBUG, logger=BATCHING_LOG):
        answers = _with_batcher(engine, scenario, in_flight=2)
    by_call: dict[str, Counter[str]] = {}
    for call, answer in zip(deliveries, answers, strict=True):
        by_call.setdefault(call.call_uuid, Counter())[answer.status.value] += 1
        assert answer.intake.lead_id is not None and answer.intake.customer_id is not None
    for n, call in enumerate(calls):  # one delivery made or attached the lead, the others are duplicates
        statuses = by_call[call.call_uuid]
        assert statuses["duplicate"] == n % 3 and statuses["created"] + statuses["attached"] == 1
    assert _count(factory, Call) == len(calls)
    assert _count(factory, IntakeEvent) == len(calls)
    assert _count(factory, Customer) == len(phones)
    assert _count(factory, Lead) == len(phones)  # policy attach, unmapped number: one open lead each
    with factory() as s:
        created = s.execute(
            select(func.count()).select_from(IntakeEvent).where(IntakeEvent.outcome == "created")
        )
    assert created.scalar_one() == len(phones)
    # Written together: far fewer transactions than pushes.
    batches = _batches(caplog)
    assert sum(batches) == len(deliveries) and len(batches) < len(deliveries) / 4


@requires_postgres
def test_concurrent_http_pushes_go_through_the_batcher(
    engine: Engine, factory: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(database_url=str(engine.url), knowlarity_webhook_key=WEBHOOK_KEY,
                        knowlarity_batches_in_flight=1)  # fmt: skip
    payloads = [
        {**P3_ANSWERED, "callid": f"http-{n}", "caller_id": f"+9198765{n % 7:05d}"} for n in range(60)
    ]
    with (
        caplog.at_level(logging.DEBUG, logger=BATCHING_LOG),
        TestClient(create_app(settings, engine)) as client,
        ThreadPoolExecutor(16) as threads,
    ):
        responses = list(threads.map(lambda p: send(client, p, "form"), payloads + payloads[:20]))
    assert [r.status_code for r in responses] == [200] * 80
    statuses = Counter(r.json()["status"] for r in responses)
    assert statuses == {"created": 7, "attached": 53, "duplicate": 20}
    assert (_count(factory, Call), _count(factory, Customer), _count(factory, Lead)) == (60, 7, 7)
    assert sum(_batches(caplog)) == 80


@contextmanager
def _refusing_agent(engine: Engine, agent: str) -> Iterator[None]:
    """A check constraint standing for any value the database refuses (none of leadhub's own
    constraints can be broken by a push that parses)."""
    with engine.begin() as conn:
        conn.execute(
            text(f"ALTER TABLE calls ADD CONSTRAINT test_refused_agent CHECK (agent <> '{agent}') NOT VALID")
        )
    try:
        yield
    finally:
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE calls DROP CONSTRAINT test_refused_agent"))


@requires_postgres
def test_a_refused_call_fails_alone_and_is_kept_in_the_inbox(
    engine: Engine, factory: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    first = _call("occupies-the-slot", "+919811100000")
    good = [_call(f"good-{n}", f"+91981110000{n}") for n in (1, 3)]
    refused = dataclasses.replace(_call("refused", "+919811100002"), agent=REFUSED_AGENT)

    async def scenario(batcher: CallBatcher) -> list[CallIngest]:
        # in_flight 1: the first call leaves alone, the other three queue and leave together
        return await asyncio.gather(*(batcher.ingest(c) for c in (first, good[0], refused, good[1])))

    with _refusing_agent(engine, REFUSED_AGENT), caplog.at_level(logging.DEBUG, logger=BATCHING_LOG):
        answers = _with_batcher(engine, scenario)
    assert _batches(caplog) == [1, 3]
    assert [a.status.value for a in answers] == ["created", "created", "failed", "created"]
    failed = answers[2]
    assert failed.call_id is None and failed.intake.lead_id is None
    assert "test_refused_agent" in (failed.intake.reason or "")
    with factory() as s:
        event = s.get(IntakeEvent, failed.intake.event_id)
        stored = s.execute(select(Call.call_uuid).order_by(Call.call_uuid)).scalars().all()
    assert event is not None and event.status == "failed" and event.external_id == "refused"
    assert "test_refused_agent" in (event.reason or "") and event.raw_payload["callid"] == "refused"
    assert stored == ["good-1", "good-3", "occupies-the-slot"]
    assert _count(factory, Customer) == 3


@requires_postgres
def test_a_refused_call_over_http_is_422_and_kept_failed(
    client: TestClient, factory: sessionmaker[Session]
) -> None:
    with _refusing_agent(client.app.state.engine, REFUSED_AGENT):  # type: ignore[attr-defined]
        good = send(client, P3_ANSWERED, "form")
        # the push's destination is the agent who took the call
        refused = send(client, {**P3_ANSWERED, "callid": "refused", "destination": REFUSED_AGENT}, "form")
    assert good.status_code == 200 and good.json()["status"] == "created"
    assert refused.status_code == 422
    error = refused.json()["error"]
    assert error["status"] == "failed" and "kept in the inbox" in error["message"]
    assert "test_refused_agent" in error["message"]
    with factory() as s:
        event = s.get(IntakeEvent, error["event_id"])
    assert event is not None and event.status == "failed" and event.external_id == "refused"
    assert _count(factory, Call) == 1
    # a redelivery finds the failed inbox row, as for any other failed call
    assert send(client, {**P3_ANSWERED, "callid": "refused"}, "form").status_code == 422


@requires_postgres
def test_a_missed_and_then_an_answered_call_in_one_batch_close_the_callback(
    engine: Engine, factory: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    caller = "+919822200000"
    missed = _call("missed", caller, answered=False, start="2025-12-06 10:00:00+05:30")
    answered = _call("answered", caller, start="2025-12-06 10:30:00+05:30")
    other = _call("other-missed", "+919822200009", answered=False, start="2025-12-06 10:00:00+05:30")

    async def scenario(batcher: CallBatcher) -> list[CallIngest]:
        # the answered call is queued first: the batch still writes the missed one first
        return await asyncio.gather(*(batcher.ingest(c) for c in (other, answered, missed)))

    with caplog.at_level(logging.DEBUG, logger=BATCHING_LOG):
        answers = _with_batcher(engine, scenario)
    assert _batches(caplog) == [1, 2]
    assert [a.status.value for a in answers] == ["created", "attached", "created"]
    other_id, answered_id, missed_id = (a.call_id for a in answers)
    with factory() as s:
        tasks = {t.call_id: t for t in s.execute(select(CallbackTask)).scalars()}
    assert set(tasks) == {other_id, missed_id}
    other_task, missed_task = tasks[other_id or 0], tasks[missed_id or 0]
    assert missed_task.status == "done" and missed_task.closed_by_call_id == answered_id
    assert other_task.status == "open"  # another customer's task is left alone


def test_an_answered_call_closes_only_its_customers_callback(
    client: TestClient, factory: sessionmaker[Session]
) -> None:
    """On both databases: through the batcher on PostgreSQL, the Python path on SQLite."""
    for caller in ("+919833300001", "+919833300002"):
        missed = {**P2_MISSED, "callid": f"missed-{caller}", "caller_id": caller}
        assert send(client, missed, "form").json()["status"] == "created"
    answered = {**P3_ANSWERED, "callid": "answered", "caller_id": "+919833300002",
                "start_time": "2020-01-22 15:00:00+05:30"}  # fmt: skip
    assert send(client, answered, "json").json()["status"] == "attached"
    with factory() as s:
        rows = s.execute(select(Customer.phone_number_normalized, CallbackTask.status)
                         .join(Customer, Customer.id == CallbackTask.customer_id)).all()  # fmt: skip
    assert sorted(rows) == [("+919833300001", "open"), ("+919833300002", "done")]


@requires_postgres
def test_batch_max_1_writes_each_push_in_its_own_transaction(
    engine: Engine, factory: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(database_url=str(engine.url), knowlarity_webhook_key=WEBHOOK_KEY,
                        knowlarity_batch_max=1)  # fmt: skip
    payloads = [
        {**P3_ANSWERED, "callid": f"alone-{n}", "caller_id": f"+9198444{n % 3:05d}"} for n in range(12)
    ]
    with (
        caplog.at_level(logging.DEBUG, logger=BATCHING_LOG),
        TestClient(create_app(settings, engine)) as client,
        ThreadPoolExecutor(6) as threads,
    ):
        assert client.app.state.call_batcher is None  # type: ignore[attr-defined]
        responses = list(threads.map(lambda p: send(client, p, "form"), payloads + payloads[:3]))
    assert Counter(r.json()["status"] for r in responses) == {"created": 3, "attached": 9, "duplicate": 3}
    assert _batches(caplog) == []  # the one-statement path of before
    assert (_count(factory, Call), _count(factory, Customer), _count(factory, Lead)) == (12, 3, 3)


@requires_postgres
def test_a_batch_that_loses_a_deadlock_is_sent_again(
    engine: Engine, factory: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    """Another writer holds customer B's row and then asks for A's while the batch [A, B] holds A's
    and waits for B's. The other writer's deadlock_timeout is longer, so the batch is the victim;
    it is sent again once the other writer is done, and stores every call once."""
    a, b = "+919855500001", "+919855500002"

    async def setup(batcher: CallBatcher) -> list[CallIngest]:
        return await asyncio.gather(*(batcher.ingest(_call(f"first-{p}", p)) for p in (a, b)))

    _with_batcher(engine, setup, in_flight=2)
    other = psycopg.connect(_libpq(str(engine.url)))
    other.execute("SET deadlock_timeout = '10s'")
    other.execute("SELECT 1 FROM customers WHERE phone_number_normalized = %s FOR UPDATE", (b,))

    def lock_a_when_the_batch_waits() -> None:
        deadline = time.monotonic() + 20
        with psycopg.connect(_libpq(str(engine.url)), autocommit=True) as watch:
            while time.monotonic() < deadline:
                waiting = watch.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
                    " AND wait_event_type = 'Lock' AND datname = current_database()",
                    (APPLICATION_NAME,),
                ).fetchone()
                if waiting and waiting[0]:
                    break
                time.sleep(0.02)
        other.execute("SELECT 1 FROM customers WHERE phone_number_normalized = %s FOR UPDATE", (a,))
        other.rollback()  # reached once the batch was chosen as the victim

    async def scenario(batcher: CallBatcher) -> list[CallIngest]:
        locker = asyncio.create_task(asyncio.to_thread(lock_a_when_the_batch_waits))
        # in_flight 1: a third caller's call leaves alone, then [A, B] together
        calls = [_call("second-other", "+919855500009")] + [_call(f"second-{p}", p) for p in (b, a)]
        answers = await asyncio.gather(*(batcher.ingest(c) for c in calls))
        await locker
        return answers

    try:
        with caplog.at_level(logging.DEBUG, logger=BATCHING_LOG):
            answers = _with_batcher(engine, scenario)
    finally:
        other.close()
    assert [x.status.value for x in answers] == ["created", "attached", "attached"]
    assert [r.getMessage() for r in caplog.records if "lost a race" in r.getMessage()] == [
        "knowlarity batch of 2 lost a race (DeadlockDetected), attempt 1 of 4"
    ]
    assert _batches(caplog) == [1, 2]  # sent again as one batch, not call by call
    assert _count(factory, Call) == 5 and _count(factory, IntakeEvent) == 5


@requires_postgres
def test_revision_0014_downgrades_and_upgrades_again(tmp_path: Path) -> None:
    with fresh_database(tmp_path) as url:
        migrate.upgrade(url)
        cfg = migrate._config(url)
        exists = "SELECT count(*) FROM pg_proc WHERE proname = 'leadhub_ingest_calls'"
        engine = make_engine(url, pool_size=1, max_overflow=0)
        try:
            command.downgrade(cfg, "0013")
            with engine.connect() as conn:
                assert conn.execute(text(exists)).scalar_one() == 0
            migrate.upgrade(url)
            with engine.connect() as conn:
                assert conn.execute(text(exists)).scalar_one() == 1
            assert migrate.current_revision(engine) == migrate.head_revision()
        finally:
            engine.dispose()
