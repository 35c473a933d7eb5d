import pytest

from leadhub.customers.names import clean_email, clean_name


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Asha Patel", "Asha Patel"),
        ("  Asha   Patel ", "Asha Patel"),
        ("Knowlarity Lead +919876543210", None),
        ("Knowlarity Lead 9876543210", None),
        ("knowlarity lead ", None),
        ("Meta Lead 9876543210", None),
        ("Walk-in Lead", None),
        ("9876543210", None),
        ("+91 98765 43210", None),
        ("", None),
        ("   ", None),
        (None, None),
        ("N/A", None),
        ("unknown", None),
        ("-", None),
        ("Customer 3210 Sharma", "Customer 3210 Sharma"),  # a real name that happens to start so
        ("Leadbetter", "Leadbetter"),
    ],
)
def test_clean_name(raw: str | None, expected: str | None) -> None:
    assert clean_name(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("Asha@Example.com ", "asha@example.com"), ("not an email", None), ("", None), (None, None)],
)
def test_clean_email(raw: str | None, expected: str | None) -> None:
    assert clean_email(raw) == expected
