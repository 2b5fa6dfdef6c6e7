"""Time zones by IANA name: a schedule's ``timezone:``, and the server's own zone.

A schedule without ``timezone:`` runs on the zone of the host that schedules it.
That zone is resolved to its IANA name once (``TZ``, else the ``/etc/localtime``
link, else ``/etc/timezone``, else UTC) and shown with every schedule, so that
nobody has to guess which 02:30 is meant.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

__all__ = ["resolve_zone", "system_zone"]

#: An IANA key: words of letters, digits, ``_+-`` joined by ``/`` (no ``..``, no leading ``/``).
_KEY: Final = re.compile(r"[A-Za-z0-9_+-]+(?:/[A-Za-z0-9_+-]+)*")
_MAX_KEY: Final = 64


@lru_cache(maxsize=256)
def resolve_zone(name: str) -> ZoneInfo:
    """The zone an IANA name names (``Europe/Berlin``, ``UTC``).

    Raises:
        ValueError: not a zone of this host's time zone database (with a
            did-you-mean when a name is close).
    """
    if len(name) > _MAX_KEY or not _KEY.fullmatch(name):
        raise ValueError(f"{name[:_MAX_KEY]!r} is not an IANA time zone name "
                         "(like Europe/Berlin, America/New_York, UTC)")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        pass
    from difflib import get_close_matches

    close = get_close_matches(name, sorted(available_timezones()), n=1, cutoff=0.8)
    hint = f"; did you mean {close[0]!r}?" if close else " (like Europe/Berlin, UTC)"
    raise ValueError(f"unknown time zone {name!r}{hint}")


def system_zone(environ: Mapping[str, str] | None = None,
                localtime: Path = Path("/etc/localtime"),
                timezone_file: Path = Path("/etc/timezone")) -> str:
    """The IANA name of this host's zone; ``UTC`` when it cannot be told.

    ``TZ`` wins (``Europe/Berlin`` or ``:Europe/Berlin``; a POSIX rule like
    ``CET-1CEST`` names no IANA zone and is passed over), then the target of the
    ``/etc/localtime`` link, then ``/etc/timezone``.
    """
    environ = os.environ if environ is None else environ
    candidates = [environ.get("TZ", "").removeprefix(":")]
    try:
        target = os.readlink(localtime)
    except OSError:
        target = ""
    if "zoneinfo/" in target:
        candidates.append(target.rsplit("zoneinfo/", 1)[1])
    try:
        candidates.append(timezone_file.read_text(encoding="utf-8").strip())
    except (OSError, UnicodeDecodeError):
        pass
    for candidate in candidates:
        if candidate.startswith(("posix/", "right/")):
            candidate = candidate.split("/", 1)[1]
        try:
            resolve_zone(candidate)
        except ValueError:
            continue
        return "UTC" if candidate in ("Etc/UTC", "Etc/Universal", "Universal", "Zulu") \
            else candidate
    return "UTC"
