"""Field mapping from Graph leads to intakes: name variants, phone keys, blanks, custom questions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from leadhub.integrations.meta.mapper import FormRules, MetaPayloadError, map_lead, parse_time


def _lead(*fields: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "id": "900000000000001",
        "created_time": "2025-12-06T05:48:00+0000",
        "field_data": list(fields),
        **extra,
    }


@pytest.mark.parametrize(
    ("fields", "name", "phone"),
    [
        ([{"name": "full_name", "values": ["Rahul Sharma"]}, {"name": "phone_number", "values": ["+919000000021"]}],
         "Rahul Sharma", "+919000000021"),
        ([{"name": "first_name", "values": ["Priya"]}, {"name": "last_name", "values": ["N"]},
          {"name": "phone", "values": ["+91 90000 00022"]}], "Priya N", "+91 90000 00022"),
        ([{"name": "FULL_NAME", "values": ["A Kumar"]}, {"name": "mobile_phone", "values": ["p:09000000023"]}],
         "A Kumar", "09000000023"),
        ([{"name": "first_name", "values": ["Solo"]}, {"name": "phone_number_with_country_code", "values": ["9000000024"]}],
         "Solo", "9000000024"),
        ([{"name": "full_name"}, {"name": "mobile", "values": ["9000000025"]}], None, "9000000025"),
    ],
)  # fmt: skip
def test_names_and_phones(fields: list[dict[str, Any]], name: str | None, phone: str) -> None:
    intake = map_lead(_lead(*fields), FormRules(form_id="3"))
    assert (intake.name, intake.phone) == (name, phone)


def test_unmapped_and_blank_answers_are_kept_and_ad_attributes_recorded() -> None:
    lead = _lead(
        {"name": "full_name", "values": ["Rahul"]},
        {"name": "phone_number", "values": ["+919000000021"]},
        {"name": "work_email_address", "values": ["r@example.com"]},
        {"name": "city", "values": ["Pune"]},
        {"name": "which_branch_is_nearest_to_you?", "values": ["Baner"]},
        {"name": "models", "values": ["Nexon", "Punch"]},
        {"name": "preferred_time"},
        ad_id=200000000000001, campaign_id="400000000000001", form_id="300000000000001", platform="ig",
        is_organic=False,
    )  # fmt: skip
    intake = map_lead(
        lead, FormRules(form_id="300000000000001", page_id="1", branch_id=7, source_label="Diwali")
    )
    assert (intake.email, intake.city, intake.branch_id) == ("r@example.com", "Pune", 7)
    assert intake.extra["answers"] == {
        "which_branch_is_nearest_to_you?": ["Baner"], "models": ["Nexon", "Punch"], "preferred_time": [],
    }  # fmt: skip
    meta = intake.extra["meta"]
    assert meta["ad_id"] == "200000000000001" and meta["platform"] == "ig" and meta["is_organic"] is False
    assert meta["source_label"] == "Diwali" and meta["campaign_id"] == "400000000000001"
    assert intake.occurred_at == datetime(2025, 12, 6, 5, 48, tzinfo=UTC)


def test_per_form_custom_question_mapping() -> None:
    lead = _lead({"name": "your_name_please", "values": ["Asha"]}, {"name": "phone_number_(eg.65xxxxxxxx)",
                 "values": ["9000000026"]}, {"name": "city", "values": ["Baner"]})  # fmt: skip
    rules = FormRules(
        field_map={"your_name_please": "name", "phone_number_(eg.65xxxxxxxx)": "phone", "city": "ignore"}
    )
    intake = map_lead(lead, rules)
    assert (intake.name, intake.phone, intake.city, intake.extra["answers"]) == (
        "Asha",
        "9000000026",
        None,
        {},
    )


@pytest.mark.parametrize(
    "lead", [{"field_data": []}, {"id": "1", "field_data": "x"}, {"id": "1", "field_data": [{}]}]
)
def test_unreadable_leads_raise(lead: dict[str, Any]) -> None:
    with pytest.raises(MetaPayloadError):
        map_lead(lead, FormRules())


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1733475080, datetime(2024, 12, 6, 8, 51, 20, tzinfo=UTC)), ("1733475080", datetime(2024, 12, 6, 8, 51, 20, tzinfo=UTC)),
     ("2025-12-06T05:48:00+0000", datetime(2025, 12, 6, 5, 48, tzinfo=UTC)), (None, None)],
)  # fmt: skip
def test_parse_time(value: Any, expected: datetime | None) -> None:
    assert parse_time(value) == expected
