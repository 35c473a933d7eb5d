"""Phone identity: whatever a channel sent becomes one E.164 key, or a PhoneError that says why not.

Pure: no I/O, no database. `phonenumbers` decides what a number is; this module only decides which text to
hand it. What the library does with real Indian input, and why each pre-clean below exists, is written up
in shared/notes/phones.md §5.2.

A number is a key only when `phonenumbers.is_valid_number` holds for it. Text that phonenumbers cannot read
as it stands gets at most one alternative reading, and only when the text is bare digits, because that is
how the legacy code stored numbers:
- "0" + country code + number ('0919876543210') is read as '+91 9876543210';
- digits whose '+' was stripped ('442083661177') are read as '+442083661177', unless there are exactly as
  many digits as a national mobile number, so an Indian-looking ten-digit string never turns foreign. An
  eleven-digit string can still do so ('79123456789' becomes a Russian number); that is the price of
  keeping '16502530000'.

The fast path reads '+91…' keys and plain Indian digit strings ('98765 43210', '0…', '91…', '0091…')
without `phonenumbers.parse`: it matches the national number against the library's own IN metadata, the
way phonenumbers' number-type check does, and leaves anything else to the slow path.
tests/phones/test_normalize.py checks that both paths agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from functools import cache

import phonenumbers
from phonenumbers import (
    NumberParseException,
    PhoneMetadata,
    PhoneNumber,
    PhoneNumberDesc,
    PhoneNumberFormat,
    PhoneNumberType,
    ValidationResult,
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


class PhoneErrorReason(StrEnum):
    EMPTY = "empty"
    NOT_A_NUMBER = "not_a_number"
    TOO_SHORT = "too_short"
    TOO_LONG = "too_long"
    INVALID_COUNTRY_CODE = "invalid_country_code"
    NOT_VALID = "not_valid"  # phonenumbers read it, but is_valid_number is False


class PhoneError(ValueError):
    """Why a text is not a phone identity; str(error) is a sentence meant for the person who typed it."""

    reason: PhoneErrorReason
    raw: str
    message: str

    def __init__(self, reason: PhoneErrorReason, raw: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.raw = raw
        self.message = message

    def __reduce__(self) -> tuple[type[PhoneError], tuple[PhoneErrorReason, str, str]]:
        return (type(self), (self.reason, self.raw, self.message))


@dataclass(frozen=True, slots=True)
class ParsedPhone:
    e164: str  # the identity key, '+919876543210'
    extra: tuple[str, ...]  # the other numbers of a two-in-one field, as given
    is_mobile: bool  # number type MOBILE or FIXED_LINE_OR_MOBILE


def parse_phone(raw: str | None, region: str = "IN") -> ParsedPhone:
    """The phone identity in `raw`; a number without '+' is read as dialled in `region`."""
    text, region = _unwrap(raw), region.upper()
    hit = _fast(text, region)
    return _slow(raw, text, region) if hit is None else ParsedPhone(e164=hit[0], extra=(), is_mobile=hit[1])


def normalize(raw: str | None, region: str = "IN") -> str:
    text, region = _unwrap(raw), region.upper()
    hit = _fast(text, region, typed=False)  # the key only: no second pattern for the number's type
    return _slow(raw, text, region).e164 if hit is None else hit[0]


def is_canonical(value: str) -> bool:
    """True when `value` is already the key normalize would make of it."""
    try:
        return normalize(value) == value
    except PhoneError:
        return False


def mask(value: str | None) -> str:
    """A log-safe form: the country code (when the text has a '+') and at most the last two digits."""
    if value is None:
        return "<none>"
    text = _unwrap(value).lstrip("+")
    digits = _ascii_digits(text)
    if not digits:
        return "<empty>" if not text else "<no digits>"
    code = _country_code_prefix(digits) if _unwrap(value).startswith("+") else ""
    hidden, shown = digits[len(code) :], ""
    if len(hidden) >= 6:
        hidden, shown = hidden[:-2], hidden[-2:]
    return f"{'+' if code else ''}{code}{'*' * len(hidden)}{shown}"


def _parse_phone_slow(raw: str | None, region: str = "IN") -> ParsedPhone:
    """parse_phone without the fast path; tests hold the two to the same answers."""
    return _slow(raw, _unwrap(raw), region.upper(), fast=False)


# Meta lead forms send 'p:+91...'; RFC 3966 links send 'tel:'. Neither is part of the number.
_WRAPPER = re.compile(r"^(?:(?:p|tel):\s*)+", re.IGNORECASE)
# Two numbers in one field. ';' followed by 'name=' is an RFC 3966 parameter (';ext=12'), not a separator;
# spaces and dashes never separate, they are how one number is written.
_SEPARATOR = re.compile(r"\s*(?:[/,|]|;(?![a-z-]+=)|\bor\b)\s*", re.IGNORECASE)
_BARE_DIGITS = re.compile(r"[\d\s().-]+")  # \d on purpose: Devanagari digits count
_PARSE_ERRORS = {
    NumberParseException.INVALID_COUNTRY_CODE: PhoneErrorReason.INVALID_COUNTRY_CODE,
    NumberParseException.NOT_A_NUMBER: PhoneErrorReason.NOT_A_NUMBER,
    NumberParseException.TOO_SHORT_AFTER_IDD: PhoneErrorReason.TOO_SHORT,
    NumberParseException.TOO_SHORT_NSN: PhoneErrorReason.TOO_SHORT,
    NumberParseException.TOO_LONG: PhoneErrorReason.TOO_LONG,
}
_POSSIBILITY_ERRORS = {
    ValidationResult.INVALID_COUNTRY_CODE: PhoneErrorReason.INVALID_COUNTRY_CODE,
    ValidationResult.TOO_SHORT: PhoneErrorReason.TOO_SHORT,
    ValidationResult.IS_POSSIBLE_LOCAL_ONLY: PhoneErrorReason.TOO_SHORT,  # a local number, no area code
    ValidationResult.TOO_LONG: PhoneErrorReason.TOO_LONG,
}
_MOBILE_TYPES = frozenset({PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE})


def _unwrap(raw: str | None) -> str:
    text = "" if raw is None else raw.strip()
    return _WRAPPER.sub("", text).strip() if text[:1] in ("p", "P", "t", "T") else text


def _ascii_digits(text: str) -> str:
    return "".join(str(int(c)) for c in text if c.isdecimal())


def _country_code_prefix(digits: str) -> str:
    # ITU country codes are prefix-free, so at most one of these is a known code.
    for size in (1, 2, 3):
        if int(digits[:size]) in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            return digits[:size]
    return ""


# --- slow path: phonenumbers.parse ---------------------------------------------------------------------------


def _slow(raw: str | None, text: str, region: str, *, fast: bool = True) -> ParsedPhone:
    if not text:
        message = "phone number is empty: none was given" if raw is None else "phone number is empty"
        raise PhoneError(PhoneErrorReason.EMPTY, raw or "", message)
    parts = [p for p in _SEPARATOR.split(text) if p and any(c.isdecimal() for c in p)] or [text]
    first_error: PhoneError | None = None
    for i, part in enumerate(parts):
        # One number of several ('9876543210/9876543211'), in a shape the fast path knows: the same
        # answer _read gives, without parse.
        hit = _fast(part, region) if fast and len(parts) > 1 else None
        if hit is not None:
            return ParsedPhone(e164=hit[0], extra=tuple(parts[:i] + parts[i + 1 :]), is_mobile=hit[1])
        try:
            number = _read(part, region, raw or "")
        except PhoneError as error:
            first_error = first_error or error
            continue
        return ParsedPhone(
            e164=phonenumbers.format_number(number, PhoneNumberFormat.E164),
            extra=tuple(parts[:i] + parts[i + 1 :]),
            is_mobile=phonenumbers.number_type(number) in _MOBILE_TYPES,
        )
    assert first_error is not None
    raise first_error


def _read(part: str, region: str, raw: str) -> PhoneNumber:
    """phonenumbers' valid reading of one number, trying the alternative reading only if the first fails."""
    try:
        number = phonenumbers.parse(part, region)
    except NumberParseException as exc:
        error = _parse_error(exc, part, region, raw)
    else:
        if phonenumbers.is_valid_number(number):
            return number
        error = _invalid_error(number, part, raw)
    alternative = _alternative_reading(part, region)
    if alternative is not None:
        try:
            number = phonenumbers.parse(alternative, None)
        except NumberParseException:
            raise error from None
        if phonenumbers.is_valid_number(number):
            return number
    raise error


