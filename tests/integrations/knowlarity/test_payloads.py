"""The vendor parsers, pure: times, durations and the call-log examples of the providers note (§1.3)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from leadhub.integrations.knowlarity.payloads import (
    Direction,
    PayloadError,
    parse_calllog_record,
    parse_duration,
    parse_push,
    parse_time,
    request_time,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-12-06 11:11:21+05:30", datetime(2025, 12, 6, 5, 41, 21, tzinfo=UTC)),
        ("2016-09-27 03:49:44.391601+00:00", datetime(2016, 9, 27, 3, 49, 44, 391601, tzinfo=UTC)),
        ("2020-01-22 13:38:52.218728 05:30", datetime(2020, 1, 22, 8, 8, 52, 218728, tzinfo=UTC)),
        ("2025-12-06T11:11:21+0530", datetime(2025, 12, 6, 5, 41, 21, tzinfo=UTC)),
        ("2025-12-06 11:11:21Z", datetime(2025, 12, 6, 11, 11, 21, tzinfo=UTC)),
        ("2025-12-06 11:11:21", datetime(2025, 12, 6, 5, 41, 21, tzinfo=UTC)),  # naive: India time
        ("2025-12-06 11:11:21-04:00", datetime(2025, 12, 6, 15, 11, 21, tzinfo=UTC)),
        ("", None),
        ("yesterday", None),
        (None, None),
    ],
)
def test_parse_time(text: str | None, expected: datetime | None) -> None:
    assert parse_time(text) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("7", 7), (7, 7), ("00:00:07", 7), ("01:02:03", 3723), ("02:05", 125), ("7.0", 7), ("", None),
     (None, None), ("n/a", None)],
)  # fmt: skip
def test_parse_duration(value: Any, expected: int | None) -> None:
    assert parse_duration(value) == expected


EXAMPLE_A = {
    "uuid": "0b1f6c2e-1111-4c1e-9d2a-aaaaaaaaaaaa", "customer_number": "+919000000001",
    "knowlarity_number": "+918000000010", "agent_number": "+917000000100", "destination": "+917000000100",
    "extension": "None", "start_time": "2025-12-06 11:11:21+05:30", "call_duration": 293,
    "business_call_type": "Call Group", "Call_Type": 0, "call_recording": "https://r.example/a.mp3",
}  # fmt: skip
EXAMPLE_A2 = {
    "uuid": "0b1f6c2e-2222-4c1e-9d2a-bbbbbbbbbbbb", "customer_number": "+919000000002",
    "knowlarity_number": "+918000000010", "agent_number": "NA", "start_time": "2025-12-06 11:20:02+05:30",
    "call_duration": 0, "business_call_type": "Missed Call", "Call_Type": 0, "call_recording": "",
}  # fmt: skip
EXAMPLE_B = {
    "uuid": "93b4c091-0000-401f-9a0c-000000000000", "customer_number": "+919000000003",
    "knowlarity_number": "+918000000011", "business_call_type": "Missed Call",
}  # fmt: skip
EXAMPLE_C = {
    "uuid": "5d0e0a7c-3333-4f0a-8d3b-cccccccccccc", "customer_number": "+919000000004",
    "knowlarity_number": "+918000000012", "agent_number": "+917000000101",
    "start_time": "2025-12-07 16:02:10+05:30", "call_duration": 41, "business_call_type": "Outbound",
    "Call_Type": 1, "call_recording": "https://r.example/c.mp3",
}  # fmt: skip
EXAMPLE_D = {
    "uuid": "7a7a7a7a-4444-4444-8444-dddddddddddd", "customer_number": "+919000000005",
    "knowlarity_number": "+918000000010", "agent_number": "Welcome Sound",
    "start_time": "2025-12-07 21:45:03+05:30", "call_duration": 6, "business_call_type": "Sound",
    "Call_Type": 0, "call_recording": "",
}  # fmt: skip


@pytest.mark.parametrize(
    ("record", "answered", "direction", "agent"),
    [
        (EXAMPLE_A, True, Direction.INBOUND, "+917000000100"),
        (EXAMPLE_A2, False, Direction.INBOUND, None),
        (EXAMPLE_B, False, Direction.INBOUND, None),
        (EXAMPLE_C, True, Direction.OUTBOUND, "+917000000101"),
        (EXAMPLE_D, False, Direction.INBOUND, None),
    ],
)
def test_calllog_examples(
    record: dict[str, Any], answered: bool, direction: Direction, agent: str | None
) -> None:
    call = parse_calllog_record(record)
    assert (call.answered, call.direction, call.agent) == (answered, direction, agent)
    assert call.call_uuid == record["uuid"] and call.customer_phone == record["customer_number"]


def test_agent_field_with_a_label_keeps_the_number() -> None:
    call = parse_calllog_record({**EXAMPLE_A, "agent_number": "Sales Desk +917000000100"})
    assert call.agent == "+917000000100"


@pytest.mark.parametrize("payload", [{"caller_id": "+919000000001"}, {"callid": "x"}, {"callid": " "}])
def test_push_without_id_or_caller_is_refused(payload: dict[str, Any]) -> None:
    with pytest.raises(PayloadError):
        parse_push(payload)


def test_push_keys_are_case_insensitive() -> None:
    call = parse_push({"CallId": "abc", "Caller_ID": "+919000000001", "Call_Duration": "12"})
    assert call.call_uuid == "abc" and call.answered


def test_request_time_has_an_explicit_india_offset() -> None:
    assert request_time(datetime(2025, 12, 6, 5, 41, 21, tzinfo=UTC)) == "2025-12-06 11:11:21+05:30"
