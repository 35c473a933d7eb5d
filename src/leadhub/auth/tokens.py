"""Access tokens (HMAC-SHA256 signed, JWT-shaped) and random secrets. Pure: no database.

An access token is `header.payload.signature` in base64url, HS256, with `sub` (user id), `fid`
(the refresh-token family, so logout ends it at once), `iat` and `exp`. The server still loads the
user on every request, so a disabled user or a revoked family stops working before `exp`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from leadhub.errors import AuthenticationError

_HEADER = {"alg": "HS256", "typ": "JWT"}


@dataclass(frozen=True)
class AccessClaims:
    user_id: int
    family_id: str
    expires_at: datetime


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def random_token() -> str:
    return secrets.token_urlsafe(32)


def issue_access_token(secret: str, *, user_id: int, family_id: str, now: datetime, ttl: timedelta) -> str:
    payload = {
        "sub": str(user_id),
        "fid": family_id,
        "iat": int(now.timestamp()),
        "exp": int((now + ttl).timestamp()),
    }
    signing_input = f"{_b64(json.dumps(_HEADER).encode())}.{_b64(json.dumps(payload).encode())}"
    signature = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def looks_like_access_token(token: str) -> bool:
    return token.count(".") == 2


def read_access_token(secret: str, token: str, *, now: datetime) -> AccessClaims:
    invalid = AuthenticationError("the access token is invalid; log in again")
    try:
        header, payload, signature = token.split(".")
        expected = hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, _unb64(signature)):
            raise invalid
        if json.loads(_unb64(header)) != _HEADER:
            raise invalid
        claims = json.loads(_unb64(payload))
        user_id, family_id, exp = int(claims["sub"]), str(claims["fid"]), int(claims["exp"])
    except (ValueError, KeyError, TypeError) as error:
        raise invalid from error
    if exp <= now.timestamp():
        raise AuthenticationError("the access token has expired; refresh it or log in again")
    return AccessClaims(
        user_id=user_id, family_id=family_id, expires_at=datetime.fromtimestamp(exp, now.tzinfo)
    )