def _alternative_reading(part: str, region: str) -> str | None:
    if not _BARE_DIGITS.fullmatch(part) or PhoneMetadata.metadata_for_region(region) is None:
        return None
    digits, code = _ascii_digits(part), str(phonenumbers.country_code_for_region(region))
    if digits.startswith("0" + code):
        return "+" + digits[1:]
    if not digits.startswith("0") and len(digits) not in _mobile_lengths(region):
        return "+" + digits
    return None


@cache
def _mobile_lengths(region: str) -> frozenset[int]:
    metadata = PhoneMetadata.metadata_for_region(region)
    if metadata is None or metadata.mobile is None:
        return frozenset()
    return frozenset(metadata.mobile.possible_length)


def _parse_error(exc: NumberParseException, part: str, region: str, raw: str) -> PhoneError:
    reason = _PARSE_ERRORS.get(exc.error_type, PhoneErrorReason.NOT_A_NUMBER)
    if reason is PhoneErrorReason.NOT_A_NUMBER and _BARE_DIGITS.fullmatch(part.lstrip("+")):
        reason = PhoneErrorReason.TOO_SHORT  # '+91' or '7': digits, just too few for parse to start on
    detail = ""
    if reason is PhoneErrorReason.INVALID_COUNTRY_CODE:
        detail = (
            ": no known country code follows the '+'"
            if part.lstrip().startswith("+")
            else f": it has no '+' and the default region {region!r} is not a known region"
        )
    return _error(reason, part, raw, detail)


