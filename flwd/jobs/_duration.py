"""Durations as a config writes them: ``30``, ``2.5``, ``"30s"``, ``"1h30m"``, ``"500ms"``.

One parser for every duration of a job's config (``timeout``, ``retry_backoff``, a
schedule's ``jitter`` and ``catchup_window``, ``@every 90s``), so they all read alike.
"""

from __future__ import annotations

import math
import re
from typing import Any, Final

from pydantic_core import PydanticCustomError

from ._argspec import plain, show

__all__ = ["duration_validator", "parse_duration"]

_DURATION_RE: Final = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+")
_DURATION_PART_RE: Final = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_SECONDS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_NUMBER_RE: Final = re.compile(r"\d+(?:\.\d+)?")


def parse_duration(value: Any, *, allow_zero: bool = False) -> float:
    """Seconds from ``30``, ``2.5``, ``"30s"``, ``"30m"``, ``"1h30m"``, ``"500ms"``, ``"1d"``.

    Raises:
        ValueError: not a duration, negative, infinite, or zero when not allowed.
    """
    seconds: float
    if isinstance(value, bool):
        raise ValueError(f"{show(value)} is not a duration")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and _NUMBER_RE.fullmatch(value.strip()):
        seconds = float(value.strip())
    elif isinstance(value, str) and _DURATION_RE.fullmatch(value.strip()):
        seconds = sum(
            float(number) * _UNIT_SECONDS[unit]
            for number, unit in _DURATION_PART_RE.findall(value.strip())
        )
    else:
        raise ValueError(f"{show(value)} is not a duration (seconds, or like 30s, 30m, 1h30m)")
    if not math.isfinite(seconds):
        raise ValueError(f"{show(value)} is not a finite duration")
    if seconds < 0 or (seconds == 0 and not allow_zero):
        raise ValueError(
            f"must be greater than {'or equal to ' if allow_zero else ''}0 (got {plain(value)})"
        )
    return seconds


def duration_validator(value: Any, *, allow_zero: bool) -> Any:
    """:func:`parse_duration` for a pydantic ``mode="before"`` validator (None stays None)."""
    if value is None:
        return None
    try:
        return parse_duration(value, allow_zero=allow_zero)
    except ValueError as exc:
        raise PydanticCustomError("duration", "{message}", {"message": str(exc)}) from None
