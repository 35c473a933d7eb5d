"""A webhook redelivery, the background fetch and a sync racing on one lead: one lead (real threads)."""

from __future__ import annotations

import json
import threading

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from leadhub.config import Settings
from leadhub.db.models import IntakeEvent, Lead
from leadhub.db.session import session_scope
from leadhub.integrations.meta import service
from leadhub.integrations.meta.fake_server import FakeGraph
from leadhub.integrations.meta.mapper import FormRules
from leadhub.integrations.meta.sync import make_client
from leadhub.integrations.meta.webhook import leadgen_changes
from tests.integrations.meta.conftest import FORM


def test_racing_fetches_syncs_and_redeliveries_make_one_lead(
    settings: Settings, graph: FakeGraph, configured: sessionmaker[Session]
) -> None:
    lead = graph.add_lead(FORM, phone="+919822233344")
    changes = leadgen_changes(json.loads(graph.webhook_body([lead])))
    with session_scope(configured) as s:
        service.record_webhook(s, changes)
    rules = FormRules(form_id=FORM)
    barrier = threading.Barrier(9)
    errors: list[BaseException] = []

    def fetch() -> None:
        with make_client(settings) as client:
            barrier.wait()
            service.fetch_pending(configured, client)

    def sync() -> None:
        barrier.wait()
        with session_scope(configured) as s:
            service.ingest_lead(s, lead, rules=rules)

    def redeliver() -> None:
        barrier.wait()
        with session_scope(configured) as s:
            service.record_webhook(s, changes)

    def guarded(target: object) -> None:
        try:
            target()  # type: ignore[operator]
        except BaseException as error:
            errors.append(error)

    threads = [
        threading.Thread(target=guarded, args=(t,)) for t in [fetch] * 3 + [sync] * 3 + [redeliver] * 3
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with configured() as s:
        assert s.execute(select(func.count()).select_from(Lead)).scalar_one() == 1
        assert s.execute(select(IntakeEvent.status)).scalars().all() == ["processed"]
