"""leadhub.phones: real-world inputs (shared/notes/phones.md §5.2 and the legacy fixture) and the fast path."""

from __future__ import annotations

import pickle
import random
import re

import phonenumbers
import pytest

from leadhub.phones import (
    ParsedPhone,
    PhoneError,
    PhoneErrorReason,
    is_canonical,
    mask,
    normalize,
    parse_phone,
)
from leadhub.phones.normalize import _fast, _parse_phone_slow

E = PhoneErrorReason
ASHA = "+919876543210"

# (raw, region, e164, is_mobile, extra)
VALID: list[tuple[str, str, str, bool, tuple[str, ...]]] = [
    # §5.2 row 1: every way people write one Indian mobile
    ("9876543210", "IN", ASHA, True, ()),
    ("09876543210", "IN", ASHA, True, ()),
    ("+91 98765 43210", "IN", ASHA, True, ()),
    ("+91-98765-43210", "IN", ASHA, True, ()),
    ("0091 98765 43210", "IN", ASHA, True, ()),
    ("0091-9876543210", "IN", ASHA, True, ()),
    ("00919876543210", "IN", ASHA, True, ()),
    ("919876543210", "IN", ASHA, True, ()),
    ("91 9876543210", "IN", ASHA, True, ()),
    ("(+91) 98765-43210", "IN", ASHA, True, ()),
    ("98765 43210", "IN", ASHA, True, ()),
    ("98765-43210", "IN", ASHA, True, ()),
    ("+91 (0) 98765 43210", "IN", ASHA, True, ()),
    ("+91 09876543210", "IN", ASHA, True, ()),
    ("0 98765 43210", "IN", ASHA, True, ()),
    ("tel: 98765 43210", "IN", ASHA, True, ()),
    ("++919876543210", "IN", ASHA, True, ()),
    ("९८७६५४३२१०", "IN", ASHA, True, ()),  # Devanagari digits
    ("+९१ ९८७६५ ४३२१०", "IN", ASHA, True, ()),
    # extension: kept by phonenumbers on the object, never part of the key
    ("9876543210 ext 12", "IN", ASHA, True, ()),
    ("tel:+91-98765-43210;ext=12", "IN", ASHA, True, ()),
    # ten digits starting 91 are a national number, not a country code
    ("9198765432", "IN", "+919198765432", True, ()),
    # landlines
    ("022 2345 6789", "IN", "+912223456789", False, ()),
    ("02223456789", "IN", "+912223456789", False, ()),
    ("+91 22 2345 6789", "IN", "+912223456789", False, ()),
    ("91-22-23456789", "IN", "+912223456789", False, ()),
    ("2223456789", "IN", "+912223456789", False, ()),
    ("080 4123 4567", "IN", "+918041234567", False, ()),
    ("0124 412 3456", "IN", "+911244123456", False, ()),
    # toll free and UAN: valid, not mobile
    ("1800 123 4567", "IN", "+9118001234567", False, ()),
    ("1401234567", "IN", "+911401234567", False, ()),
    # landline-shaped strings phonenumbers accepts as FIXED_LINE (§5.2: a known weakness, pinned here)
    ("5123456789", "IN", "+915123456789", False, ()),
    ("6123456789", "IN", "+916123456789", False, ()),
    ("1234567890", "IN", "+911234567890", False, ()),
    ("9999999999", "IN", "+919999999999", True, ()),  # dummy numbers pass
    ("1600123456", "IN", "+911600123456", True, ()),  # the one mobile series not starting 6-9
    # pre-cleans
    ("0919876543210", "IN", ASHA, True, ()),
    ("0 91 98765 43210", "IN", ASHA, True, ()),
    ("p:+919876543210", "IN", ASHA, True, ()),
    ("P: +91 98765 43210", "IN", ASHA, True, ()),
    ("p:919876543210", "IN", ASHA, True, ()),
    ("  +919876543210\n", "IN", ASHA, True, ()),
    # two numbers in one field: the first valid one is the key, the rest kept as typed
    ("9876543210/9123456789", "IN", ASHA, True, ("9123456789",)),
    ("9876543210, 9123456789", "IN", ASHA, True, ("9123456789",)),
    ("9876543210;9123456789", "IN", ASHA, True, ("9123456789",)),
    ("9876543210 or 9123456789", "IN", ASHA, True, ("9123456789",)),
    ("9876543210 OR 9123456789", "IN", ASHA, True, ("9123456789",)),
    ("9876543210 | 9123456789", "IN", ASHA, True, ("9123456789",)),
    ("98765 43210 / 91234-56789", "IN", ASHA, True, ("91234-56789",)),
    ("+91 98765 43210, 022 2345 6789", "IN", ASHA, True, ("022 2345 6789",)),
    ("9876543210/9123456789/9988776655", "IN", ASHA, True, ("9123456789", "9988776655")),
    ("022-23456789/90", "IN", "+912223456789", False, ("90",)),  # "…6789 or …6790", kept for a person
    ("98765/9876543210", "IN", ASHA, True, ("98765",)),  # a truncated first number is not the key
    ("9876543210, n/a", "IN", ASHA, True, ()),  # parts without a digit are not numbers
    # foreign numbers with '+' ignore the region
    ("+1 650 253 0000", "IN", "+16502530000", True, ()),  # NANPA is FIXED_LINE_OR_MOBILE
    ("+44 20 8366 1177", "IN", "+442083661177", False, ()),
    ("+44 7911 123456", "IN", "+447911123456", True, ()),
    ("0044 20 8366 1177", "IN", "+442083661177", False, ()),
    ("+919876543210", "GB", ASHA, True, ()),
    # digits whose '+' the legacy code stripped
    ("442083661177", "IN", "+442083661177", False, ()),
    ("44 20 8366 1177", "IN", "+442083661177", False, ()),
    ("16502530000", "IN", "+16502530000", True, ()),
    ("79123456789", "IN", "+79123456789", True, ()),  # eleven digits may turn foreign (module docstring)
    ("919876543210", "IN", ASHA, True, ()),  # valid as Indian, so never re-read
    # other regions
    ("020 8366 1177", "GB", "+442083661177", False, ()),
    ("07911 123456", "GB", "+447911123456", True, ()),
    ("442083661177", "GB", "+442083661177", False, ()),
    ("(650) 253-0000", "US", "+16502530000", True, ()),
    ("9876543210", "in", ASHA, True, ()),  # region case does not matter
]

