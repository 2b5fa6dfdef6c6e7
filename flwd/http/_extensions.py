"""The reference's serve extensions: ``:serve --extension NAME`` and ``FLWD_EXTENSIONS`` (sans-IO).

flowd serves a few routes only when their extension is enabled; flwd serves them always,
so an extension flwd knows changes nothing. The names are checked all the same: a typo
would otherwise look enabled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from flwd.errors import UsageError

from ._params import quote

#: Every extension flowd has, with what it turns on there (and flwd serves anyway).
KNOWN_EXTENSIONS: Mapping[str, str] = {
    "export": "GET /runs/{id}/events.ndjson",
}


def parse_extensions(flags: Sequence[str] | None, env: Mapping[str, str]) -> tuple[str, ...]:
    """The extensions asked for, as the reference reads them: ``--extension`` (repeatable,
    each comma-separated) or, when none is given, ``FLWD_EXTENSIONS`` (comma-separated).

    Raises:
        UsageError: a name that is no extension (the line names the known ones).
    """
    origin, texts = ("--extension", flags) if flags else (
        "FLWD_EXTENSIONS", [env.get("FLWD_EXTENSIONS", "")])
    names: dict[str, None] = {}
    for text in texts:
        for part in text.split(","):
            name = part.strip().lower()
            if not name:
                continue
            if name not in KNOWN_EXTENSIONS:
                known = ", ".join(f"{known} ({what}, which flwd always serves)"
                                  for known, what in KNOWN_EXTENSIONS.items())
                raise UsageError(f"{origin}: unknown extension {quote(part.strip())}",
                                 hint=f"the known extensions: {known}")
            names[name] = None
    return tuple(names)
