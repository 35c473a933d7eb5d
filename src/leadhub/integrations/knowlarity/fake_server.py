"""A fake Knowlarity, on loopback in a thread: the call-log API with realistic records and offset paging,
a push sender for the webhook, and faults on demand (5xx, 429, timeouts, malformed JSON, slow pages,
records repeated across pages). Used by the tests, the demo and the benchmarks; never mocks the client.

    with FakeKnowlarity(app_key="a", sr_key="s") as fake:
        fake.add_calls(fake_calls(50))
        fake.fail_next(2, status=500)
        ...  # point LEADHUB_KNOWLARITY_API_URL at fake.base_url
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections import deque
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx2 as httpx

from leadhub.integrations.knowlarity import payloads as k


def fake_calls(
    n: int,
    *,
    start: datetime | None = None,
    numbers: tuple[str, ...] = ("+918000000010", "+918000000011", "+918000000012"),
    callers: int | None = None,
    seed: int = 7,
) -> list[dict[str, Any]]:
    """`n` call-log records (the shape of §1.3), one every ~minute from `start`; repeat callers when
    `callers` < n; about one call in four missed."""
    rng = random.Random(seed)
    start = start or datetime.now(UTC) - timedelta(hours=2)
    pool = [f"+919{rng.randrange(10**8, 10**9):09d}" for _ in range(callers or n)]
    records = []
    for i in range(n):
        at = start + timedelta(seconds=60 * i + rng.randrange(30))
        missed = rng.random() < 0.25
        duration = 0 if missed else rng.randrange(15, 600)
        agent = "NA" if missed else f"+91700000{rng.randrange(1000):04d}"
        records.append(
            {
                k.LOG_CALL_ID: str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                k.LOG_CUSTOMER: pool[i % len(pool)] if callers else pool[i],
                k.LOG_VIRTUAL_NUMBER: rng.choice(numbers),
                k.LOG_AGENT: agent,
                k.LOG_DESTINATION: agent,
                "extension": "None",
                k.LOG_START: k.request_time(at),
                k.LOG_DURATION: duration,
                k.LOG_BUSINESS_TYPE: "Missed Call" if missed else "Call Group",
                k.LOG_DIRECTION: 0,
                k.LOG_RECORDING: "" if missed else f"https://recordings.example/{i}.mp3",
            }
        )
    return records


def as_push(record: dict[str, Any]) -> dict[str, str]:
    """The push Knowlarity would send for a call-log record (§1.4 field names, string values)."""
    missed = record.get(k.LOG_BUSINESS_TYPE) == "Missed Call"
    start = k.parse_time(record.get(k.LOG_START)) or datetime.now(UTC)
    duration = int(record.get(k.LOG_DURATION) or 0)
    return {
        k.PUSH_CALL_ID: record[k.LOG_CALL_ID],
        k.PUSH_CALLER: record[k.LOG_CUSTOMER],
        k.PUSH_VIRTUAL_NUMBER: record.get(k.LOG_VIRTUAL_NUMBER) or "",
        k.PUSH_DESTINATION: "Missed Call" if missed else str(record.get(k.LOG_AGENT) or ""),
        k.PUSH_DURATION: str(duration),
        k.PUSH_START: k.request_time(start),
        k.PUSH_END: k.request_time(start + timedelta(seconds=duration)),
        k.PUSH_DIRECTION: "outgoing" if record.get(k.LOG_DIRECTION) == 1 else "incoming",
        k.PUSH_TYPE: "missed call" if missed else "",
        k.PUSH_RECORDING: str(record.get(k.LOG_RECORDING) or ""),
        "timezone": "Asia/Kolkata",
    }


class FakeKnowlarity:
    def __init__(self, *, app_key: str, sr_key: str, channel: str = "Basic") -> None:
        self.app_key, self.sr_key, self.channel = app_key, sr_key, channel
        self._lock = threading.Lock()
        self._calls: list[dict[str, Any]] = []
        self._faults: deque[tuple[str, Any]] = deque()
        self.page_delay = 0.0
        self.duplicate_across_pages = False
        self.requests: list[dict[str, str]] = []  # every call-log query received, in order
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeKnowlarity:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> FakeKnowlarity:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # --- data and faults
    def add_calls(self, records: list[dict[str, Any]]) -> None:
        with self._lock:
            self._calls.extend(records)

    def fail_next(self, n: int = 1, *, status: int = 500) -> None:
        self._queue("status", status, n)

    def timeout_next(self, n: int = 1, *, seconds: float = 1.0) -> None:
        self._queue("sleep", seconds, n)

    def malformed_next(self, n: int = 1) -> None:
        self._queue("malformed", None, n)

    def allow_next(self, n: int = 1) -> None:
        """Serve the next `n` requests normally before the faults queued after this call."""
        self._queue("ok", None, n)

    def heal(self) -> None:
        with self._lock:
            self._faults.clear()
        self.page_delay = 0.0
        self.duplicate_across_pages = False

    def _queue(self, kind: str, value: Any, n: int) -> None:
        with self._lock:
            self._faults.extend([(kind, value)] * n)

    def _next_fault(self) -> tuple[str, Any] | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    # --- the call-log API
    def calllog(self, params: dict[str, str]) -> dict[str, Any]:
        start, end = k.parse_time(params.get(k.PARAM_START)), k.parse_time(params.get(k.PARAM_END))
        if start is None or end is None:
            raise ValueError("start_time and end_time are mandatory")
        limit, offset = int(params.get(k.PARAM_LIMIT, 100)), int(params.get(k.PARAM_OFFSET, 0))
        with self._lock:
            window = [c for c in self._calls if start <= (k.parse_time(c.get(k.LOG_START)) or start) <= end]
        window.sort(key=lambda c: (k.parse_time(c.get(k.LOG_START)) or start, c[k.LOG_CALL_ID]))
        # A record added while a client pages shifts the offsets: the page repeats the previous one's last.
        first = max(0, offset - 1) if self.duplicate_across_pages and offset > 0 else offset
        meta = {"limit": limit, "offset": offset, "next": "", "previous": "", k.ENVELOPE_TOTAL: len(window)}
        return {k.ENVELOPE_META: meta, k.ENVELOPE_OBJECTS: window[first : first + limit]}

    # --- pushes
    def push(
        self, url: str, record: dict[str, Any], *, key: str | None, shape: str = "form"
    ) -> httpx.Response:
        """Send the push for a call-log record to leadhub's webhook, as GET, form POST or JSON POST."""
        payload = as_push(record)
        params = {"key": key} if key else {}
        with httpx.Client(timeout=10) as client:
            if shape == "get":
                return client.get(url, params={**payload, **params})
            if shape == "json":
                return client.post(url, params=params, json=payload)
            return client.post(url, params=params, data=payload)


