"""Phone identity: canonical E.164 keys from the numbers people and vendors really write. Pure, no I/O."""

from leadhub.phones.normalize import (
    ParsedPhone,
    PhoneError,
    PhoneErrorReason,
    is_canonical,
    mask,
    normalize,
    parse_phone,
)

__all__ = [
    "ParsedPhone",
    "PhoneError",
    "PhoneErrorReason",
    "is_canonical",
    "mask",
    "normalize",
    "parse_phone",
]
