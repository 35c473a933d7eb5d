"""/webhooks/knowlarity end to end: every example push in every shape, keys, redelivery, bad payloads."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from leadhub.db.fastpath import APPLICATION_NAME
from leadhub.db.models import Branch, Call, CallbackTask, Customer, IntakeEvent, Lead, LeadSourceHistory
from leadhub.db.session import session_scope
from leadhub.integrations.knowlarity.calls import ingest_call
from leadhub.integrations.knowlarity.numbers import add_number
from leadhub.integrations.knowlarity.payloads import parse_push
from leadhub.leads.intake import Channel, Intake, IntakeOutcome, ingest, replay
from tests.conftest import requires_postgres

from .conftest import EXAMPLES, EXPECTED, P1_IVR, P2_MISSED, P3_ANSWERED, WEBHOOK_KEY, send

SHAPES = ["get", "form", "json"]


def _count(factory: sessionmaker[Session], model: Any) -> int:
    with factory() as s:
        return int(s.execute(select(func.count()).select_from(model)).scalar_one())


def _branch_for(factory: sessionmaker[Session], number: str) -> int:
    with session_scope(factory) as s:
        branch = Branch(name="Pune Baner", city="Pune")
        s.add(branch)
        s.flush()
        add_number(s, number=number, branch_id=branch.id, campaign="diwali")
        return branch.id


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_each_example_push_makes_one_call_and_one_lead(
    client: TestClient, factory: sessionmaker[Session], example: str, shape: str
) -> None:
    payload = EXAMPLES[example]
    response = send(client, payload, shape)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "created"
    with factory() as s:
        call = s.execute(select(Call)).scalar_one()
        lead = s.get(Lead, body["lead_id"])
        customer = s.get(Customer, body["customer_id"])
    assert lead is not None and customer is not None
    assert call.call_uuid == payload["callid"]
    assert (call.answered, call.duration_seconds) == EXPECTED[example]
    assert call.customer_phone == customer.phone_number_normalized == payload["caller_id"]
    assert call.virtual_number == payload["dispnumber"]
    assert call.lead_id == lead.id and lead.customer_id == customer.id
    assert lead.branch_id is None and not call.number_mapped  # unmapped number: kept, flagged
    assert call.direction == "inbound"
    assert call.raw_payload["callid"] == payload["callid"] and "key" not in call.raw_payload


def test_mixed_offsets_in_one_payload_are_both_read(
    client: TestClient, factory: sessionmaker[Session]
) -> None:
    assert send(client, P1_IVR, "json").status_code == 200
    with factory() as s:
        call = s.execute(select(Call)).scalar_one()
    assert call.started_at == datetime(2016, 9, 27, 3, 49, 44, 391601, tzinfo=UTC)
    assert call.ended_at == datetime(2016, 9, 27, 3, 49, 34, 667036, tzinfo=UTC)


def test_plus_sent_unencoded_arrives_as_a_space_and_still_parses(
    client: TestClient, factory: sessionmaker[Session]
) -> None:
    # P4 of the providers note, with the `+` characters NOT percent-encoded by the sender.
    body = (
        "caller_id=+919000000012&dispnumber=+918000000012&callid=4cd60251-0000-4345-b9a6-000000000002"
        "&call_duration=00:00:07&destination=%2B917000000100&call_type=incoming"
        "&start_time=2020-01-22+13:38:52.218728+05:30&end_time=2020-01-22+13:38:59.218728+05:30"
        "&campaign_tag=diwali"
    )
    response = client.post(
        f"/webhooks/knowlarity?key={WEBHOOK_KEY}",
        content=body,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200, response.text
    with factory() as s:
        call = s.execute(select(Call)).scalar_one()
    assert call.customer_phone == "+919000000012"
    assert call.virtual_number == "+918000000012"
    assert call.duration_seconds == 7 and call.answered
    assert call.started_at == datetime(2020, 1, 22, 8, 8, 52, 218728, tzinfo=UTC)
    assert call.raw_payload["campaign_tag"] == "diwali"  # custom parameters are kept


@pytest.mark.parametrize("shape", SHAPES)
def test_five_redeliveries_are_one_call(
    client: TestClient, factory: sessionmaker[Session], shape: str
) -> None:
    statuses = [send(client, P3_ANSWERED, shape).json()["status"] for _ in range(5)]
    assert statuses == ["created"] + ["duplicate"] * 4
    assert _count(factory, Call) == 1
    assert _count(factory, Lead) == 1
    assert _count(factory, IntakeEvent) == 1


@pytest.mark.parametrize(
    ("key", "header"),
    [(None, None), ("wrong-key-wrong-key-wrong", None), (None, "wrong-key-wrong-key-wrong")],
)
def test_wrong_or_missing_key_is_401_and_nothing_is_stored(
    client: TestClient, factory: sessionmaker[Session], key: str | None, header: str | None
) -> None:
    headers = {"X-Webhook-Key": header} if header else {}
    params = {"key": key} if key else {}
    for response in (
        client.post("/webhooks/knowlarity", params=params, json=P3_ANSWERED, headers=headers),
        client.get("/webhooks/knowlarity", params={**P3_ANSWERED, **params}, headers=headers),
    ):
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthenticated"
    assert _count(factory, IntakeEvent) == 0
    assert _count(factory, Call) == 0


def test_the_key_is_accepted_as_a_header(client: TestClient) -> None:
    response = client.post("/webhooks/knowlarity", json=P3_ANSWERED, headers={"X-Webhook-Key": WEBHOOK_KEY})
    assert response.status_code == 200


def test_unconfigured_webhook_is_503(engine: Any, factory: sessionmaker[Session]) -> None:
    from leadhub.api.app import create_app
    from leadhub.config import Settings

    with TestClient(create_app(Settings(database_url=str(engine.url)), engine)) as c:
        response = c.post("/webhooks/knowlarity", json=P3_ANSWERED)
    assert response.status_code == 503
    assert _count(factory, IntakeEvent) == 0


@pytest.mark.parametrize(
    ("content", "content_type", "message"),
    [
        ('{"callid": "x", "caller_id": ', "application/json", "not valid JSON"),
        ('["a", "list"]', "application/json", "must be an object"),
        ('{"caller_id": "+919000000013"}', "application/json", "callid"),
        ("callid=abc&destination=Missed+Call", "application/x-www-form-urlencoded", "caller_id"),
        ("<xml/>", "application/xml", "unsupported content type"),
    ],
)
def test_unusable_payload_is_4xx_and_kept_in_the_inbox_as_failed(
    client: TestClient, factory: sessionmaker[Session], content: str, content_type: str, message: str
) -> None:
    response = client.post(
        f"/webhooks/knowlarity?key={WEBHOOK_KEY}", content=content, headers={"content-type": content_type}
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert message in error["message"] and error["status"] == "failed"
    with factory() as s:
        event = s.execute(select(IntakeEvent)).scalar_one()
    assert event.status == "failed" and message in (event.reason or "")
    assert event.id == error["event_id"]
    assert _count(factory, Lead) == 0


def test_invalid_caller_number_is_4xx_kept_failed_and_the_call_recorded(
    client: TestClient, factory: sessionmaker[Session]
) -> None:
    response = send(client, {**P3_ANSWERED, "caller_id": "12345"}, "json")
    assert response.status_code == 422
    assert "could not become a lead" in response.json()["error"]["message"]
    with factory() as s:
        event = s.execute(select(IntakeEvent)).scalar_one()
        call = s.execute(select(Call)).scalar_one()
    assert event.status == "failed" and call.lead_id is None
    assert _count(factory, Lead) == 0


def test_a_failed_call_replayed_with_a_corrected_number_links_its_call_to_the_lead(
    client: TestClient, factory: sessionmaker[Session]
) -> None:
    send(client, {**P3_ANSWERED, "caller_id": "12345"}, "json")
    with session_scope(factory) as s:
        event_id = s.execute(select(IntakeEvent.id)).scalar_one()
        [result] = replay(s, event_ids=[event_id], phone="98123 45678")
    assert result.status is IntakeOutcome.CREATED
    with factory() as s:
        call = s.execute(select(Call)).scalar_one()
        event = s.get(IntakeEvent, event_id)
    assert event is not None and event.status == "processed"
    assert (call.lead_id, call.customer_id) == (result.lead_id, result.customer_id)
    assert call.customer_phone == "+919812345678"


def test_mapped_number_gives_the_branch_and_a_second_call_attaches(
    client: TestClient, factory: sessionmaker[Session]
) -> None:
    branch = _branch_for(factory, "08000000010")
    first = send(client, P3_ANSWERED, "form").json()
    second = send(client, {**P3_ANSWERED, "callid": "second-call"}, "form").json()
    assert (first["status"], second["status"]) == ("created", "attached")
    assert first["lead_id"] == second["lead_id"]
    with factory() as s:
        lead = s.get(Lead, first["lead_id"])
        assert lead is not None and lead.branch_id == branch
        assert all(c.number_mapped for c in s.execute(select(Call)).scalars())


def test_a_call_attaches_to_a_walk_in_lead_with_one_history_row_however_often_it_arrives(
    client: TestClient, factory: sessionmaker[Session]
) -> None:
    branch = _branch_for(factory, "+918000000010")
    with session_scope(factory) as s:
        walk_in = ingest(s, Intake(source=Channel.WALK_IN, phone="9000000013", branch_id=branch))
    for _ in range(3):
        response = send(client, P3_ANSWERED, "json")
    assert response.json()["lead_id"] == walk_in.lead_id
    with factory() as s:
        history = s.execute(select(LeadSourceHistory)).scalars().all()
    assert len(history) == 1 and history[0].external_id == P3_ANSWERED["callid"]


def test_new_lead_policy_opens_a_lead_per_call(engine: Any, factory: sessionmaker[Session]) -> None:
    from pydantic import SecretStr

    from leadhub.api.app import create_app
    from leadhub.config import LeadPolicy, Settings

    settings = Settings(
        database_url=str(engine.url),
        knowlarity_webhook_key=SecretStr(WEBHOOK_KEY),
        knowlarity_lead_policy=LeadPolicy.NEW_LEAD,
    )
    with TestClient(create_app(settings, engine)) as c:
        statuses = [send(c, {**P3_ANSWERED, "callid": f"c{i}"}, "json").json()["status"] for i in range(3)]
    assert statuses == ["created"] * 3
    assert _count(factory, Lead) == 3


def test_missed_call_opens_a_callback_and_an_answered_call_closes_it(
    client: TestClient, factory: sessionmaker[Session]
) -> None:
    missed = send(client, P2_MISSED, "form").json()
    with factory() as s:
        task = s.execute(select(CallbackTask)).scalar_one()
        lead = s.get(Lead, missed["lead_id"])
    assert task.status == "open" and task.lead_id == missed["lead_id"]
    assert task.due_at == datetime(2020, 1, 22, 8, 38, 52, 218728, tzinfo=UTC)  # 08:08 UTC + 30 minutes
    assert lead is not None and lead.next_followup_at == task.due_at
    # A second missed call does not pile up a second task.
    send(client, {**P2_MISSED, "callid": "missed-again", "start_time": "2020-01-22 14:00:00+05:30"}, "form")
    assert _count(factory, CallbackTask) == 1
    answered = {
        **P3_ANSWERED,
        "callid": "answered-later",
        "caller_id": P2_MISSED["caller_id"],
        "start_time": "2020-01-22 15:00:00+05:30",
    }
    assert send(client, answered, "json").json()["status"] == "attached"
    with factory() as s:
        task = s.execute(select(CallbackTask)).scalar_one()
        closer = s.execute(select(Call).where(Call.call_uuid == "answered-later")).scalar_one()
    assert task.status == "done" and task.closed_by_call_id == closer.id


def test_a_missed_call_polled_after_the_answered_call_opens_no_callback(
    client: TestClient, factory: sessionmaker[Session]
) -> None:
    answered = {**P3_ANSWERED, "caller_id": P2_MISSED["caller_id"], "start_time": "2020-01-22 15:00:00+05:30"}
    send(client, answered, "json")
    send(client, P2_MISSED, "json")  # it happened at 13:38, before the answered call
    assert _count(factory, CallbackTask) == 0


def test_two_simultaneous_first_calls_from_a_new_number_make_one_lead(
    factory: sessionmaker[Session],
) -> None:
    threads = 8
    barrier = threading.Barrier(threads)
    results: list[IntakeOutcome] = []

    def call(i: int) -> None:
        record = parse_push({**P3_ANSWERED, "callid": f"simultaneous-{i}"})
        barrier.wait()
        with session_scope(factory) as s:
            results.append(ingest_call(s, record).status)

    workers = [threading.Thread(target=call, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert sorted(results) == ["attached"] * (threads - 1) + ["created"]
    assert _count(factory, Lead) == 1
    assert _count(factory, Customer) == 1
    assert _count(factory, Call) == threads


@pytest.mark.parametrize("shape", ["form", "json"])
def test_the_key_is_never_stored_even_when_sent_in_the_body(
    client: TestClient, factory: sessionmaker[Session], shape: str
) -> None:
    body = {**P3_ANSWERED, "key": WEBHOOK_KEY}
    if shape == "form":
        response = client.post("/webhooks/knowlarity", data=body, headers={"X-Webhook-Key": WEBHOOK_KEY})
    else:
        response = client.post("/webhooks/knowlarity", json=body, headers={"X-Webhook-Key": WEBHOOK_KEY})
    assert response.status_code == 200
    with factory() as s:
        event = s.execute(select(IntakeEvent)).scalar_one()
        call = s.execute(select(Call)).scalar_one()
    assert WEBHOOK_KEY not in str(event.raw_payload) and WEBHOOK_KEY not in str(call.raw_payload)


@requires_postgres
def test_a_push_after_the_server_dropped_the_connection_is_still_recorded_once(
    client: TestClient, engine: Any, factory: sessionmaker[Session]
) -> None:
    """The webhook's autocommit connections (db/fastpath.py) outlive a database restart or a pooler's
    idle timeout: the dropped connection is replaced and the push answered 200, stored once."""
    first = client.post(f"/webhooks/knowlarity?key={WEBHOOK_KEY}", json=P3_ANSWERED)
    assert first.status_code == 200
    with engine.connect() as conn:
        killed = conn.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = :a AND datname = current_database()"
            ),
            {"a": APPLICATION_NAME},
        ).scalar_one()
    assert killed >= 1
    second = {**P2_MISSED, "callid": "after-the-drop"}
    response = client.post(f"/webhooks/knowlarity?key={WEBHOOK_KEY}", json=second)
    assert response.status_code == 200, response.text
    assert response.json()["status"] in ("created", "attached")
    with factory() as s:
        uuids = s.execute(select(Call.call_uuid).where(Call.call_uuid == "after-the-drop")).scalars().all()
    assert uuids == ["after-the-drop"]


@pytest.mark.parametrize("duration", ["1e12", "1e400", "-5", "99999999999999999999"])
def test_an_absurd_duration_is_kept_raw_and_the_call_still_recorded(
    client: TestClient, factory: sessionmaker[Session], duration: str
) -> None:
    response = send(client, {**P3_ANSWERED, "call_duration": duration}, "form")
    assert response.status_code == 200, response.text
    with factory() as s:
        call = s.execute(select(Call)).scalar_one()
    assert call.duration_seconds is None and call.raw_payload["call_duration"] == duration


def test_one_call_pushed_five_times_at_once_is_one_call_and_one_lead(factory: sessionmaker[Session]) -> None:
    """Concurrent copies of one event: on PostgreSQL they queue on the event's advisory lock
    (revision 0012) and all but the first find its inbox row."""
    threads = 5
    barrier = threading.Barrier(threads)
    results: list[IntakeOutcome] = []

    def call(_: int) -> None:
        record = parse_push({**P2_MISSED, "callid": "five-at-once"})
        barrier.wait()
        with session_scope(factory) as s:
            results.append(ingest_call(s, record).status)

    workers = [threading.Thread(target=call, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert sorted(results) == ["created"] + ["duplicate"] * (threads - 1)
    assert (_count(factory, Call), _count(factory, Lead), _count(factory, IntakeEvent)) == (1, 1, 1)
    assert _count(factory, CallbackTask) == 1


@requires_postgres
def test_an_event_recorded_meanwhile_by_a_writer_without_the_lock_is_a_retry_not_a_second_event(
    client: TestClient, factory: sessionmaker[Session]
) -> None:
    """Revision 0011 inserts a new event's inbox row at the end. If a writer that takes no advisory
    lock (the Python path) commits the same key in between, the function raises serialization_failure
    and keeps nothing; the push's one retry then finds the row."""
    blocker = factory()
    blocker.execute(text("INSERT INTO intake_events (source, external_id, status, attempts) "
                         "VALUES ('knowlarity', :id, 'failed', 1)"), {"id": P3_ANSWERED["callid"]})  # fmt: skip
    answers: list[Any] = []
    pusher = threading.Thread(target=lambda: answers.append(send(client, P3_ANSWERED, "form")))
    pusher.start()
    pusher.join(timeout=1.0)  # the push now waits on the uncommitted row's key
    assert pusher.is_alive()
    blocker.commit()
    blocker.close()
    pusher.join(timeout=30)
    assert answers[0].status_code == 422  # the retry found the failed row: answered as a duplicate of it
    assert (_count(factory, IntakeEvent), _count(factory, Customer), _count(factory, Lead)) == (1, 0, 0)
    assert _count(factory, Call) == 1