def _handler(fake: FakeKnowlarity) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

        def _send(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path.rstrip("/") != k.CALLLOG_PATH.format(channel=fake.channel):
                self._send(404, b'{"error": {"message": "not found"}}')
                return
            if (
                self.headers.get(k.HEADER_APP_KEY) != fake.app_key
                or self.headers.get(k.HEADER_SR_KEY) != fake.sr_key
            ):
                self._send(401, b'{"error": {"message": "Invalid authentication credentials"}}')
                return
            params = dict(parse_qsl(url.query, keep_blank_values=True))
            fake.requests.append(params)
            fault = fake._next_fault()
            if fault is not None and fault[0] == "sleep":
                time.sleep(fault[1])  # longer than the client's timeout: it gives up and retries
            if fake.page_delay:
                time.sleep(fake.page_delay)
            if fault is not None and fault[0] == "status":
                self._send(fault[1], b'{"error": {"message": "Internal Server Error"}}')
                return
            try:
                body = json.dumps(fake.calllog(params)).encode()
            except ValueError as error:
                self._send(400, json.dumps({"error": {"message": str(error)}}).encode())
                return
            if fault is not None and fault[0] == "malformed":
                body = body[: len(body) // 2]
            self._send(200, body)

    return Handler


def main() -> None:
    """`python -m leadhub.integrations.knowlarity.fake_server [calls]`: a fake Knowlarity for a demo of
    `leadhub sync knowlarity`, serving `calls` records from the last two hours until Ctrl-C."""
    import secrets
    import sys

    fake = FakeKnowlarity(app_key=secrets.token_hex(20), sr_key=str(uuid.uuid4()))
    fake.add_calls(fake_calls(int(sys.argv[1]) if len(sys.argv) > 1 else 50, callers=30))
    with fake:
        print("fake Knowlarity running; in another shell:")
        print(f"  export LEADHUB_KNOWLARITY_API_URL={fake.base_url}")
        print(f"  export LEADHUB_KNOWLARITY_APP_KEY={fake.app_key}")
        print(f"  export LEADHUB_KNOWLARITY_SR_KEY={fake.sr_key}")
        print("  leadhub sync knowlarity")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
