"""A fake Graph API on loopback, for tests, the demo and benchmarks: pages, forms and leads with
paging and field variants, signed webhook deliveries, and injectable faults (rate limits, expired
tokens, 500s, slow answers, unreadable leads). It speaks the shapes of ../shared/providers/meta.md §2.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from leadhub.integrations.meta import vendor
from leadhub.integrations.meta.webhook import sign


@dataclass
class Faults:
    down: bool = False  # every call answers 500
    fail_next: int = 0  # the next N calls answer 500
    transient_next: int = 0  # the next N calls answer Graph error code 2 (HTTP 400... as Meta does)
    rate_limit_next: int = 0  # the next N calls answer a rate-limit error
    rate_limit_code: int = 80005
    regain_minutes: float = 0  # estimated_time_to_regain_access in the BUC usage header
    slow_seconds: float = 0.0
    expired_tokens: set[str] = field(default_factory=set)
    broken_leads: set[str] = field(default_factory=set)  # leads whose field_data is unreadable
    fail_after_pages: int | None = None  # 500 on every leads page after this many were served


class FakeGraph:
    def __init__(self, version: str = "v23.0") -> None:
        self.version = version
        self.tokens: dict[str, str] = {}  # page id -> token
        self.forms: dict[str, dict[str, Any]] = {}
        self.leads: dict[str, dict[str, Any]] = {}
        self.form_leads: dict[str, list[str]] = {}
        self.faults = Faults()
        self.calls: list[str] = []  # request paths, for assertions
        self.leads_pages_served = 0
        self._lock = threading.Lock()
        self._ids = itertools.count(900_000_000_000_001)
        self._server: ThreadingHTTPServer | None = None
        self.url = ""

    # --- data

    def add_page(self, page_id: str, token: str) -> None:
        self.tokens[page_id] = token

    def add_form(
        self, form_id: str, page_id: str, *, name: str = "Test drive", custom: tuple[str, ...] = ()
    ) -> None:
        questions = [{"key": k, "label": k.replace("_", " ").title(), "type": k.upper()}
                     for k in ("full_name", "phone_number", "email", "city")]  # fmt: skip
        questions += [{"key": k, "label": k, "type": "CUSTOM"} for k in custom]
        self.forms[form_id] = {"id": form_id, "page_id": page_id, "name": name, "status": "ACTIVE",
                               "questions": questions}  # fmt: skip
        self.form_leads.setdefault(form_id, [])

    def add_lead(
        self,
        form_id: str,
        *,
        phone: str,
        name: str = "Rahul Sharma",
        created_time: int | None = None,
        lead_id: str | None = None,
        platform: str = "fb",
        variant: int = 0,
        answers: dict[str, list[str] | None] | None = None,
    ) -> dict[str, Any]:
        """A lead as Graph returns it. `variant` rotates the real-world field shapes (§2.7)."""
        lead_id = lead_id or str(next(self._ids))
        first, _, last = name.partition(" ")
        field_data: list[dict[str, Any]]
        match variant % 4:
            case 0:
                field_data = [
                    {"name": "full_name", "values": [name]},
                    {"name": "phone_number", "values": [phone]},
                ]
            case 1:
                field_data = [{"name": "first_name", "values": [first]}, {"name": "last_name", "values": [last]},
                              {"name": "phone", "values": [phone]}]  # fmt: skip
            case 2:
                field_data = [
                    {"name": "FULL_NAME", "values": [name]},
                    {"name": "mobile_phone", "values": [f"p:{phone}"]},
                ]
            case _:
                field_data = [{"name": "full_name", "values": [name]},
                              {"name": "phone_number_with_country_code", "values": [phone]}, {"name": "email"}]  # fmt: skip
        field_data.append({"name": "city", "values": ["Pune"]})
        for key, values in (answers or {}).items():
            field_data.append({"name": key} if values is None else {"name": key, "values": values})
        form = self.forms[form_id]
        lead = {
            "id": lead_id,
            "created_time": datetime.fromtimestamp(created_time or int(time.time()), UTC).strftime(vendor.GRAPH_TIME_FORMAT),
            "_ts": created_time or int(time.time()),
            "ad_id": "200000000000001", "adset_id": "210000000000001", "campaign_id": "400000000000001",
            "form_id": form_id, "is_organic": False, "platform": platform, "field_data": field_data,
            "_page": form["page_id"],
        }  # fmt: skip
        with self._lock:
            self.leads[lead_id] = lead
            self.form_leads[form_id].append(lead_id)
        return self.public(lead)

    @staticmethod
    def public(lead: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in lead.items() if not k.startswith("_")}

    def webhook_body(self, leads: list[dict[str, Any]], *, ids_as_numbers: bool = False) -> bytes:
        """One delivery: one entry per page, one change per lead (the batching Meta does)."""
        entries: dict[str, dict[str, Any]] = {}
        for lead in leads:
            page_id = self.forms[lead["form_id"]]["page_id"]
            cast = int if ids_as_numbers else str
            entry = entries.setdefault(
                page_id, {"id": cast(page_id), "time": int(time.time()), "changes": []}
            )
            entry["changes"].append({"field": "leadgen", "value": {
                "leadgen_id": cast(lead["id"]), "page_id": cast(page_id), "form_id": cast(lead["form_id"]),
                "adgroup_id": cast(lead["ad_id"]), "ad_id": cast(lead["ad_id"]), "created_time": int(time.time()),
            }})  # fmt: skip
        return json.dumps({"object": "page", "entry": list(entries.values())}).encode()

    @staticmethod
    def signature(body: bytes, app_secret: str) -> dict[str, str]:
        return {vendor.SIGNATURE_HEADER: sign(body, app_secret), "Content-Type": "application/json"}

    # --- serving

    def start(self) -> str:
        graph = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, body, headers = graph._answer(self.path)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_: Any) -> None:  # quiet: tests read assertions, not access logs
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _answer(self, raw_path: str) -> tuple[int, Any, dict[str, str]]:
        parts = urlsplit(raw_path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        path = [p for p in parts.path.split("/") if p]
        faults = self.faults
        with self._lock:
            self.calls.append(parts.path)
            if faults.slow_seconds:
                time.sleep(faults.slow_seconds)
            if faults.down or faults.fail_next > 0:
                faults.fail_next = max(0, faults.fail_next - 1)
                return 500, {"error": {"message": "An unknown error occurred", "code": 1}}, {}
            if faults.transient_next > 0:
                faults.transient_next -= 1
                return 400, _error(2, "Service temporarily unavailable"), {}
            if faults.rate_limit_next > 0:
                faults.rate_limit_next -= 1
                usage = {"1": [{"type": "leadgen", "call_count": 100, "total_cputime": 10, "total_time": 10,
                                vendor.REGAIN_ACCESS_KEY: faults.regain_minutes}]}  # fmt: skip
                return (400, _error(faults.rate_limit_code, "User request limit reached"),
                        {vendor.BUC_USAGE_HEADER: json.dumps(usage)})  # fmt: skip
        if len(path) < 2 or path[0] != self.version:
            return 400, _error(100, "Unknown path"), {}
        token = query.get("access_token", "")
        if token in faults.expired_tokens:
            return 400, {"error": {"message": "Error validating access token: Session has expired",
                                   "type": "OAuthException", "code": 190, "error_subcode": 463}}, {}  # fmt: skip
        if len(path) == 2:
            lead = self.leads.get(path[1])
            if lead is None or self.tokens.get(lead["_page"]) != token:
                return 400, _error(100, "Unsupported get request", subcode=33), {}
            return 200, self._render(lead), {}
        object_id, edge = path[1], path[2]
        if edge == "leadgen_forms":
            if self.tokens.get(object_id) != token:
                return 400, _error(190, "Invalid OAuth access token"), {}
            forms = [{k: v for k, v in f.items() if k != "page_id"} for f in self.forms.values()
                     if f["page_id"] == object_id]  # fmt: skip
            return 200, {"data": forms, "paging": {}}, {}
        if edge == "leads":
            return self._leads(object_id, token, query, parts.path)
        return 400, _error(100, "Unknown edge"), {}

    def _leads(
        self, form_id: str, token: str, query: dict[str, str], path: str
    ) -> tuple[int, Any, dict[str, str]]:
        form = self.forms.get(form_id)
        if form is None or self.tokens.get(form["page_id"]) != token:
            return 400, _error(100, "Unsupported get request", subcode=33), {}
        with self._lock:
            if (
                self.faults.fail_after_pages is not None
                and self.leads_pages_served >= self.faults.fail_after_pages
            ):
                return 500, _error(1, "An unknown error occurred"), {}
            self.leads_pages_served += 1
            chosen = [self.leads[i] for i in self.form_leads[form_id]]
        for rule in json.loads(query.get("filtering", "[]")):
            if rule["field"] == vendor.FILTER_TIME_CREATED and rule["operator"] == vendor.FILTER_GREATER_THAN:
                chosen = [lead for lead in chosen if lead["_ts"] > int(rule["value"])]
            if rule["field"] == vendor.FILTER_TIME_CREATED and rule["operator"] == vendor.FILTER_LESS_THAN:
                chosen = [lead for lead in chosen if lead["_ts"] < int(rule["value"])]
        chosen.sort(key=lambda lead: (lead["_ts"], lead["id"]), reverse=True)  # newest first, as Graph
        limit = min(int(query.get("limit", "25")), vendor.PAGE_LIMIT_MAX)
        offset = int(query.get("after", "0"))
        page = chosen[offset : offset + limit]
        body: dict[str, Any] = {"data": [self._render(lead) for lead in page], "paging": {
            "cursors": {"before": str(offset), "after": str(offset + len(page))}}}  # fmt: skip
        if offset + limit < len(chosen):
            following = {**query, "after": str(offset + limit)}
            body["paging"]["next"] = f"{self.url}{path}?{urlencode(following)}"
        return 200, body, {}

    def _render(self, lead: dict[str, Any]) -> dict[str, Any]:
        public = self.public(lead)
        if lead["id"] in self.faults.broken_leads:
            public["field_data"] = "unreadable"
        return public


def _error(code: int, message: str, *, subcode: int | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {
        "message": message,
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": "AbCd123",
    }
    if subcode:
        error["error_subcode"] = subcode
    return {"error": error}


@contextmanager
def running_fake_graph(version: str = "v23.0") -> Iterator[FakeGraph]:
    graph = FakeGraph(version)
    graph.start()
    try:
        yield graph
    finally:
        graph.stop()
