"""How one delivery attempt ended, whatever the sink (sans-IO)."""

from __future__ import annotations

from dataclasses import dataclass

#: Longest error a delivery keeps (it goes into an event and a row).
MAX_ERROR = 300


def bounded(text: str, *secrets: str) -> str:
    """``text`` on one line, without any of ``secrets``, cut to :data:`MAX_ERROR`
    characters: what is said of an attempt never quotes a URL's token or a password."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[secret]")
    line = " ".join(text.split())
    return line if len(line) <= MAX_ERROR else line[:MAX_ERROR - 1] + "…"


@dataclass(frozen=True, slots=True)
class Attempt:
    """``delivered``, or why not: ``status`` (an HTTP status, an SMTP reply code, an exit
    status), ``error`` (bounded, no secret), whether another attempt may help, and the
    delay the receiver asked for (``Retry-After``)."""

    delivered: bool
    status: int | None = None
    error: str | None = None
    retry: bool = False
    retry_after: float | None = None
