"""The call-log API client: one page at a time, retried with backoff, paged by offset to `total_count`.

Request and envelope shape: ../shared/providers/knowlarity.md §1.2 (names in payloads.py). Secrets go in
headers and are never logged.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx2 as httpx

from leadhub.config import Settings
from leadhub.errors import NotConfiguredError
from leadhub.integrations.http import RetryPolicy, VendorUnavailable, request_with_retries
from leadhub.integrations.knowlarity import payloads as k

log = logging.getLogger(__name__)

DEFAULT_POLICY = RetryPolicy()


class KnowlarityError(Exception):
    """The call-log API answered, but not usefully. `kind` goes to the checkpoint's error_kind."""

    def __init__(self, message: str, *, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True, slots=True)
class Page:
    objects: list[dict[str, Any]]
    total_count: int | None


class KnowlarityClient:
    def __init__(
        self,
        *,
        base_url: str,
        channel: str,
        app_key: str,
        sr_key: str,
        timeout: float = 20.0,
        policy: RetryPolicy = DEFAULT_POLICY,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._path = k.CALLLOG_PATH.format(channel=channel)
        self._policy = policy
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            timeout=timeout,
            headers={k.HEADER_APP_KEY: app_key, k.HEADER_SR_KEY: sr_key, k.HEADER_CHANNEL: channel},
        )

    @classmethod
    def from_settings(cls, settings: Settings, *, policy: RetryPolicy = DEFAULT_POLICY) -> KnowlarityClient:
        if settings.knowlarity_app_key is None or settings.knowlarity_sr_key is None:
            raise NotConfiguredError(
                "Knowlarity sync needs LEADHUB_KNOWLARITY_APP_KEY (x-api-key) and LEADHUB_KNOWLARITY_SR_KEY"
            )
        return cls(
            base_url=settings.knowlarity_api_url,
            channel=settings.knowlarity_channel,
            app_key=settings.knowlarity_app_key.get_secret_value(),
            sr_key=settings.knowlarity_sr_key.get_secret_value(),
            timeout=settings.knowlarity_timeout_seconds,
            policy=policy,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> KnowlarityClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def calllog_page(self, start: datetime, end: datetime, *, offset: int, limit: int) -> Page:
        params = {k.PARAM_START: k.request_time(start), k.PARAM_END: k.request_time(end),
                  k.PARAM_LIMIT: limit, k.PARAM_OFFSET: offset}  # fmt: skip
        # A truncated or garbled body is retried like a 5xx: it is what a proxy cut-off looks like.
        for attempt in range(1, self._policy.attempts + 1):
            response = request_with_retries(
                self._http, "GET", self._path, params=params, policy=self._policy, sleep=self._sleep
            )
            if response.status_code in (401, 403):
                raise KnowlarityError(
                    f"call-log API refused the keys (HTTP {response.status_code})", kind="unauthorized"
                )
            if response.status_code >= 400:
                raise KnowlarityError(
                    f"call-log API answered HTTP {response.status_code}", kind="bad_request"
                )
            try:
                return _page(response.content)
            except ValueError as error:
                problem = str(error)
            if attempt < self._policy.attempts:
                log.warning("call-log page at offset %d unreadable (%s); retrying", offset, problem)
                self._sleep(self._policy.delay(attempt))
        raise VendorUnavailable(f"call-log page at offset {offset} unreadable after retries: {problem}")

    def iter_calllog(self, start: datetime, end: datetime, *, limit: int = 100) -> Iterator[dict[str, Any]]:
        """Every record in [start, end], following `offset` until `total_count` or an empty page."""
        offset = 0
        while True:
            page = self.calllog_page(start, end, offset=offset, limit=limit)
            yield from page.objects
            offset += len(page.objects)
            if not page.objects or (page.total_count is not None and offset >= page.total_count):
                return


def _page(content: bytes) -> Page:
    try:
        body = json.loads(content)
    except ValueError as error:
        raise ValueError("the body is not JSON") from error
    if not isinstance(body, dict) or not isinstance(body.get(k.ENVELOPE_OBJECTS), list):
        raise ValueError(f"no `{k.ENVELOPE_OBJECTS}` list in the body")
    meta = body.get(k.ENVELOPE_META)
    total = meta.get(k.ENVELOPE_TOTAL) if isinstance(meta, dict) else None
    objects = [o for o in body[k.ENVELOPE_OBJECTS] if isinstance(o, dict)]
    return Page(
        objects=objects,
        total_count=int(total) if isinstance(total, int | str) and str(total).isdigit() else None,
    )