def _invalid_error(number: PhoneNumber, part: str, raw: str) -> PhoneError:
    reason = _POSSIBILITY_ERRORS.get(phonenumbers.is_possible_number_with_reason(number))
    if reason is not None:
        return _error(reason, part, raw)
    digits = len(str(number.national_number))
    return _error(
        PhoneErrorReason.NOT_VALID,
        part,
        raw,
        f": {digits} digits after +{number.country_code} is in no number range phonenumbers "
        f"{phonenumbers.__version__} knows",
    )


def _error(reason: PhoneErrorReason, part: str, raw: str, detail: str = "") -> PhoneError:
    # Messages never repeat the number: they are stored as inbox reasons and written to logs, where
    # phones appear masked only. `PhoneError.raw` keeps the input for whoever fixes it.
    digits = sum(c.isdecimal() for c in part)
    sentence = {
        PhoneErrorReason.EMPTY: "phone number is empty",
        PhoneErrorReason.NOT_A_NUMBER: "the phone field is not a number: no phone number can be read from it",
        PhoneErrorReason.TOO_SHORT: f"the phone number is too short ({digits} digits)",
        PhoneErrorReason.TOO_LONG: f"the phone number is too long ({digits} digits)",
        PhoneErrorReason.INVALID_COUNTRY_CODE: "the phone number has an invalid country code",
        PhoneErrorReason.NOT_VALID: "the phone number is not valid",
    }[reason] + detail
    if part != raw.strip():
        sentence += " (the first number of several in the field)"
    return PhoneError(reason, raw, sentence)


# --- fast path: IN metadata, no parse ------------------------------------------------------------------------

_FAST_REGION = "IN"
_FAST_SHAPE = re.compile(r"\+?[0-9]+(?:[ -][0-9]+)*")  # ASCII digits; single spaces or dashes between groups


@dataclass(frozen=True, slots=True)
class _FastRule:
    """What the fast path needs from one region's metadata, compiled once."""

    code: str  # '91'
    idd: str | None  # '00', when the international prefix is a plain digit string
    trunk: str | None  # '0', when the national prefix for parsing is a plain digit string with no rewrite
    general: re.Pattern[str]
    longest: int  # the most digits a national number has (more: parse calls the text too long)
    by_length: dict[int, tuple[re.Pattern[str], re.Pattern[str]]]  # national length: (valid, mobile)

    def is_mobile(self, nsn: str, typed: bool = True) -> bool | None:
        """None if phonenumbers would not call this national number valid, else whether it is mobile
        (False when not `typed`)."""
        patterns = self.by_length.get(len(nsn))
        if patterns is None or patterns[0].fullmatch(nsn) is None:
            return None
        return typed and patterns[1].fullmatch(nsn) is not None


@cache
def _fast_rule(region: str) -> _FastRule | None:
    metadata = PhoneMetadata.metadata_for_region(region)
    general = metadata.general_desc if metadata is not None else None
    if metadata is None or general is None or not general.national_number_pattern:
        return None
    by_length = {n: p for n in general.possible_length if (p := _type_patterns(metadata, n)) is not None}
    idd, trunk = metadata.international_prefix, metadata.national_prefix_for_parsing
    return _FastRule(
        code=str(metadata.country_code),
        idd=idd if idd and idd.isdigit() else None,
        trunk=trunk
        if trunk and trunk.isdigit() and metadata.national_prefix_transform_rule is None
        else None,
        general=re.compile(general.national_number_pattern),
        longest=max(general.possible_length),
        by_length=by_length,
    )


