"""One error family. Services raise these; each surface (API, CLI) renders them its own way."""

from __future__ import annotations

from typing import Any


class LeadhubError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class NotFoundError(LeadhubError):
    status_code = 404
    code = "not_found"


class ValidationFailed(LeadhubError):
    status_code = 422
    code = "invalid_input"


class InvalidPhoneError(ValidationFailed):
    code = "invalid_phone"


class AuthenticationError(LeadhubError):
    status_code = 401
    code = "unauthenticated"


class NotConfiguredError(LeadhubError):
    status_code = 503
    code = "not_configured"


class DatabaseUnavailable(LeadhubError):
    """The database could not be reached or is saturated: nothing was stored; the sender should retry."""

    status_code = 503
    code = "unavailable"


class PermissionDenied(LeadhubError):
    status_code = 403
    code = "forbidden"


class ConflictError(LeadhubError):
    status_code = 409
    code = "conflict"


class RateLimitedError(LeadhubError):
    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int, **details: Any) -> None:
        super().__init__(message, retry_after=retry_after, **details)
        self.retry_after = retry_after
