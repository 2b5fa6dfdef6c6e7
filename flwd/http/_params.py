"""Integer query parameters and cursors, checked before they reach SQLite (sans-IO).

Every integer a client sends — ``page``, ``per_page``, a ``Last-Event-ID`` or
``?after=`` cursor — is read here, with its range. SQLite stores integers in 64
signed bits: a cursor of 2**63 raised ``OverflowError`` in the middle of a
streamed answer (a 200 and a cut body). ``str.isdigit`` alone is not enough
either: it accepts ``"²"`` (which ``int`` refuses) and Arabic-Indic digits, and
``int`` refuses strings of more than 4,300 digits.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The largest event seq SQLite can hold (INTEGER is a signed 64-bit number).
MAX_CURSOR = (1 << 63) - 1
#: More digits than any accepted value has (with leading zeros): refused unread.
_MAX_DIGITS = 24
#: How much of a refused value a problem quotes (it is client input, of any length).
_QUOTE = 40


@dataclass(frozen=True, slots=True)
class IntRange:
    """The values one integer parameter accepts, inclusive."""

    low: int
    high: int

    def describe(self) -> str:
        return f"an integer from {self.low} to {self.high}"


CURSOR = IntRange(0, MAX_CURSOR)
PAGE = IntRange(1, 1_000_000)
PER_PAGE = IntRange(1, 200)


def quote(text: str) -> str:
    """``repr`` of client input, cut to a bounded length."""
    return repr(text if len(text) <= _QUOTE else text[:_QUOTE] + "…")


def parse_int(text: str, accepted: IntRange) -> int:
    """``text`` (ASCII digits, surrounding blanks ignored) as an int within ``accepted``.

    Raises:
        ValueError: with a message naming the range and quoting (a bounded part of) the value.
    """
    digits = text.strip()
    if not (0 < len(digits) <= _MAX_DIGITS and digits.isascii() and digits.isdigit()):
        raise ValueError(f"must be {accepted.describe()} (got {quote(text)})")
    value = int(digits)
    if not accepted.low <= value <= accepted.high:
        raise ValueError(f"must be {accepted.describe()} (got {quote(text)})")
    return value


def parse_cursor(value: str | None) -> int | None:
    """A ``Last-Event-ID`` / ``?after=`` value as an event seq; None when absent or blank.

    Raises:
        ValueError: not an integer from 0 to :data:`MAX_CURSOR`.
    """
    if value is None or value.strip() == "":
        return None
    return parse_int(value, CURSOR)
