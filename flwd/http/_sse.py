"""Server-Sent Events framing (sans-IO)."""

from __future__ import annotations

from flwd.events import EventRecord

PREAMBLE = b"retry: 2000\n:connected\n\n"
KEEP_ALIVE = b": keep-alive\n\n"


def frames(record: EventRecord) -> bytes:
    """SSE frames for every event of a record: ``id`` = seq, ``event`` = type, ``data`` = envelope.

    Encoded once per record: every subscriber of a run shares the same records.
    """
    if record.sse_cache is None:
        record.sse_cache = _encode(record)
    return record.sse_cache


def _encode(record: EventRecord) -> bytes:
    # The data line is the event's NDJSON line (same envelope, same encoder), so
    # output chunks reuse the fast NDJSON framing instead of a json.dumps per line.
    event = record.type.encode()
    lines = record.ndjson().split(b"\n")[:-1]
    return b"".join(b"id: %d\nevent: %s\ndata: %s\n\n" % (record.seq + index, event, line)
                    for index, line in enumerate(lines))

