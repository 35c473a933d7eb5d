"""The push entrance: authenticate, read whatever shape Knowlarity sent, and ingest the call.

Knowlarity's push is configured as GET (query string) or POST (form-encoded, per its support article;
JSON in some integrations), so all three are merged into one mapping (../shared/providers/knowlarity.md
§1.4). Knowlarity signs nothing, so a shared secret guards the endpoint (`?key=` or `X-Webhook-Key`),
as Frappe CRM does for Exotel. The key is removed from the payload before anything is stored.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypedDict
from urllib.parse import parse_qsl

from sqlalchemy.orm import Session

from leadhub.config import LeadPolicy, Settings
from leadhub.db.fastpath import StatementPool
from leadhub.db.models import IntakeStatus
from leadhub.errors import AuthenticationError, NotConfiguredError, ValidationFailed
from leadhub.integrations import inbox
from leadhub.integrations.knowlarity.batching import CallBatcher
from leadhub.integrations.knowlarity.calls import CallIngest, ingest_call, ingest_call_autocommit
from leadhub.integrations.knowlarity.payloads import CallRecord, PayloadError, parse_push, payload_fingerprint
from leadhub.leads.intake import Channel
from leadhub.phones import mask

log = logging.getLogger(__name__)

KEY_PARAM = "key"
KEY_HEADER = "x-webhook-key"
FORM = "application/x-www-form-urlencoded"


class UnusablePayload(ValidationFailed):
    """Kept in the inbox as failed, answered 4xx."""


def check_key(settings: Settings, *, query_key: str | None, header_key: str | None) -> None:
    if settings.knowlarity_webhook_key is None:
        raise NotConfiguredError("the Knowlarity webhook is disabled: set LEADHUB_KNOWLARITY_WEBHOOK_KEY")
    offered = header_key or query_key
    expected = settings.knowlarity_webhook_key.get_secret_value()
    if not offered or not hmac.compare_digest(offered.encode(), expected.encode()):
        raise AuthenticationError(f"missing or wrong webhook key: send it as ?{KEY_PARAM}= or X-Webhook-Key")


@dataclass(frozen=True, slots=True)
class ReadPayload:
    data: dict[str, Any]
    problem: str | None = None  # why it cannot be used, when it cannot


def read_payload(query: Mapping[str, str], content_type: str | None, body: bytes) -> ReadPayload:
    """Merge the query string and the body (JSON object or form) into one mapping, the secret removed."""
    data: dict[str, Any] = {k: v for k, v in query.items() if k != KEY_PARAM}
    kind = (content_type or "").split(";")[0].strip().lower()
    if not body.strip():
        return ReadPayload(data)
    text = body.decode("utf-8", errors="replace")
    if kind == "application/json" or (kind != FORM and text.lstrip().startswith(("{", "["))):
        try:
            parsed = json.loads(text)
        except ValueError:
            return ReadPayload({**data, "_body": text[:10_000]}, "the body is not valid JSON")
        if not isinstance(parsed, dict):
            return ReadPayload({**data, "_body": parsed}, "the JSON body must be an object of call fields")
        data.update((k, v) for k, v in parsed.items() if k != KEY_PARAM)
        return ReadPayload(data)
    if kind in (FORM, "", "text/plain"):
        data.update((k, v) for k, v in parse_qsl(text, keep_blank_values=True) if k != KEY_PARAM)
        return ReadPayload(data)
    return ReadPayload({**data, "_body": text[:10_000]}, f"unsupported content type {kind!r}")


async def receive_push_autocommit(
    pool: StatementPool | None,
    payload: ReadPayload,
    *,
    settings: Settings,
    batcher: CallBatcher | None = None,
) -> CallIngest | None:
    """The fast entrance on PostgreSQL: a usable push is written in a transaction of its own, or with
    the pushes that arrive with it when there is a `batcher` (batching.py). None when the payload
    cannot be a call (then `receive_push` records it as failed and answers 4xx)."""
    if payload.problem is not None or pool is None:
        return None
    try:
        call = parse_push(payload.data)
    except PayloadError:
        return None
    if batcher is not None:
        return _logged(call, await batcher.ingest(call))
    return _logged(call, await ingest_call_autocommit(pool, call, **_call_settings(settings)))


def make_batcher(pool: StatementPool | None, settings: Settings) -> CallBatcher | None:
    """The process's batcher on PostgreSQL; None on SQLite or when LEADHUB_KNOWLARITY_BATCH_MAX is 1."""
    if pool is None or settings.knowlarity_batch_max <= 1:
        return None
    return CallBatcher(pool, batch_max=settings.knowlarity_batch_max,
                       in_flight=settings.knowlarity_batches_in_flight, **_call_settings(settings))  # fmt: skip


def receive_push(session: Session, payload: ReadPayload, *, settings: Settings) -> CallIngest:
    """Ingest one push. Raises UnusablePayload (after recording it as failed) for what cannot be a call."""
    problem = payload.problem
    call = None
    if problem is None:
        try:
            call = parse_push(payload.data)
        except PayloadError as error:
            problem = str(error)
    if call is None:
        assert problem is not None
        event_id = inbox.record_event(
            session,
            source=Channel.KNOWLARITY.value,
            external_id=f"invalid:{payload_fingerprint(payload.data)}",
            intake=None,
            raw_payload=payload.data,
            status=IntakeStatus.FAILED,
            reason=problem,
        )
        log.warning("knowlarity push rejected: %s", problem)
        raise UnusablePayload(f"unusable Knowlarity payload: {problem}", status="failed", event_id=event_id)
    return _logged(call, ingest_call(session, call, **_call_settings(settings)))


class _CallSettings(TypedDict):
    region: str
    policy: LeadPolicy
    callback_sla: timedelta


def _call_settings(settings: Settings) -> _CallSettings:
    return {
        "region": settings.phone_region,
        "policy": settings.knowlarity_lead_policy,
        "callback_sla": timedelta(minutes=settings.knowlarity_callback_sla_minutes),
    }


def _logged(call: CallRecord, result: CallIngest) -> CallIngest:
    if result.intake.lead_id is None:
        log.warning("knowlarity call %s from %s kept as failed: %s",
                    call.call_uuid, mask(call.customer_phone), result.intake.reason)  # fmt: skip
    return result
