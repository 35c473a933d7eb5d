"""The backfill on hand-written legacy rows, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from leadhub.db.models import BackfillLog, Branch, Customer, IntakeEvent, Lead
from leadhub.errors import LeadhubError
from leadhub.leads.intake import Channel, Intake, IntakeOutcome, ingest
from leadhub.migration import common
from leadhub.migration.backfill import plan_backfill, run_backfill
from leadhub.migration.undo import undo_backfill
from leadhub.migration.verify import unlinked_leads, verify
from tests.conftest import empty_database
from tests.migration.legacy_rows import ROWS, T0, guide_backfill, insert_legacy

ASHA, RAVI = "+919876543210", "+919123456789"


def _customers(factory: sessionmaker[Session]) -> dict[str, Customer]:
    with factory() as s:
        return {c.phone_number_normalized: c for c in s.execute(select(Customer)).scalars()}


def _leads(factory: sessionmaker[Session]) -> list[Lead]:
    with factory() as s:
        return list(s.execute(select(Lead).order_by(Lead.id)).scalars())


@pytest.mark.parametrize("guide", [False, True], ids=["no-customers-yet", "guide-backfilled"])
def test_one_customer_per_canonical_phone_and_every_valid_lead_linked(
    engine: Engine, factory: sessionmaker[Session], guide: bool
) -> None:
    with factory() as s:
        insert_legacy(s)
        if guide:
            guide_backfill(s)
    report = run_backfill(engine, batch_size=4)  # tiny batches: many transactions, keyset boundaries
    customers = _customers(factory)
    assert set(customers) == {ASHA, RAVI, "+912223456789", "+442083661177"}
    leads = _leads(factory)
    for lead, (raw, *_rest) in zip(leads, ROWS, strict=True):
        assert lead.phone_number_legacy == raw  # the legacy string, verbatim
    linked = [lead for lead in leads if lead.customer_id is not None]
    assert len(linked) == 9
    for lead in linked:
        assert lead.phone_number_normalized in customers
        assert customers[lead.phone_number_normalized].id == lead.customer_id
    assert report.unlinked_by_reason == {"too_short": 1, "empty": 2, "not_valid": 1}
    assert leads[5].phone_number_normalized == RAVI  # two-in-one: the first is the key
    if guide:
        assert report.customers_merged == 4 + 1  # 5 strings for Asha, 2 for Ravi -> 1 each
        assert report.customers_detached == 2  # '98765', '98765432101'
    assert verify(engine).ok


@pytest.mark.parametrize("guide", [False, True], ids=["no-customers-yet", "guide-backfilled"])
def test_customer_attributes_equal_replaying_the_leads_oldest_first(
    engine: Engine, factory: sessionmaker[Session], guide: bool
) -> None:
    with factory() as s:
        insert_legacy(s)
        if guide:
            guide_backfill(s)
    run_backfill(engine)
    asha = _customers(factory)[ASHA]
    assert asha.full_name == "Asha Patel"  # the placeholder on the earliest lead never counts
    assert asha.city == "Pune"
    # the provider's call time, not the sync time, and the earliest lead's
    assert asha.created_at == datetime(2024, 2, 28, 4, 30, tzinfo=UTC)
    ravi = _customers(factory)[RAVI]
    assert ravi.full_name == "Ravi Kumar" and ravi.created_at == datetime(2024, 3, 1, 2, 0, tzinfo=UTC)
    leads = _leads(factory)
    assert leads[1].enquired_at == T0.replace(minute=10)  # no provider time: created_at


def test_a_live_customer_is_reused_and_never_overwritten(
    engine: Engine, factory: sessionmaker[Session]
) -> None:
    with factory() as s:
        insert_legacy(s)
        live = ingest(s, Intake(source=Channel.WALK_IN, phone="9876543210", name="Asha Live"))
        s.commit()
    run_backfill(engine)
    asha = _customers(factory)[ASHA]
    assert asha.id == live.customer_id and asha.full_name == "Asha Live"
    with factory() as s:
        assert s.execute(select(func.count()).where(Lead.customer_id == asha.id)).scalar_one() == 6
    assert verify(engine).ok


def test_a_second_run_changes_nothing_and_says_so(engine: Engine, factory: sessionmaker[Session]) -> None:
    with factory() as s:
        insert_legacy(s)
        guide_backfill(s)
    assert run_backfill(engine).changed_anything
    before = [
        (lead.id, lead.phone_number_normalized, lead.customer_id, lead.enquired_at)
        for lead in _leads(factory)
    ]
    again = run_backfill(engine)
    assert not again.changed_anything and again.leads_changed == 0
    assert [
        (lead.id, lead.phone_number_normalized, lead.customer_id, lead.enquired_at)
        for lead in _leads(factory)
    ] == before


def test_legacy_external_ids_are_not_imported_again(engine: Engine, factory: sessionmaker[Session]) -> None:
    with factory() as s:
        insert_legacy(s)
    run_backfill(engine)
    first_lead = _leads(factory)[0].id
    with factory() as s:
        again = ingest(s, Intake(source=Channel.KNOWLARITY, phone="9876543210", external_id="call-0"))
        assert again.status is IntakeOutcome.DUPLICATE
        assert again.lead_id == first_lead
        assert s.execute(select(func.count()).select_from(Lead)).scalar_one() == len(ROWS)


def test_dry_run_reports_without_writing(engine: Engine, factory: sessionmaker[Session]) -> None:
    with factory() as s:
        insert_legacy(s)
        guide_backfill(s)
    plan = plan_backfill(engine)
    assert plan["customers_to_detach"] == 2 and plan["leads_to_change"] == len(ROWS)
    assert plan["unlinked_by_reason"] == {"too_short": 1, "empty": 2, "not_valid": 1}
    with factory() as s:
        assert s.execute(select(func.count()).where(Lead.phone_number_legacy.is_not(None))).scalar_one() == 0


def test_report_invalid_lists_each_unlinked_lead(
    engine: Engine, factory: sessionmaker[Session], tmp_path: Path
) -> None:
    with factory() as s:
        ids = insert_legacy(s)
    run_backfill(engine)
    path = tmp_path / "invalid.csv"
    reasons = unlinked_leads(engine, report_file=path)
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    assert reasons == {"too_short": 1, "empty": 2, "not_valid": 1}
    assert [(int(r["lead_id"]), r["value"], r["reason"]) for r in rows] == [
        (ids[9], "98765", "too_short"), (ids[10], "", "empty"), (ids[11], "", "empty"), (ids[12], "98765432101", "not_valid"),
    ]  # fmt: skip


@pytest.mark.parametrize("guide", [False, True], ids=["no-customers-yet", "guide-backfilled"])
def test_undo_restores_every_row(engine: Engine, factory: sessionmaker[Session], guide: bool) -> None:
    with factory() as s:
        insert_legacy(s)
        if guide:
            guide_backfill(s)

    def snapshot() -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
        with factory() as s:
            leads = [tuple(r) for r in s.execute(select(Lead.__table__).order_by(Lead.id)).all()]
            customers = [tuple(r) for r in s.execute(select(Customer.__table__).order_by(Customer.id)).all()]
            return leads, customers

    before = snapshot()
    run_backfill(engine, batch_size=5)
    assert snapshot() != before
    report = undo_backfill(engine, batch_size=3)
    after = snapshot()
    assert after[1] == before[1]
    assert after[0] == before[0]
    assert report.kept_for_live_intake == []
    with factory() as s:
        assert s.execute(select(func.count()).select_from(IntakeEvent)).scalar_one() == 0
        assert s.execute(select(func.count()).select_from(BackfillLog)).scalar_one() == 0


def _walk_in(factory: sessionmaker[Session], phone: str, name: str) -> Any:
    """A walk-in through live intake (a new branch each time), committed; its intake result."""
    with factory() as s:
        branch = Branch(name="Pune")
        s.add(branch)
        s.flush()
        result = ingest(s, Intake(source=Channel.WALK_IN, phone=phone, name=name, branch_id=branch.id))
        s.commit()
    return result


def _stable(row: Any) -> tuple[object, ...]:
    """A row with what live intake stamps "now" (times after the legacy rows', walk-in ids) made equal."""
    return tuple(
        "now"
        if isinstance(v, datetime) and v > LIVE
        else "auto"
        if isinstance(v, str) and v.startswith("auto:")
        else v
        for v in row
    )


LIVE = datetime(2025, 1, 1, tzinfo=UTC)


def _everything(factory: sessionmaker[Session]) -> dict[str, Any]:
    """What undo leaves: every lead and customer, the inbox, the logs, the runs' states."""
    with factory() as s:
        return {
            "leads": [_stable(r) for r in s.execute(select(Lead.__table__).order_by(Lead.id)).all()],
            "customers": [_stable(r) for r in s.execute(select(Customer.__table__).order_by(Customer.id)).all()],
            "events": [_stable(r) for r in s.execute(text(
                "SELECT source, external_id, lead_id, customer_id, outcome FROM intake_events ORDER BY id"))],
            "logs": [s.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in ("backfill_log", "backfill_lead_log")],
            "runs": sorted(s.execute(text("SELECT status FROM backfill_runs")).scalars()),
        }  # fmt: skip


@pytest.mark.parametrize("guide", [False, True], ids=["no-customers-yet", "guide-backfilled"])
def test_undo_stopped_after_any_of_its_transactions_ends_as_an_uninterrupted_undo_when_run_again(
    engine: Engine, factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch, guide: bool
) -> None:
    # Undo commits a batch at a time (customers, references, leads, external ids, the customers the
    # backfill made, the logs, the runs). Stopped after each of its transactions in turn, a backfill
    # refuses to start, and running undo again ends where an uninterrupted undo does, live intake's
    # customer kept and reported.
    from leadhub.migration import undo as undo_module

    real = common.with_retries

    def prepare() -> None:
        empty_database(engine)
        with factory() as s:
            insert_legacy(s)
            if guide:
                guide_backfill(s)
        run_backfill(engine, batch_size=5)
        _walk_in(factory, "+91 91234 56789", "Ravi")  # since the switch, for a number the backfill linked

    prepare()
    reference = undo_backfill(engine, batch_size=3)
    expected = _everything(factory)
    assert len(reference.kept_for_live_intake) == (0 if guide else 1)
    stop_at = 0
    while True:
        stop_at += 1
        prepare()
        calls = 0

        def stops(*args: Any, stop_at: int = stop_at, **kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            if calls == stop_at:
                raise RuntimeError("undo stopped")
            return real(*args, **kwargs)

        monkeypatch.setattr(undo_module, "with_retries", stops)
        try:
            undo_backfill(engine, batch_size=3)
            break  # it needs fewer transactions than that: every stopping point was tried
        except RuntimeError as error:
            assert str(error) == "undo stopped"
        finally:
            monkeypatch.undo()
        if stop_at > 1:  # the runs are marked undoing: no backfill until the undo is finished
            with pytest.raises(LeadhubError, match="undo of the backfill was interrupted"):
                run_backfill(engine, batch_size=5)
        again = undo_backfill(engine, batch_size=3)
        assert _everything(factory) == expected, stop_at
        assert again.kept_for_live_intake == reference.kept_for_live_intake
    assert stop_at > 15  # each kind of transaction was stopped after at least once


def test_undo_puts_back_a_canonical_customer_merged_into_an_older_one(
    engine: Engine, factory: sessionmaker[Session]
) -> None:
    # A customer already stored under the canonical phone (here made by live intake before the
    # backfill) is merged into the guide's older customer, which takes its phone. Undo must give the
    # survivor its old phone back before it re-inserts the merged customer with the canonical one.
    with factory() as s:
        insert_legacy(s)
        guide_backfill(s)
    live = _walk_in(factory, "+91 98765 43210", "Asha")
    before = _everything(factory)
    report = run_backfill(engine, batch_size=5)
    assert report.customers_merged >= 1
    with factory() as s:
        assert s.get(Customer, live.customer_id) is None  # merged away
    undo_backfill(engine, batch_size=1000)  # one batch: the survivor and the merged customer together
    after = _everything(factory)
    assert after["customers"] == before["customers"] and after["leads"] == before["leads"]


def test_undo_after_a_second_run_merged_a_customer_the_first_made_gives_back_the_legacy_links(
    engine: Engine, factory: sessionmaker[Session]
) -> None:
    # Between two runs someone runs the guide's SQL again: a customer under a legacy string, older
    # than the one the first run made for that number. The second run merges the first run's customer
    # into it and moves its leads: those leads had no link before the backfill, and undo must say so.
    with factory() as s:
        insert_legacy(s)
    before = _everything(factory)
    run_backfill(engine, batch_size=5)
    with factory() as s:
        s.add(Customer(phone_number_normalized="09876543210", full_name="Asha Patel",
                       created_at=datetime(2024, 1, 1, tzinfo=UTC), updated_at=datetime(2024, 1, 1, tzinfo=UTC)))  # fmt: skip
        s.commit()
    between = _everything(factory)
    assert run_backfill(engine, batch_size=5).customers_merged == 1
    report = undo_backfill(engine, batch_size=3)
    assert report.kept_for_live_intake == []
    after = _everything(factory)
    assert after["leads"] == before["leads"]
    assert after["customers"] == [c for c in between["customers"] if c[1] == "09876543210"]


def test_undo_refuses_and_changes_nothing_when_a_merged_customer_s_id_is_taken(
    engine: Engine, factory: sessionmaker[Session]
) -> None:
    # A database where the id of a customer the repair merged was given to another customer since
    # (SQLite did so before revision 0016): undo cannot put it back, so it changes nothing and says so.
    with factory() as s:
        insert_legacy(s)
        guide_backfill(s)
    run_backfill(engine, batch_size=5)
    with factory() as s:
        merged = s.execute(
            select(BackfillLog.row_id).where(BackfillLog.kind == "customer_merged").order_by(BackfillLog.row_id)
        ).scalars().first()  # fmt: skip
        assert merged is not None
        s.add(Customer(id=merged, phone_number_normalized="+919000000099", origin="intake"))
        s.commit()
    before = _everything(factory)
    with pytest.raises(LeadhubError, match=f"customers \\[{merged}\\]"):
        undo_backfill(engine, batch_size=3)
    assert _everything(factory) == before


def test_undo_leaves_live_intake_alone_and_reports_it(engine: Engine, factory: sessionmaker[Session]) -> None:
    with factory() as s:
        insert_legacy(s)
    run_backfill(engine)
    live = _walk_in(factory, "+91 91234 56789", "Ravi")
    assert live.status is IntakeOutcome.CREATED
    report = undo_backfill(engine)
    assert report.kept_for_live_intake == [live.customer_id]
    with factory() as s:
        lead = s.get(Lead, live.lead_id)
        assert (
            lead is not None and lead.customer_id == live.customer_id and lead.phone_number_normalized == RAVI
        )


@pytest.mark.parametrize("guide", [False, True], ids=["no-customers-yet", "guide-backfilled"])
@pytest.mark.parametrize("edit", ["098765 00099", None], ids=["re-numbered", "phone-cleared"])
def test_undo_after_a_second_run_gives_back_the_legacy_rows_with_the_old_app_s_edits(
    engine: Engine, factory: sessionmaker[Session], guide: bool, edit: str | None
) -> None:
    # Between two runs the old app re-numbers (or clears the phone of) leads the first run linked. The
    # second run moves them; undo must still give back the rows as they were before any run, with the
    # old app's edits: the link they had before (none, or the guide's customer), no enquiry time.
    with factory() as s:
        ids = insert_legacy(s)
        if guide:
            guide_backfill(s)

    def leads() -> dict[int, dict[str, object]]:
        with factory() as s:
            return {r["id"]: dict(r) for r in s.execute(select(Lead.__table__)).mappings()}

    def customers() -> list[tuple[object, ...]]:
        with factory() as s:
            return [tuple(r) for r in s.execute(select(Customer.__table__).order_by(Customer.id)).all()]

    before_leads, before_customers = leads(), customers()
    run_backfill(engine, batch_size=5)
    # a lead of a customer with others, a two-in-one phone, a landline, and a lead left unlinked (too short)
    edited = [ids[1], ids[5], ids[7], ids[9]]
    with factory() as s:
        s.execute(update(Lead).where(Lead.id.in_(edited)).values(phone_number_normalized=edit))
        s.commit()
    assert run_backfill(engine, batch_size=5).leads_changed == len(edited)
    assert verify(engine).ok
    undo = undo_backfill(engine, batch_size=3)
    assert undo.kept_for_live_intake == []
    for lead_id in edited:
        before_leads[lead_id]["phone_number_normalized"] = edit
    assert leads() == before_leads
    assert customers() == before_customers


def test_a_phone_the_old_app_edits_after_the_backfill_is_kept_by_the_next_run_and_by_undo(
    engine: Engine, factory: sessionmaker[Session]
) -> None:
    # The old app keeps running during the switch and writes its own strings into
    # phone_number_normalized. A later run must take the edited number, not write back the one it kept
    # in phone_number_legacy; and undo must give back what the old app wrote.
    with factory() as s:
        ids = insert_legacy(s)
    run_backfill(engine, batch_size=5)
    edited = ids[0]
    with factory() as s:
        before = s.get(Lead, edited)
        assert before is not None and before.customer_id is not None
        s.execute(update(Lead).where(Lead.id == edited).values(phone_number_normalized="098765 00099"))
        s.commit()
    report = run_backfill(engine, batch_size=5)
    assert report.leads_changed == 1
    with factory() as s:
        lead = s.get(Lead, edited)
        assert lead is not None and lead.customer_id is not None
        customer = s.get(Customer, lead.customer_id)
        assert customer is not None
        assert (lead.phone_number_normalized, lead.phone_number_legacy) == ("+919876500099", "098765 00099")
        assert customer.phone_number_normalized == "+919876500099"
    assert not run_backfill(engine, batch_size=5).changed_anything
    assert verify(engine).ok
    undo_backfill(engine, batch_size=3)
    with factory() as s:
        lead = s.get(Lead, edited)
        assert lead is not None
        assert (lead.phone_number_normalized, lead.phone_number_legacy) == ("098765 00099", None)
