"""Every Knowlarity field name, marker and format, and the parsers that turn a push or a call-log record
into one `CallRecord`.

Source of every fact here: ../shared/providers/knowlarity.md (§1.2 call-log fields, §1.4 push fields,
§1.5 example pushes). No live API was checked, so every parser is tolerant: a value it cannot read
becomes None rather than an error, except the two a call cannot do without (its id and the caller).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

IST = ZoneInfo("Asia/Kolkata")

# --- push (webhook) field names, §1.4 "Push field names" (Faveo CallHookHandler.php, Flask Ivr sample,
# chatwoot call_knowlarity_helper.rb). Keys are matched case-insensitively (Faveo lower-cases them).
PUSH_CALL_ID = "callid"
PUSH_CALLER = "caller_id"
PUSH_VIRTUAL_NUMBER = "dispnumber"
PUSH_DESTINATION = "destination"
PUSH_DURATION = "call_duration"
PUSH_START = "start_time"
PUSH_END = "end_time"
PUSH_DIRECTION = "call_type"  # "incoming" / "outgoing" (lower case)
PUSH_TYPE = "type"  # "dtmf", "missed call"
PUSH_RECORDING = "resource_url"
PUSH_CUSTOMER_MISSED = "customer_missed_number"

# --- call-log (CDR) record field names, §1.2 "Call-record fields" (Morris-Garages knowlarity_sync.py,
# the C# IVRController, the PHP KnowlarityService, singh0834/knowlarity).
LOG_CALL_ID = "uuid"
LOG_CUSTOMER = "customer_number"
LOG_CALLER_FALLBACK = "caller_id"  # Morris-Garages falls back to it when customer_number is empty
LOG_VIRTUAL_NUMBER = "knowlarity_number"
LOG_AGENT = "agent_number"
LOG_DESTINATION = "destination"
LOG_START = "start_time"
LOG_DURATION = "call_duration"
LOG_BUSINESS_TYPE = "business_call_type"
LOG_DIRECTION = "Call_Type"  # capital C; 0 incoming, 1 outgoing (PHP KnowlarityService)
LOG_RECORDING = "call_recording"

# --- call-log request and envelope, §1.2 "Query parameters" and "Response envelope" (Tastypie style).
CALLLOG_PATH = "/{channel}/v1/account/calllog"
HEADER_APP_KEY = "x-api-key"
HEADER_SR_KEY = "Authorization"  # sent raw, no "Bearer " prefix (every code sample)
HEADER_CHANNEL = "channel"  # some clients also send it; harmless
PARAM_START = "start_time"
PARAM_END = "end_time"
PARAM_LIMIT = "limit"
PARAM_OFFSET = "offset"
ENVELOPE_META = "meta"
ENVELOPE_TOTAL = "total_count"
ENVELOPE_OBJECTS = "objects"
# Always send the offset: the server's reading of naive times is undocumented (§1.2 "Timezone handling").
REQUEST_TIME_FORMAT = "%Y-%m-%d %H:%M:%S+05:30"

# --- missed-call markers. Push `destination` values and `type` (chatwoot: "Customer Missed",
# "Agent Missed"; Flask sample: "Missed Call" / "missed call"); call-log `business_call_type` values
# (Morris-Garages "Missed Call", Agile widget "Agent Missed", "Customer Missed", "Unanswered"; PHP
# service and Example D: an IVR "Sound" node); `agent_number` "NA" (Morris-Garages) or containing "sound".
MISSED_MARKERS = frozenset({"missed call", "customer missed", "agent missed", "unanswered", "sound", "na"})
OUTGOING_VALUES = frozenset({"outgoing", "outbound", "1"})


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class Origin(StrEnum):
    PUSH = "push"
    CALLLOG = "calllog"


class PayloadError(ValueError):
    """A payload leadhub cannot make a call from (no call id, no caller)."""


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One call, whichever entrance it came through."""

    call_uuid: str
    customer_phone: str
    virtual_number: str | None
    direction: Direction
    answered: bool
    duration_seconds: int | None
    agent: str | None
    recording_url: str | None
    started_at: datetime | None
    ended_at: datetime | None
    origin: Origin
    raw: dict[str, Any]


def _lower_keys(payload: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k).strip().lower(): v for k, v in payload.items()}


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text if text and text.lower() not in ("none", "null") else None


def _phone_text(value: Any) -> str | None:
    """A `+` sent unencoded in a form body or query string arrives as a space: restore it."""
    text = _text(value)
    if text is None:
        return None
    return "+" + text.lstrip("+ ").strip() if str(value).startswith((" ", "+")) else text


_TIME = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})[ T](?P<time>\d{2}:\d{2}(?::\d{2})?)(?P<frac>\.\d+)?"
    r"\s*(?P<tz>Z|[+\- ]\d{2}:?\d{2})?$"
)


def parse_time(value: Any) -> datetime | None:
    """`YYYY-MM-DD HH:MM:SS[.ffffff]±HH:MM` in UTC. Offsets may differ within one payload (§1.4), a `+`
    may arrive as a space, and a naive value is read as India time (Knowlarity's zone in every sample)."""
    text = _text(value)
    if text is None:
        return None
    match = _TIME.match(text)
    if match is None:
        return None
    clock = match["time"] if match["time"].count(":") == 2 else match["time"] + ":00"
    frac = (match["frac"] or "")[:7]
    try:
        naive = datetime.fromisoformat(f"{match['date']}T{clock}{frac}")
    except ValueError:
        return None
    tz = match["tz"]
    if tz is None:
        return naive.replace(tzinfo=IST).astimezone(UTC)
    if tz == "Z":
        return naive.replace(tzinfo=UTC)
    sign = -1 if tz[0] == "-" else 1
    digits = tz[1:].replace(":", "")
    offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    return naive.replace(tzinfo=timezone(sign * offset)).astimezone(UTC)


