"""The process-wide cap on open event streams (SSE, NDJSON, WebSocket).

Each stream's memory is bounded (see :mod:`flwd.engine._stream`, ~0.5 MB for
ordinary output), so capping how many are open at once bounds their total,
whatever the number of clients: ``max_streams × per-stream bound``
(docs/reliability.md states the number). A stream beyond the cap is refused
with 503 ``streams.busy`` and ``Retry-After`` before any byte of it is sent;
EventSource and the remote CLI retry by themselves.

Live subscribers are counted too: one that lags is dropped by the hub and
replays from the journal, so any open stream may become a replay.
"""

from __future__ import annotations

import weakref

#: Default cap: 128 × ~0.5 MB ≈ 64 MB for ordinary output.
MAX_STREAMS = 128
#: Seconds a refused client is asked to wait (EventSource waits its ``retry:``).
RETRY_AFTER = 1


class StreamSlot:
    """One taken slot; :meth:`release` gives it back (idempotent)."""

    __slots__ = ("__weakref__", "_slots")

    def __init__(self, slots: StreamSlots) -> None:
        self._slots: StreamSlots | None = slots

    def release(self) -> None:
        slots, self._slots = self._slots, None
        if slots is not None:
            slots.in_use -= 1

    def release_with(self, owner: object) -> None:
        """Also release when ``owner`` (a response body) is collected.

        A body that never started — the client left before the headers were
        sent — never runs its ``finally``: its slot must not leak with it.
        """
        weakref.finalize(owner, self.release)


class StreamSlots:
    """A counter of open streams with a fixed limit; never waits (refuses instead).

    Not a :class:`trio.CapacityLimiter`: a slot is taken by the request
    handler and released by the response body, which runs in another task.
    """

    def __init__(self, limit: int = MAX_STREAMS) -> None:
        if limit < 1:
            raise ValueError("max_streams must be at least 1")
        self.limit = limit
        self.in_use = 0

    def try_take(self) -> StreamSlot | None:
        """A slot, or None when ``limit`` streams are open."""
        if self.in_use >= self.limit:
            return None
        self.in_use += 1
        return StreamSlot(self)
