"""An SSE response carrying events: of one run or of all (``GET /runs/<id>/events``,
``GET /events``), and of a run just created (``POST /runs`` asking for
``text/event-stream``).

Every stream takes a slot of the process-wide cap (``_streams``) before its
first byte, and gives it back when its body ends — or, for a body that never
started, when the body is collected.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Mapping
from contextlib import aclosing
from typing import Any

from quart import make_response

from flwd.events import EventRecord

from ._auth import Principal
from ._grants import guarded
from ._problems import HttpProblem
from ._request import current_principal
from ._sse import KEEP_ALIVE, PREAMBLE, frames, writes
from ._state import AppState, current_state
from ._streams import RETRY_AFTER, StreamSlot

#: The headers of every event stream.
SSE_HEADERS: Mapping[str, str] = {"Content-Type": "text/event-stream",
                                  "Cache-Control": "no-store", "X-Accel-Buffering": "no"}


def take_stream_slot(kind: str) -> StreamSlot:
    """A slot for one more event stream, or 503 streams.busy (before any byte is sent)."""
    state = current_state()
    slot = state.streams.try_take()
    if slot is None:
        if state.metrics is not None:
            state.metrics.stream_refusals.labels(kind).inc()
        raise HttpProblem(503, "too many event streams",
                          f"this server has {state.streams.limit} event streams open "
                          "(flwd :serve --max-streams); retry shortly",
                          code="streams.busy", headers={"Retry-After": str(RETRY_AFTER)})
    return slot


async def sse_response(run_id: str | None, after: int, *, slot: StreamSlot | None = None,
                       status: int = 200, headers: Mapping[str, str] | None = None) -> Any:
    """The events of ``run_id`` (None: of every run) after ``after`` as SSE, in a
    response of ``status``; ``slot``: one the caller took already (before it started
    the run, so that a refusal leaves nothing behind).

    Cancellation: nothing is left behind (the slot is released with the body).
    """
    slot = slot or take_stream_slot("sse")
    body = event_stream(current_state(), run_id, after, slot, current_principal())
    return await stream_response(body, slot, status=status, headers=headers)


async def stream_response(body: AsyncGenerator[bytes, None], slot: StreamSlot, *,
                          status: int = 200, headers: Mapping[str, str] | None = None) -> Any:
    """``body`` as an SSE response (or another streamed type, by ``headers``) that is never
    cut by a timeout.

    Cancellation: nothing is left behind.
    """
    slot.release_with(body)  # a body never started never runs its finally
    response = await make_response(body, status, {**SSE_HEADERS, **(headers or {})})
    response.timeout = None  # type: ignore[union-attr]  # an event stream must not be cut
    return response


async def event_stream(state: AppState, run_id: str | None, after: int, slot: StreamSlot,
                       principal: Principal | None, *, head: bytes = b"",
                       encode: Callable[[EventRecord], bytes] = frames,
                       preamble: bytes = PREAMBLE, keep_alive: bytes = KEEP_ALIVE
                       ) -> AsyncGenerator[bytes, None]:
    """The body of an event stream: ``head`` (frames of its own) with the ``preamble``, then
    each event as ``encode`` frames it, until the run ends (or the server stops);
    ``keep_alive`` when nothing happened for a while (SSE's by default).

    Cancellation: a client that leaves ends the body; its slot is released.
    """
    # ``state`` is the handler's: the body is iterated after the handler returned.
    # It ends when its credentials no longer hold (see _grants).
    engine, metrics = state.engine, state.metrics
    if metrics is not None:
        metrics.sse_streams.inc()
    try:
        # A live run's replay comes from the hub's backlog without waiting:
        # the preamble then travels with it (one socket send, one client
        # wake-up less). Otherwise it goes first, on its own.
        preamble = preamble + head
        if run_id is None or not engine.has_backlog_after(run_id, after):
            yield preamble
            preamble = b""
        with state.sessions.grant(principal) as grant:
            async with aclosing(guarded(grant, state.options.keep_alive, lambda beat: engine.events(
                    run_id, after=after, heartbeat=beat))) as stream:
                async for batch in stream:
                    # Bounded writes, each awaited until the socket takes it:
                    # a slow reader paces its own replay (see engine._stream).
                    pieces = [encode(record) for record in batch] if batch else [keep_alive]
                    for body in writes([preamble, *pieces] if preamble else pieces):
                        yield body
                    preamble = b""
    finally:
        slot.release()
        if metrics is not None:
            metrics.sse_streams.dec()
