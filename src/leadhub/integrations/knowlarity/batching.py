"""Knowlarity pushes written together on PostgreSQL: one statement and one transaction for many calls.

A push alone is one short transaction (`leadhub_ingest_call`), and its cost is mostly the round trip
and the commit. Here each server process queues its pushes, and whenever fewer than `in_flight`
batches are being written, the queue leaves as one batch of up to `batch_max` calls through
`leadhub_ingest_calls` (revision 0014). There is no timer: a push that finds a free slot is sent at
once, alone under light load, so waiting only happens when the database is already busy, and then
the calls that queued meanwhile share the next commit ("natural" batching, as group commit does).

A request is answered only after its batch committed. A batch is sorted by the caller's phone, then
the call's start time and id, so that concurrent batches (other slots, other processes) lock
customers and events in the same order and do not deadlock on each other, and one caller's calls
are written in the order they happened (a missed call, then the answered call that settles it); a deadlock or serialization failure that happens
anyway (a lock taken by another writer) sends the whole batch again, up to `RETRIES` times. A batch
that still fails is sent again call by call, so each request gets its own answer (and its own error).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, timedelta
from typing import Any

from leadhub.config import LeadPolicy
from leadhub.db.fastpath import StatementPool, is_conflict
from leadhub.db.types import json_dumps
from leadhub.integrations.knowlarity.calls import INGEST_CALL_SQL, CallIngest, call_document, call_result
from leadhub.integrations.knowlarity.payloads import CallRecord

log = logging.getLogger(__name__)

INGEST_CALLS = "SELECT leadhub_ingest_calls(%s::jsonb)"
RETRIES = 3  # a batch that lost a deadlock is sent again at most this many times
RETRY_PAUSE_SECONDS = 0.005  # up to this much (times the attempt), random, before sending it again


@dataclass(slots=True)
class _Pending:
    order: tuple[str, str, str]  # (caller phone, start time in UTC, call id): the lock order
    document: dict[str, Any]  # what leadhub_ingest_call takes: sent in the batch, or alone
    answer: asyncio.Future[CallIngest] = field(repr=False)


class CallBatcher:
    """One per server process and event loop (create_app makes it; requests share it)."""

    def __init__(
        self,
        pool: StatementPool,
        *,
        batch_max: int,
        in_flight: int,
        region: str = "IN",
        policy: LeadPolicy = LeadPolicy.ATTACH,
        callback_sla: timedelta = timedelta(minutes=30),
    ) -> None:
        if batch_max < 1 or in_flight < 1:
            raise ValueError("batch_max and in_flight must be at least 1")
        self._pool = pool
        self.batch_max = batch_max
        self.in_flight = in_flight
        self._settings: dict[str, Any] = {"region": region, "policy": policy, "callback_sla": callback_sla}
        self._queue: deque[_Pending] = deque()
        self._running: set[asyncio.Task[None]] = set()  # also keeps the tasks referenced

    async def ingest(self, call: CallRecord) -> CallIngest:
        """The call's answer, once the transaction that wrote it has committed."""
        document = call_document(call, **self._settings)
        phone = document.get("phone") or document["call"]["customer_phone"] or ""
        started = call.started_at.astimezone(UTC).isoformat() if call.started_at else ""
        answer = asyncio.get_running_loop().create_future()
        pending = _Pending((phone, started, call.call_uuid), document, answer)
        self._queue.append(pending)
        self._start_batches()
        return await pending.answer

    def _start_batches(self) -> None:
        while self._queue and len(self._running) < self.in_flight:
            take = min(len(self._queue), self.batch_max)
            batch = sorted((self._queue.popleft() for _ in range(take)), key=lambda p: p.order)
            task = asyncio.get_running_loop().create_task(self._write(batch))
            self._running.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._start_batches()

    async def _write(self, batch: list[_Pending]) -> None:
        try:
            answers = await self._write_together(batch)
            if answers is None:
                await self._write_one_by_one(batch)
                return
            for pending, answer in zip(batch, answers, strict=True):
                _settle(pending, answer)
        except BaseException as error:  # every waiting request gets an answer
            for pending in batch:
                _settle(pending, error)
            if not isinstance(error, Exception):
                raise

    async def _write_together(self, batch: list[_Pending]) -> list[CallIngest] | None:
        """The batch in one transaction; None when it failed for good (then it goes call by call)."""
        payload = json_dumps([p.document for p in batch])
        for attempt in range(RETRIES + 1):
            try:
                answers = await self._pool.call_json(INGEST_CALLS, payload, resend_conflicts=False)
            except Exception as error:  # a value refused for the whole array, the pool busy...
                if not is_conflict(error):
                    log.warning("knowlarity batch of %d failed (%s); sending its calls one by one",
                                len(batch), type(error).__name__)  # fmt: skip
                    return None
                log.warning("knowlarity batch of %d lost a race (%s), attempt %d of %d",
                            len(batch), type(error).__name__, attempt + 1, RETRIES + 1)  # fmt: skip
                await asyncio.sleep(random.uniform(0, RETRY_PAUSE_SECONDS) * (attempt + 1))
                continue
            log.debug("knowlarity batch of %d calls committed", len(batch))
            return [call_result(answer) for answer in answers]
        log.warning("knowlarity batch of %d kept losing races; sending its calls one by one", len(batch))
        return None

    async def _write_one_by_one(self, batch: list[_Pending]) -> None:
        async def one(pending: _Pending) -> None:
            try:
                answer = await self._pool.call_json(INGEST_CALL_SQL, json_dumps(pending.document))
                _settle(pending, call_result(answer))
            except Exception as error:  # the request answers it: 422, 503...
                _settle(pending, error)

        await asyncio.gather(*(one(p) for p in batch))


def _settle(pending: _Pending, outcome: CallIngest | BaseException) -> None:
    if pending.answer.done():  # the request was cancelled (its client went away)
        return
    if isinstance(outcome, BaseException):
        pending.answer.set_exception(outcome)
    else:
        pending.answer.set_result(outcome)
