"""Webhook deliveries: the handshake, the signature over the raw body, and the leadgen changes inside."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from leadhub.integrations.meta import vendor


def verify_handshake(params: dict[str, str], verify_token: str | None) -> str | None:
    """The challenge to echo back, or None when the handshake must be refused."""
    if verify_token is None or params.get(vendor.HUB_MODE) != vendor.HUB_MODE_SUBSCRIBE:
        return None
    offered = params.get(vendor.HUB_VERIFY_TOKEN) or ""
    if not hmac.compare_digest(offered.encode(), verify_token.encode()):
        return None
    return params.get(vendor.HUB_CHALLENGE, "")


def sign(body: bytes, app_secret: str) -> str:
    return vendor.SIGNATURE_PREFIX + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def signature_ok(body: bytes, header: str | None, app_secret: str) -> bool:
    """Constant-time check of X-Hub-Signature-256 over the raw bytes (never re-serialised JSON)."""
    if not header or not header.startswith(vendor.SIGNATURE_PREFIX):
        return False
    return hmac.compare_digest(header.encode(), sign(body, app_secret).encode())


@dataclass(frozen=True, slots=True)
class LeadgenChange:
    leadgen_id: str
    page_id: str | None
    form_id: str | None
    value: dict[str, Any]  # ids as strings


def leadgen_changes(payload: Any) -> list[LeadgenChange]:
    """Every leadgen change of every entry; ids may arrive as JSON numbers or strings."""
    found: list[LeadgenChange] = []
    if not isinstance(payload, dict):
        return found
    for entry in payload.get("entry") or []:
        if not isinstance(entry, dict):
            continue
        for change in entry.get("changes") or []:
            if not isinstance(change, dict) or change.get("field") != vendor.FIELD_LEADGEN:
                continue
            value = change.get("value")
            if not isinstance(value, dict) or value.get(vendor.LEADGEN_ID) in (None, ""):
                continue
            clean = {
                k: str(v) if isinstance(v, int) and not isinstance(v, bool) else v for k, v in value.items()
            }
            page_id = clean.get(vendor.PAGE_ID) or (str(entry["id"]) if entry.get("id") else None)
            if page_id:
                clean[vendor.PAGE_ID] = page_id
            found.append(
                LeadgenChange(
                    leadgen_id=str(clean[vendor.LEADGEN_ID]),
                    page_id=page_id,
                    form_id=clean.get(vendor.FORM_ID),
                    value=clean,
                )
            )
    return found