_MAX_CALL_SECONDS = 7 * 24 * 3600


def parse_duration(value: Any) -> int | None:
    """Seconds from `7`, `"7"`, `"7.0"`, `"00:00:07"` or `"01:07"` (chatwoot accepts both forms)."""
    text = _text(value)
    if text is None:
        return None
    try:
        if ":" in text:
            seconds = 0
            for part in text.split(":"):
                seconds = seconds * 60 + int(part)
        else:
            seconds = int(float(text))
    except (ValueError, OverflowError):
        return None
    # No call lasts a week: a larger or negative value is unreadable (the raw payload keeps it).
    return seconds if 0 <= seconds <= _MAX_CALL_SECONDS else None


def _missed(*markers: str | None) -> bool:
    for marker in markers:
        if marker is None:
            continue
        lowered = marker.lower()
        if lowered in MISSED_MARKERS or "sound" in lowered or "missed" in lowered:
            return True
    return False


def _agent(value: str | None) -> str | None:
    """An agent field may hold `"+91..."`, a label, or `"<label> +91..."`: keep the phone-like tail."""
    if value is None or _missed(value):
        return None
    match = re.search(r"\+?\d[\d ]{6,}$", value)
    return match.group(0).replace(" ", "") if match else None


def parse_push(payload: Mapping[str, Any]) -> CallRecord:
    """A webhook payload (form, JSON or query string, already merged into one mapping)."""
    data = _lower_keys(payload)
    call_id = _text(data.get(PUSH_CALL_ID))
    caller = _phone_text(data.get(PUSH_CALLER)) or _phone_text(data.get(PUSH_CUSTOMER_MISSED))
    if call_id is None:
        raise PayloadError(f"no `{PUSH_CALL_ID}` in the payload: a call cannot be recorded without its id")
    if caller is None:
        raise PayloadError(f"no `{PUSH_CALLER}` in the payload: a call cannot be recorded without its caller")
    destination = _text(data.get(PUSH_DESTINATION))
    duration = parse_duration(data.get(PUSH_DURATION))
    missed = _missed(destination, _text(data.get(PUSH_TYPE))) or not duration
    direction = _text(data.get(PUSH_DIRECTION))
    return CallRecord(
        call_uuid=call_id,
        customer_phone=caller,
        virtual_number=_phone_text(data.get(PUSH_VIRTUAL_NUMBER)),
        direction=Direction.OUTBOUND if (direction or "").lower() in OUTGOING_VALUES else Direction.INBOUND,
        answered=not missed,
        duration_seconds=duration,
        agent=_agent(destination),
        recording_url=_text(data.get(PUSH_RECORDING)),
        started_at=parse_time(data.get(PUSH_START)),
        ended_at=parse_time(data.get(PUSH_END)),
        origin=Origin.PUSH,
        raw=dict(payload),
    )


def parse_calllog_record(record: Mapping[str, Any]) -> CallRecord:
    """One object of the call-log API's `objects` list. Keys are exact (`Call_Type` is capitalised)."""
    call_id = _text(record.get(LOG_CALL_ID))
    customer = _phone_text(record.get(LOG_CUSTOMER)) or _phone_text(record.get(LOG_CALLER_FALLBACK))
    if call_id is None:
        raise PayloadError(f"call-log record without `{LOG_CALL_ID}`")
    if customer is None:
        raise PayloadError(f"call-log record {call_id} without `{LOG_CUSTOMER}`")
    agent_raw = _text(record.get(LOG_AGENT))
    business = _text(record.get(LOG_BUSINESS_TYPE))
    duration = parse_duration(record.get(LOG_DURATION))
    direction = _text(record.get(LOG_DIRECTION))
    outbound = (direction or "").lower() in OUTGOING_VALUES or (business or "").lower() == "outbound"
    started = parse_time(record.get(LOG_START))
    return CallRecord(
        call_uuid=call_id,
        customer_phone=customer,
        virtual_number=_phone_text(record.get(LOG_VIRTUAL_NUMBER)),
        direction=Direction.OUTBOUND if outbound else Direction.INBOUND,
        answered=not (_missed(business, agent_raw) or not duration),
        duration_seconds=duration,
        agent=_agent(agent_raw) or _agent(_text(record.get(LOG_DESTINATION))),
        recording_url=_text(record.get(LOG_RECORDING)),
        started_at=started,
        ended_at=started + timedelta(seconds=duration) if started and duration else None,
        origin=Origin.CALLLOG,
        raw=dict(record),
    )


def payload_fingerprint(payload: Any) -> str:
    """A stable id for a payload with no call id, so its redeliveries still land on one inbox row."""
    blob = json.dumps(payload, sort_keys=True, default=str).encode()
    return "nocallid:" + hashlib.sha256(blob).hexdigest()[:32]


def request_time(value: datetime) -> str:
    """A call-log `start_time`/`end_time` parameter: India time with an explicit +05:30."""
    return value.astimezone(IST).strftime(REQUEST_TIME_FORMAT)
