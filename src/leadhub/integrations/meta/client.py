"""The Graph API as leadhub uses it: one lead, a form's leads page by page, a page's forms.

Every answer is classified here (../shared/providers/meta.md §2.6): rate limits back off and resume,
token errors raise GraphTokenError for a person to act on, transient errors retry, and what is still
failing after the retries raises GraphUnavailable. Tokens travel as query parameters and are never
logged: log lines and exception messages carry the path only.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx2 as httpx

from leadhub.integrations.http import RetryPolicy, VendorUnavailable, request_with_retries
from leadhub.integrations.meta import vendor

log = logging.getLogger(__name__)
# httpx2 logs every request URL at INFO, and Graph URLs carry the page token: keep those quiet.
logging.getLogger("httpx2").setLevel(logging.WARNING)
logging.getLogger("httpcore2").setLevel(logging.WARNING)


class GraphError(Exception):
    """Graph answered with an error leadhub cannot retry its way out of."""

    def __init__(self, message: str, *, code: int | None = None, subcode: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.subcode = subcode


class GraphTokenError(GraphError):
    """The page token is expired or revoked (code 190): a person must store a new one."""


class GraphRateLimited(GraphError):
    """Throttled for longer than this run is willing to wait."""

    def __init__(self, message: str, *, code: int | None, wait_seconds: float) -> None:
        super().__init__(message, code=code)
        self.wait_seconds = wait_seconds


class GraphUnavailable(GraphError):
    """5xx, timeouts or codes 1/2 on every attempt."""


def appsecret_proof(token: str, app_secret: str) -> str:
    return hmac.new(app_secret.encode(), token.encode(), hashlib.sha256).hexdigest()


def usage_wait_seconds(headers: httpx.Headers) -> float:
    """How long to pause when the usage headers say a limit is near (0 when it is not)."""
    wait = 0.0
    raw_app = headers.get(vendor.APP_USAGE_HEADER)
    if raw_app:
        try:
            app = json.loads(raw_app)
            if max(float(v) for v in app.values()) >= vendor.USAGE_HIGH_PERCENT:
                wait = max(wait, 60.0)
        except (ValueError, TypeError, AttributeError):
            pass
    raw_buc = headers.get(vendor.BUC_USAGE_HEADER)
    if raw_buc:
        try:
            for entries in json.loads(raw_buc).values():
                for entry in entries:
                    regain = float(entry.get(vendor.REGAIN_ACCESS_KEY) or 0) * 60
                    busy = max(
                        float(entry.get(k) or 0) for k in ("call_count", "total_cputime", "total_time")
                    )
                    if regain > 0 or busy >= vendor.USAGE_HIGH_PERCENT:
                        wait = max(wait, regain or 60.0)
        except (ValueError, TypeError, AttributeError):
            pass
    return wait


_DEFAULT_POLICY = RetryPolicy(attempts=4)


class GraphClient:
    def __init__(
        self,
        base_url: str,
        version: str,
        *,
        app_secret: str | None = None,
        timeout: float = 10.0,
        policy: RetryPolicy = _DEFAULT_POLICY,
        max_rate_wait: float = 300.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.root = f"{base_url.rstrip('/')}/{version.strip('/')}"
        self.app_secret = app_secret
        self.policy = policy
        self.max_rate_wait = max_rate_wait
        self.sleep = sleep
        self.http = httpx.Client(timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> GraphClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def get_lead(self, leadgen_id: str, token: str) -> dict[str, Any]:
        return self._get(f"{self.root}/{leadgen_id}", self._params(token, fields=vendor.LEAD_FIELDS))

    def page_forms(self, page_id: str, token: str) -> list[dict[str, Any]]:
        forms: list[dict[str, Any]] = []
        params: dict[str, str] | None = self._params(
            token, fields=vendor.FORM_FIELDS, limit=str(vendor.PAGE_LIMIT_MAX)
        )
        url: str | None = f"{self.root}/{page_id}/leadgen_forms"
        while url:
            body = self._get(url, params)
            forms.extend(body.get("data") or [])
            url, params = (body.get("paging") or {}).get("next"), None
        return forms

    def form_leads(
        self,
        form_id: str,
        token: str,
        *,
        since: int | None = None,
        until: int | None = None,
        limit: int = 100,
    ) -> Iterator[list[dict[str, Any]]]:
        """Yield pages of leads created after `since` (and before `until`), following paging.next."""
        filters = []
        if since is not None:
            filters.append({"field": vendor.FILTER_TIME_CREATED, "operator": vendor.FILTER_GREATER_THAN,
                            "value": since})  # fmt: skip
        if until is not None:
            filters.append({"field": vendor.FILTER_TIME_CREATED, "operator": vendor.FILTER_LESS_THAN,
                            "value": until})  # fmt: skip
        extra = {"limit": str(min(limit, vendor.PAGE_LIMIT_MAX)), "fields": vendor.LEAD_FIELDS}
        if filters:
            extra["filtering"] = json.dumps(filters)
        params: dict[str, str] | None = self._params(token, **extra)
        url: str | None = f"{self.root}/{form_id}/leads"
        while url:
            body = self._get(url, params)
            yield list(body.get("data") or [])
            # `next` already carries the token, the cursor and the filter.
            url, params = (body.get("paging") or {}).get("next"), None

    def _params(self, token: str, **extra: str) -> dict[str, str]:
        params = {"access_token": token, **extra}
        if self.app_secret:
            params["appsecret_proof"] = appsecret_proof(token, self.app_secret)
        return params

    def _get(self, url: str, params: dict[str, str] | None) -> dict[str, Any]:
        path = httpx.URL(url).path
        transient_tries = 0
        rate_waited = 0.0
        while True:
            try:
                response = request_with_retries(self.http, "GET", url, params=params, policy=self.policy,
                                                 sleep=self.sleep)  # fmt: skip
            except VendorUnavailable as error:
                raise GraphUnavailable(str(error)) from error
            try:
                body = response.json()
            except ValueError as error:
                raise GraphUnavailable(f"GET {path}: HTTP {response.status_code}, not JSON") from error
            failure = body.get("error") if isinstance(body, dict) else None
            if not failure:
                pause = usage_wait_seconds(response.headers)
                if pause:
                    log.warning("GET %s: Graph usage is high; pausing %.0fs", path, pause)
                    self.sleep(min(pause, self.max_rate_wait))
                if not isinstance(body, dict):
                    raise GraphUnavailable(f"GET {path}: unexpected answer")
                return body
            code = _int(failure.get("code"))
            subcode = _int(failure.get("error_subcode"))
            message = f"GET {path}: Graph error {code}" + (f"/{subcode}" if subcode else "")
            message += f": {failure.get('message', '')}".rstrip(": ")
            if code in vendor.TOKEN_CODES:
                raise GraphTokenError(message, code=code, subcode=subcode)
            if code in vendor.RATE_LIMIT_CODES:
                wait = usage_wait_seconds(response.headers) or 60.0
                if rate_waited + wait > self.max_rate_wait:
                    raise GraphRateLimited(message, code=code, wait_seconds=wait)
                log.warning("%s; backing off %.0fs, then resuming", message, wait)
                self.sleep(wait)
                rate_waited += wait
                continue
            if code in vendor.TRANSIENT_CODES:
                transient_tries += 1
                if transient_tries >= self.policy.attempts:
                    raise GraphUnavailable(message, code=code)
                self.sleep(self.policy.delay(transient_tries))
                continue
            raise GraphError(message, code=code, subcode=subcode)


def _int(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[call-overload, no-any-return]
    except (TypeError, ValueError):
        return None
