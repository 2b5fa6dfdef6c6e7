"""Token expiry: ``--expires 30d`` / ``12h`` / ``2027-01-01T00:00:00Z`` and the stored form (sans-IO)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from flwd.errors import UsageError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
#: One or more ``<count><unit>`` parts: ``30d``, ``1d12h``, ``90m``.
_DURATION = re.compile(r"(?:\d{1,9}[smhdw])+")
_PART = re.compile(r"(\d+)([smhdw])")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
#: datetime's last second (9999-12-31T23:59:59Z): later instants cannot be written down.
_LATEST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()
_NO_ZONE = "a time needs its zone (Z for UTC, or an offset such as +02:00)"
_HINT = ("use a duration such as 30d, 12h, 90m or 1d12h (units s, m, h, d, w), or a time "
         "with its zone such as 2027-01-01T00:00:00Z")


def format_time(epoch: float) -> str:
    """``2027-01-01T00:00:00Z``: how times are stored and shown (UTC, whole seconds)."""
    return datetime.fromtimestamp(int(epoch), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> float:
    """An ISO 8601 time with a zone (``Z`` or ``+02:00``), or a date (midnight UTC).

    Raises:
        ValueError: anything else, a time without a zone included.
    """
    if _DATE.fullmatch(text):
        return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()
    when = datetime.fromisoformat(text)  # ValueError for non-ISO text
    if when.tzinfo is None:
        raise ValueError(_NO_ZONE)
    return when.timestamp()


def parse_duration(text: str) -> float | None:
    """Seconds of a duration such as ``30d``, ``12h``, ``90m`` or ``1d12h``; None when
    ``text`` is not one (zero is a duration: the caller decides whether it may be)."""
    value = text.strip()
    if not _DURATION.fullmatch(value):
        return None
    return float(sum(int(count) * _UNITS[unit] for count, unit in _PART.findall(value)))


def parse_expires(text: str, *, now: float) -> float:
    """When a token given ``--expires TEXT`` at ``now`` expires (seconds since the epoch).

    Raises:
        UsageError: not a duration or a zoned time, zero, in the past, or beyond year 9999.
    """
    value = text.strip()
    shown = value if len(value) <= 40 else value[:40] + "…"
    seconds = parse_duration(value)
    if seconds is not None:
        if seconds == 0:
            raise UsageError(f"--expires {shown} is no time at all", hint=_HINT)
        expires = now + seconds
    else:
        try:
            expires = parse_time(value)
        except (ValueError, OverflowError) as exc:
            if str(exc) == _NO_ZONE:
                raise UsageError(f"--expires {shown} has no time zone",
                                 hint="add Z for UTC, or an offset such as +02:00") from None
            raise UsageError(f"invalid --expires '{shown}'", hint=_HINT) from None
        if expires <= now:
            raise UsageError(f"--expires {shown} is in the past",
                             hint=f"it is {format_time(now)} now")
    if expires > _LATEST:
        raise UsageError(f"--expires {shown} is too far in the future",
                         hint="the latest expiry is 9999-12-31T23:59:59Z")
    return float(int(expires))