# (raw, region, reason)
INVALID: list[tuple[str | None, str, PhoneErrorReason]] = [
    (None, "IN", E.EMPTY),
    ("", "IN", E.EMPTY),
    ("   ", "IN", E.EMPTY),
    ("p:", "IN", E.EMPTY),
    ("tel:  ", "IN", E.EMPTY),
    ("abc", "IN", E.NOT_A_NUMBER),
    ("n/a", "IN", E.NOT_A_NUMBER),
    ("/", "IN", E.NOT_A_NUMBER),
    ("98765", "IN", E.TOO_SHORT),
    ("987654", "IN", E.TOO_SHORT),  # the fixture's truncated numbers
    ("12", "IN", E.TOO_SHORT),
    ("+91", "IN", E.TOO_SHORT),
    ("0091", "IN", E.TOO_SHORT),
    ("98765/12345", "IN", E.TOO_SHORT),
    ("12345678901234567890", "IN", E.TOO_LONG),
    ("+91 98765 43210 98765 43210", "IN", E.TOO_LONG),
    ("+999 1234567", "IN", E.INVALID_COUNTRY_CODE),
    ("9876543210", "XX", E.INVALID_COUNTRY_CODE),
    ("98765432101", "IN", E.NOT_VALID),  # eleven digits
    ("+91 98765 4321", "IN", E.NOT_VALID),  # nine digits
    ("+91 98765 432101", "IN", E.NOT_VALID),
    ("0000000000", "IN", E.NOT_VALID),
    ("4940098288", "IN", E.NOT_VALID),  # valid as +49 (Germany), but ten digits never turn foreign
    ("+12001230101", "IN", E.NOT_VALID),  # possible, NPA 200 unused
    ("9876543210", "GB", E.NOT_VALID),
]


@pytest.mark.parametrize(("raw", "region", "e164", "is_mobile", "extra"), VALID)
def test_valid_inputs_give_their_key(
    raw: str, region: str, e164: str, is_mobile: bool, extra: tuple[str, ...]
) -> None:
    parsed = parse_phone(raw, region)
    assert parsed == ParsedPhone(e164=e164, extra=extra, is_mobile=is_mobile)
    assert normalize(raw, region) == e164
    assert _parse_phone_slow(raw, region) == parsed


@pytest.mark.parametrize(("raw", "region", "reason"), INVALID)
def test_unusable_inputs_say_why(raw: str | None, region: str, reason: PhoneErrorReason) -> None:
    with pytest.raises(PhoneError) as caught:
        parse_phone(raw, region)
    error = caught.value
    assert error.reason is reason
    assert error.raw == ("" if raw is None else raw)
    assert str(error) == error.message
    assert reason.value.replace("_", " ") in str(error)  # 'too short', 'not valid', ...
    with pytest.raises(PhoneError) as again:
        normalize(raw, region)
    assert again.value.reason is reason
    with pytest.raises(PhoneError) as slow:
        _parse_phone_slow(raw, region)
    assert (slow.value.reason, slow.value.raw, slow.value.message) == (error.reason, error.raw, error.message)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (None, "phone number is empty: none was given"),
        ("", "phone number is empty"),
        ("abc", "the phone field is not a number: no phone number can be read from it"),
        ("98765", "the phone number is too short (5 digits)"),
        (
            "98765/12345",
            "the phone number is too short (5 digits) (the first number of several in the field)",
        ),
        ("12345678901234567890", "the phone number is too long (20 digits)"),
        (
            "+999 1234567",
            "the phone number has an invalid country code: no known country code follows the '+'",
        ),
        (
            "98765432101",
            f"the phone number is not valid: 11 digits after +91 is in no number range phonenumbers "
            f"{phonenumbers.__version__} knows",
        ),
    ],
)
def test_messages_are_sentences_for_a_person(raw: str | None, message: str) -> None:
    with pytest.raises(PhoneError, match=f"^{re.escape(message)}$") as caught:
        parse_phone(raw)
    assert raw is None or len(raw) < 6 or raw not in caught.value.message  # reasons are logged: no number


