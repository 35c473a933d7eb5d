"""A Graph lead plus its form's rules -> an Intake. Pure: no I/O, no database."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from leadhub.integrations.meta import vendor
from leadhub.leads.intake import Channel, Intake

TARGETS = ("name", "first_name", "last_name", "phone", "email", "city")
IGNORE = "ignore"

DEFAULT_TARGETS: dict[str, str] = {
    **dict.fromkeys(vendor.NAME_KEYS, "name"),
    **dict.fromkeys(vendor.FIRST_NAME_KEYS, "first_name"),
    **dict.fromkeys(vendor.LAST_NAME_KEYS, "last_name"),
    **dict.fromkeys(vendor.PHONE_KEYS, "phone"),
    **dict.fromkeys(vendor.EMAIL_KEYS, "email"),
    **dict.fromkeys(vendor.CITY_KEYS, "city"),
}


class MetaPayloadError(ValueError):
    """A lead whose shape leadhub cannot read."""


@dataclass(frozen=True, slots=True)
class FormRules:
    form_id: str | None = None
    page_id: str | None = None
    branch_id: int | None = None
    source_label: str | None = None
    field_map: dict[str, str] = field(default_factory=dict)  # custom question key -> target


def parse_time(value: Any) -> datetime | None:
    """Graph's "2025-12-06T05:48:00+0000", or Unix seconds (webhooks)."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float) or (isinstance(value, str) and value.isdigit()):
        return datetime.fromtimestamp(int(value), UTC)
    try:
        return datetime.strptime(str(value), vendor.GRAPH_TIME_FORMAT).astimezone(UTC)
    except ValueError:
        try:
            return datetime.fromisoformat(str(value)).astimezone(UTC)
        except ValueError as error:
            raise MetaPayloadError(f"unreadable created_time {value!r}") from error


def answers_of(lead: dict[str, Any]) -> dict[str, list[str]]:
    """field_data as {question key: values}; a question left blank has no `values` and maps to []."""
    field_data = lead.get(vendor.FIELD_DATA) or []
    if not isinstance(field_data, list):
        raise MetaPayloadError(f"{vendor.FIELD_DATA} is not a list")
    answers: dict[str, list[str]] = {}
    for item in field_data:
        if not isinstance(item, dict) or not item.get("name"):
            raise MetaPayloadError(f"a {vendor.FIELD_DATA} item has no name")
        values = item.get("values") or []
        if not isinstance(values, list):
            values = [values]
        answers[str(item["name"])] = [str(v) for v in values if v is not None]
    return answers


def map_lead(lead: dict[str, Any], rules: FormRules) -> Intake:
    if not isinstance(lead, dict) or lead.get("id") in (None, ""):
        raise MetaPayloadError("the lead has no id")
    picked: dict[str, str] = {}
    unmapped: dict[str, list[str]] = {}
    for key, values in answers_of(lead).items():
        target = rules.field_map.get(key) or DEFAULT_TARGETS.get(key)
        if target == IGNORE:
            continue
        if target is None:
            unmapped[key] = values  # kept on the lead as data, never dropped
        elif values and values[0].strip() and target not in picked:
            picked[target] = values[0].strip()
    name = picked.get("name") or " ".join(p for p in (picked.get("first_name"), picked.get("last_name")) if p)
    phone = picked.get("phone")
    if phone and phone.lower().startswith(vendor.PHONE_VALUE_PREFIX):
        phone = phone[len(vendor.PHONE_VALUE_PREFIX) :].strip()
    meta = {k: _plain(lead[k]) for k in vendor.LEAD_META_KEYS if lead.get(k) not in (None, "")}
    meta["leadgen_id"] = str(lead["id"])
    meta.setdefault("form_id", rules.form_id)
    if rules.page_id:
        meta["page_id"] = rules.page_id
    if rules.source_label:
        meta["source_label"] = rules.source_label
    return Intake(
        source=Channel.META,
        phone=phone,
        external_id=str(lead["id"]),
        name=name or None,
        city=picked.get("city"),
        email=picked.get("email"),
        branch_id=rules.branch_id,
        occurred_at=parse_time(lead.get(vendor.CREATED_TIME)),
        raw_payload={"meta": meta, "answers": unmapped, "lead": lead},
        extra={"meta": meta, "answers": unmapped},
    )


def _plain(value: Any) -> Any:
    # Ids may be JSON numbers or strings; keep them as strings. Booleans stay booleans.
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value
