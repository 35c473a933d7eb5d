"""Settings, read from the environment or `.env` with the prefix LEADHUB_."""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_PLACEHOLDER_SECRETS = {"changeme", "change-me", "secret", "password", "admin", "test", "xxx", "todo"}


class LeadPolicy(StrEnum):
    """What a repeat enquiry from a known customer does."""

    ATTACH = "attach"  # attach to the customer's open lead (at the branch when known)
    NEW_LEAD = "new_lead"  # one lead per enquiry, as the migration guide did


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LEADHUB_", env_file=".env", extra="ignore")

    database_url: str = "sqlite:///./leadhub.db"
    db_pool_size: int = Field(default=10, ge=1, le=200)
    db_max_overflow: int = Field(default=10, ge=0, le=200)
    phone_region: str = "IN"
    timezone: str = "Asia/Kolkata"  # the business day for follow-ups (IANA name)
    lead_policy: LeadPolicy = LeadPolicy.ATTACH
    admin_api_key: SecretStr | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "info"

    # --- staff auth (docs/auth.md)
    secret_key: SecretStr | None = None  # signs access tokens; logins are refused (503) without it
    access_token_minutes: int = Field(default=15, ge=1, le=24 * 60)
    refresh_token_days: int = Field(default=30, ge=1, le=365)
    login_max_failures: int = Field(default=5, ge=1)  # per username and per client address ...
    login_window_minutes: int = Field(default=15, ge=1)  # ... within this sliding window

    @field_validator("admin_api_key", "knowlarity_webhook_key", "secret_key")
    @classmethod
    def _refuse_placeholder(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        """Shared secrets that guard an endpoint: unset, or real (16+ characters, not a placeholder)."""
        if value is None or value.get_secret_value() == "":
            return None
        secret = value.get_secret_value()
        if secret.lower() in _PLACEHOLDER_SECRETS or len(secret) < 16:
            raise ValueError(
                f"LEADHUB_{(info.field_name or '').upper()} is a placeholder or shorter than 16 characters; "
                "generate one with `python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
            )
        return value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        """The business's zone, for "today" in follow-up queues and assignment hours."""
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"LEADHUB_TIMEZONE {value!r} is not an IANA time zone name (e.g. Asia/Kolkata)"
            ) from None
        return value

    @field_validator("phone_region")
    @classmethod
    def _upper_region(cls, value: str) -> str:
        return value.upper()

    # --- knowlarity
    knowlarity_webhook_key: SecretStr | None = None  # ?key= or X-Webhook-Key on /webhooks/knowlarity
    knowlarity_api_url: str = "https://kpi.knowlarity.com"
    knowlarity_channel: str = "Basic"
    knowlarity_app_key: SecretStr | None = None  # the x-api-key header
    knowlarity_sr_key: SecretStr | None = None  # the Authorization header (sent raw)
    knowlarity_lead_policy: LeadPolicy = LeadPolicy.ATTACH
    knowlarity_callback_sla_minutes: int = Field(default=30, ge=1)
    knowlarity_page_size: int = Field(default=100, ge=1, le=5000)
    knowlarity_sync_overlap_minutes: int = Field(default=30, ge=0)  # re-read window for late CDRs
    knowlarity_first_sync_hours: int = Field(default=24, ge=1)  # look-back when there is no checkpoint
    knowlarity_timeout_seconds: float = Field(default=20.0, gt=0)
    # PostgreSQL: pushes arriving together are written in one transaction (knowlarity/batching.py);
    # at most this many calls per transaction (1: each push its own transaction). Each call is a
    # subtransaction: above 64, PostgreSQL's per-backend cache of subtransaction ids overflows and
    # every other session's snapshots get slower, hence the cap ...
    knowlarity_batch_max: int = Field(default=64, ge=1, le=64)
    # ... and this many such transactions at once per server process
    knowlarity_batches_in_flight: int = Field(default=2, ge=1, le=64)

    # --- meta
    meta_verify_token: SecretStr | None = None  # the webhook subscription handshake token
    meta_app_secret: SecretStr | None = None  # signs webhook deliveries (X-Hub-Signature-256)
    meta_graph_url: str = "https://graph.facebook.com"
    meta_graph_version: str = "v23.0"
    meta_page_size: int = Field(default=100, ge=1, le=100)  # Graph misbehaves on larger limits
    meta_reconcile_hours: int = Field(default=48, ge=1, le=24 * 90)  # Meta retries webhooks ~36 h
    meta_reconcile_every_minutes: int = Field(default=60, ge=1)
    meta_fetch_attempts: int = Field(default=4, ge=1, le=20)  # per Graph call, on 5xx/timeouts/code 1-2
    meta_retry_base_delay: float = Field(default=0.5, ge=0)
    meta_max_rate_wait_seconds: float = Field(default=300, ge=0)  # longer throttles end the run instead
    meta_timeout_seconds: float = Field(default=10, gt=0)
    meta_sync_workers: int = Field(default=4, ge=1, le=32)  # forms synced at once


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
