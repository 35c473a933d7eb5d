"""Which names count as a person's name. Pure: no I/O."""

from __future__ import annotations

import re

# Names the legacy syncs and vendors invent when the enquiry had none ("Knowlarity Lead +9198...",
# "Meta Lead 98...", ../shared/legacy/legacy-app.md §2), and blanks people type.
_PLACEHOLDER = re.compile(
    r"""^(?:
        (?:knowlarity|meta|facebook|fb|instagram|ig|website|web|walk[\s-]?in|google|unknown|new|test)\s+lead\b.*
      | (?:unknown|n/?a|na|none|null|nil|test|customer|caller|lead|-+|\.+|\?+)
      | [\s\d+()./-]*            # only a number, or punctuation
    )$""",
    re.IGNORECASE | re.VERBOSE,
)


def clean_name(value: str | None) -> str | None:
    """The name with whitespace tidied, or None when it is empty or a placeholder."""
    if value is None:
        return None
    tidy = " ".join(value.split())
    if not tidy or _PLACEHOLDER.match(tidy):
        return None
    return tidy


def clean_text(value: str | None) -> str | None:
    if value is None:
        return None
    tidy = " ".join(value.split())
    return tidy or None


def clean_email(value: str | None) -> str | None:
    tidy = clean_text(value)
    if tidy is None or "@" not in tidy or " " in tidy:
        return None
    return tidy.lower()