def test_an_unknown_default_region_is_named_in_the_message() -> None:
    with pytest.raises(PhoneError, match="default region 'XX' is not a known region"):
        parse_phone("9876543210", "XX")


def test_phone_error_is_a_value_error_and_survives_pickling() -> None:
    with pytest.raises(PhoneError, match="too short") as caught:
        parse_phone("98765")
    assert isinstance(caught.value, ValueError)
    copy = pickle.loads(pickle.dumps(caught.value))  # noqa: S301 - our own object, as multiprocessing does
    assert isinstance(copy, PhoneError)
    assert (copy.reason, copy.raw, copy.message) == (E.TOO_SHORT, "98765", caught.value.message)


def test_reasons_are_lowercase_strings() -> None:
    assert [r.value for r in E] == [
        "empty",
        "not_a_number",
        "too_short",
        "too_long",
        "invalid_country_code",
        "not_valid",
    ]
    assert f"{E.NOT_VALID}" == "not_valid"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (ASHA, True),
        ("+442083661177", True),
        ("+16502530000", True),
        ("+912223456789", True),
        ("9876543210", False),
        ("919876543210", False),
        ("+91 98765 43210", False),
        ("p:+919876543210", False),
        (" +919876543210", False),
        ("+919876543210 ext 12", False),
        ("+919876543210/+919123456789", False),
        ("+९१९८७६५४३२१०", False),
        ("+9198765432101", False),
        ("", False),
        ("abc", False),
    ],
)
def test_is_canonical(value: str, expected: bool) -> None:
    assert is_canonical(value) is expected


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        (ASHA, "+91********10"),
        ("+91 98765 43210", "+91********10"),
        ("p:+919876543210", "+91********10"),
        ("+442083661177", "+44********77"),
        ("+16502530000", "+1********00"),
        ("+9715012345678", "+971********78"),
        ("9876543210", "********10"),
        ("09876543210", "*********10"),
        ("9876543210/9123456789", "******************89"),
        ("98765", "*****"),
        ("+9198765", "+91*****"),
        ("12", "**"),
        ("+91", "+91"),
        ("९८७६५४३२१०", "********10"),
        ("abc", "<no digits>"),
        ("", "<empty>"),
        ("   ", "<empty>"),
        (None, "<none>"),
    ],
)
def test_mask(value: str | None, masked: str) -> None:
    assert mask(value) == masked


@pytest.mark.parametrize(("raw", "region", "e164", "is_mobile", "extra"), VALID)
def test_mask_never_shows_more_than_the_country_code_and_two_digits(
    raw: str, region: str, e164: str, is_mobile: bool, extra: tuple[str, ...]
) -> None:
    code = str(phonenumbers.parse(e164).country_code)
    national = e164.removeprefix("+" + code)
    for value in (raw, e164):
        masked = mask(value)
        assert national not in re.sub(r"\D", "", masked)
        if masked.startswith("+"):
            assert masked.startswith("+" + code)
            masked = masked.removeprefix("+" + code)
        assert len(re.sub(r"\D", "", masked)) <= 2


# --- the fast path answers exactly as phonenumbers.parse does ------------------------------------------------

PREFIXES = [
    "",
    "0",
    "91",
    "+91",
    "0091",
    "+91 ",
    "91 ",
    "0091-",
    "0 ",
    "+91-",
    "+910",
    "091",
    "00",
    "+",
    "9",
    "+9",
]


def _outcome(raw: str, region: str, *, slow: bool) -> ParsedPhone | tuple[str, str, str]:
    try:
        return (_parse_phone_slow if slow else parse_phone)(raw, region)
    except PhoneError as error:
        return (error.reason.value, error.raw, error.message)