def _type_patterns(metadata: PhoneMetadata, length: int) -> tuple[re.Pattern[str], re.Pattern[str]] | None:
    """Two patterns for national numbers of one length: phonenumbers calls it valid; it types it MOBILE
    or FIXED_LINE_OR_MOBILE. One regex match each, instead of a parse.

    They follow phonenumberutil._number_type_helper: the number must match the general description; a
    match with premium rate ... voicemail wins over fixed line and mobile; then, with distinct patterns,
    a mobile match makes MOBILE or FIXED_LINE_OR_MOBILE, and with identical ones a fixed-line match does.
    A description takes part only if its possible lengths (when it lists any) include this length, as in
    phonenumberutil._is_number_matching_desc.
    """

    def pattern(desc: PhoneNumberDesc | None) -> str | None:
        if desc is None or not desc.national_number_pattern:
            return None
        if desc.possible_length and length not in desc.possible_length:
            return None
        return desc.national_number_pattern

    general = pattern(metadata.general_desc)
    special = [
        p
        for p in map(
            pattern,
            (
                metadata.premium_rate,
                metadata.toll_free,
                metadata.shared_cost,
                metadata.voip,
                metadata.personal_number,
                metadata.pager,
                metadata.uan,
                metadata.voicemail,
            ),
        )
        if p is not None
    ]
    same = bool(metadata.same_mobile_and_fixed_line_pattern)
    fixed, mobile = pattern(metadata.fixed_line), None if same else pattern(metadata.mobile)
    typed = [p for p in (*special, fixed, mobile) if p is not None]
    if general is None or not typed:
        return None
    is_general = rf"(?=(?:{general})\Z)"
    valid = re.compile(is_general + "(?:" + "|".join(f"(?:{p})" for p in typed) + ")")
    target = fixed if same else mobile
    vetoes = "".join(rf"(?!(?:{p})\Z)" for p in special)
    is_mobile = re.compile(rf"{is_general}{vetoes}(?:{target})" if target is not None else "(?!)")
    return valid, is_mobile


def _fast(text: str, region: str, *, typed: bool = True) -> tuple[str, bool] | None:
    """(key, is_mobile) of '+91…', and in region IN of '…', '0…', '91…', '0091…', read from the metadata
    (is_mobile False when not `typed`).

    Whatever it returns, the slow path returns too; when unsure it returns None and the slow path decides.
    """
    rule = _fast_rule(_FAST_REGION)
    if rule is None:
        return None
    if text.isascii() and text.isdigit():  # most stored phones: no pattern needed for their shape
        digits = text
    elif _FAST_SHAPE.fullmatch(text):
        digits = text.replace(" ", "").replace("-", "")
    else:
        return None
    if digits.startswith("+"):
        nsn = digits[1 + len(rule.code) :] if digits[1:].startswith(rule.code) else None
    elif region != _FAST_REGION:
        nsn = None
    else:
        nsn = _national_part(rule, digits)
    if nsn is None or (rule.trunk is not None and nsn.startswith(rule.trunk)):
        return None
    is_mobile = rule.is_mobile(nsn, typed)
    return None if is_mobile is None else (f"+{rule.code}{nsn}", is_mobile)


def _national_part(rule: _FastRule, digits: str) -> str | None:
    """The national number phonenumbers.parse would find in a '+'-less digit string, or None if unsure."""
    if rule.idd is not None and digits.startswith(rule.idd + rule.code):
        return digits[len(rule.idd) + len(rule.code) :]
    if rule.trunk is not None and digits.startswith(rule.trunk):
        # '0' + a number starting with the country code ('09198765432'): parse strips the trunk prefix as
        # for any other; only when what is left is not valid does the slow path try '+' + the rest.
        return digits[len(rule.trunk) :]
    if digits.startswith(rule.code):
        # parse strips a leading country code only when the whole string is not a national number itself
        # ('9198765432' is one), unless the whole is too long to be one.
        if rule.general.fullmatch(digits) is not None:
            return digits if len(digits) <= rule.longest else None
        return digits[len(rule.code) :]
    return digits
