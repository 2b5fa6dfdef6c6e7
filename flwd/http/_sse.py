"""Server-Sent Events framing (sans-IO)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from flwd.events import EventRecord

PREAMBLE = b"retry: 2000\n:connected\n\n"
#: The reference's spelling, byte for byte (its clients and tests match it).
KEEP_ALIVE = b":keep-alive\n\n"
#: Bytes handed to the server per write at most. The server copies what it is
#: given (HTTP chunk framing) and holds it until the socket takes it, so this
#: bounds what a slow reader pins besides its batch; the socket paces the writes.
WRITE_BYTES = 64 * 1024


def writes(pieces: Iterable[bytes], limit: int = WRITE_BYTES) -> Iterator[bytes]:
    """``pieces`` as writes of at most ``limit`` bytes: small ones joined, large ones cut.

    A cut may fall inside an SSE frame or NDJSON line: the body is one byte
    stream, and frames are delimited by their content, not by writes.
    """
    held: list[bytes] = []
    size = 0
    for piece in pieces:
        if size + len(piece) > limit and held:
            yield b"".join(held)
            held, size = [], 0
        if len(piece) <= limit:
            held.append(piece)
            size += len(piece)
            continue
        # A large piece (a shared record's cached frames) is cut, never joined:
        # each write copies at most ``limit`` bytes of it.
        for start in range(0, len(piece), limit):
            yield piece[start:start + limit]
    if held:
        yield b"".join(held)


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