@pytest.mark.parametrize("prefix", PREFIXES)
def test_fast_path_agrees_with_phonenumbers_on_random_numbers(prefix: str) -> None:
    rng = random.Random(f"phones-{prefix}")
    numbers = [f"{rng.randrange(10**10):010d}" for _ in range(250)]  # every ten-digit string
    numbers += [str(rng.randrange(6 * 10**9, 10**10)) for _ in range(250)]  # the mobile ranges
    numbers += [f"{rng.randrange(10**k):0{k}d}" for k in range(6, 14) for _ in range(25)]  # other lengths
    numbers += [
        f"1800{rng.randrange(10**7):07d}",
        f"140{rng.randrange(10**7):07d}",
        f"1860{rng.randrange(10**7):07d}",
    ]
    numbers += [f"91{rng.randrange(10**8):08d}" for _ in range(100)]  # national numbers that start like +91
    numbers += ["1600123456", "9198765432", "9191919191", "6000000000", "9999999999", "2223456789"]
    for nsn in numbers:
        for body in (nsn, f"{nsn[:5]} {nsn[5:]}", f"{nsn[:3]}-{nsn[3:]}"):
            raw = prefix + body
            for region in ("IN", "GB") if body is nsn else ("IN",):
                fast, slow = _outcome(raw, region, slow=False), _outcome(raw, region, slow=True)
                assert fast == slow, (raw, region)


@pytest.mark.parametrize("separator", ["/", ", ", " or ", "|", ";"])
def test_fast_path_agrees_with_phonenumbers_on_several_numbers_in_one_field(separator: str) -> None:
    rng = random.Random(f"several-{separator}")
    firsts = [f"{rng.randrange(10**10):010d}" for _ in range(100)] + [
        str(rng.randrange(6 * 10**9, 10**10)) for _ in range(100)
    ]
    firsts += [f"{rng.randrange(10**k):0{k}d}" for k in (6, 9, 11, 12) for _ in range(20)]
    for first in firsts:
        for prefix in ("", "0", "91", "+91 ", "0091"):
            second = rng.choice([str(rng.randrange(6 * 10**9, 10**10)), "98765", "abc", "+442083661177"])
            for raw in (f"{prefix}{first}{separator}{second}", f"{second}{separator}{prefix}{first}"):
                fast, slow = _outcome(raw, "IN", slow=False), _outcome(raw, "IN", slow=True)
                assert fast == slow, raw


@pytest.mark.parametrize(
    ("raw", "hit"),
    [
        (ASHA, (ASHA, True)),
        ("9876543210", (ASHA, True)),
        ("98765 43210", (ASHA, True)),
        ("09876543210", (ASHA, True)),
        ("919876543210", (ASHA, True)),
        ("00919876543210", (ASHA, True)),
        ("+91 98765 43210", (ASHA, True)),
        ("+91-98765-43210", (ASHA, True)),
        ("+912223456789", ("+912223456789", False)),  # canonical landline
        ("022 2345 6789", ("+912223456789", False)),
        ("+9118001234567", ("+9118001234567", False)),  # toll free
        ("6123456789", ("+916123456789", False)),  # FIXED_LINE by the metadata, though it starts with 6
        ("9198765432", ("+919198765432", True)),  # starts with the country code, but is a national number
        ("09198765432", ("+919198765432", True)),  # the trunk prefix before such a number
        ("919198765432", ("+919198765432", True)),
        ("0919876543210", None),  # '0' + '+91…' without its '+': the slow path's second reading
        ("+91 09876543210", None),
        ("९८७६५४३२१०", None),  # only ASCII digits take the fast path
        ("98765  43210", None),
        ("9876543210/9123456789", None),
        ("+9198765432101", None),  # not valid: the slow path says why
        ("+442083661177", None),
    ],
)
def test_fast_path_takes_what_it_surely_knows(raw: str, hit: tuple[str, bool] | None) -> None:
    assert _fast(raw, "IN") == hit


def test_fast_path_covers_most_fixture_like_input() -> None:
    rng = random.Random(11)
    sample = [str(rng.randrange(6 * 10**9, 10**10)) for _ in range(1000)]
    # Those starting with the country code (91…, 2.5% of the range) too: they are national numbers.
    assert sum(_fast(s, "IN") is not None for s in sample) >= 990
    assert sum(_fast(s, "IN") is not None for s in sample if s.startswith("91")) >= 20
    assert _fast(ASHA, "GB") == (ASHA, True)  # '+91…' does not depend on the region
    assert _fast("9876543210", "GB") is None


def test_fast_path_does_not_call_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> phonenumbers.PhoneNumber:
        raise AssertionError("phonenumbers.parse called on the fast path")

    monkeypatch.setattr(phonenumbers, "parse", refuse)
    assert normalize(ASHA) == ASHA
    assert normalize("98765 43210") == ASHA
    assert parse_phone("022 2345 6789") == ParsedPhone(e164="+912223456789", extra=(), is_mobile=False)
    assert is_canonical(ASHA)
    with pytest.raises(AssertionError):
        normalize("0919876543210")
