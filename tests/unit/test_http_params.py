"""Integer query parameters and cursors (flwd/http/_params.py): ranges, digits, bounded quotes."""

from __future__ import annotations

import pytest

from flwd.http._params import CURSOR, MAX_CURSOR, PER_PAGE, parse_cursor, parse_int


def test_the_cursor_range_is_what_sqlite_can_hold() -> None:
    assert MAX_CURSOR == 2**63 - 1
    assert parse_cursor(str(MAX_CURSOR)) == MAX_CURSOR
    assert parse_cursor(" 0 ") == 0
    assert parse_cursor(None) is None and parse_cursor("  ") is None
    for huge in (2**63, 2**64, 10**30):
        with pytest.raises(ValueError, match="from 0 to 9223372036854775807"):
            parse_cursor(str(huge))


@pytest.mark.parametrize("text", [
    "-1", "+1", "1.0", "1e3", "0x10", "²", "١٢", "１２", "1 2", "", "9" * 5000,
])
def test_only_ascii_digits_are_integers(text: str) -> None:
    # "²".isdigit() is True and int("²") raises; int("١٢") == 12; int("9" * 5000) raises.
    with pytest.raises(ValueError):
        parse_int(text, CURSOR)


def test_a_refusal_quotes_a_bounded_part_of_the_value() -> None:
    with pytest.raises(ValueError) as caught:
        parse_int("7" * 100_000, PER_PAGE)
    message = str(caught.value)
    assert message.startswith("must be an integer from 1 to 200 (got '7777")
    assert len(message) < 120


def test_bounds_are_inclusive() -> None:
    assert parse_int("1", PER_PAGE) == 1 and parse_int("200", PER_PAGE) == 200
    assert parse_int("0200", PER_PAGE) == 200
    for text in ("0", "201"):
        with pytest.raises(ValueError):
            parse_int(text, PER_PAGE)
