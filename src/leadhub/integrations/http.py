"""Outbound HTTP to vendors: timeouts, retries with backoff on 5xx, 429 and network errors.

Vendor modules decide what a response means; this module only decides whether to try again.
Secrets travel in headers and are never logged (only the method, the path and the status are).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx2 as httpx

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 5
    base_delay: float = 0.5  # seconds; doubled each attempt, with jitter
    max_delay: float = 30.0
    retry_statuses: frozenset[int] = frozenset({429, 500, 502, 503, 504})

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        if retry_after is not None:
            try:
                return min(self.max_delay, max(0.0, float(retry_after)))
            except ValueError:
                pass
        return float(
            min(self.max_delay, self.base_delay * (2 ** (attempt - 1))) * (0.5 + random.random() / 2)
        )


class VendorUnavailable(Exception):
    """The vendor did not answer usefully after every retry."""


def request_with_retries(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    params: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    policy: RetryPolicy = RetryPolicy(),
    sleep: Callable[[float], None] = time.sleep,
) -> httpx.Response:
    """Send, retrying on network errors and on `policy.retry_statuses`; return the last response
    otherwise (the caller interprets 4xx). Raises VendorUnavailable when every attempt failed."""
    last: str = "no attempt made"
    for attempt in range(1, policy.attempts + 1):
        try:
            response = client.request(method, url, params=params, headers=headers)
        except httpx.TransportError as error:  # timeouts, refused connections, broken reads
            last = f"{type(error).__name__}"
            retry_after = None
        else:
            if response.status_code not in policy.retry_statuses:
                return response
            last = f"HTTP {response.status_code}"
            retry_after = response.headers.get("retry-after")
        if attempt < policy.attempts:
            wait = policy.delay(attempt, retry_after)
            log.warning("%s %s: %s; retry %d/%d in %.1fs", method, httpx.URL(url).path, last, attempt,
                        policy.attempts - 1, wait)  # fmt: skip
            sleep(wait)
    raise VendorUnavailable(f"{method} {httpx.URL(url).path} failed after {policy.attempts} attempts: {last}")
