"""Server-Sent Events framing (sans-IO)."""

from __future__ import annotations

import json

from flwd.events import EventRecord

PREAMBLE = b"retry: 2000\n:connected\n\n"
KEEP_ALIVE = b": keep-alive\n\n"

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def frames(record: EventRecord) -> bytes:
    """SSE frames for every event of a record: ``id`` = seq, ``event`` = type, ``data`` = envelope."""
    out = []
    for event in record.iter_events():
        payload = _dumps(event)
        # json.dumps never emits raw newlines, so one data line always suffices.
        out.append(f"id: {event['seq']}\nevent: {event['type']}\ndata: {payload}\n\n")
    return "".join(out).encode()


def parse_cursor(value: str | None) -> int | None:
    """A Last-Event-ID / ?after= value as an int; None when absent.

    Raises:
        ValueError: not a non-negative integer.
    """
    if value is None or value.strip() == "":
        return None
    text = value.strip()
    if not text.isdigit():
        raise ValueError(f"cursor must be a non-negative integer (got {value!r})")
    return int(text)
