"""Event streams: SSE (``/runs/<id>/events``, ``/events``), NDJSON, the output as text,
and the run's WebSocket.

Every stream takes a slot of the process-wide cap (``_streams``) before its
first byte, and gives it back when its body ends — or, for a body that never
started, when the body is collected (see ``_streaming``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator
from contextlib import aclosing
from typing import Any

import trio
from quart import Blueprint, Response, make_response, request, websocket
from quart_cors import cors_exempt

from flwd.engine import Engine
from flwd.errors import RunNotFound
from flwd.events import RUN_START, TERMINAL_STATUSES, EventRecord, RunRow

from ._auth import Principal
from ._grants import StreamGrant, guarded
from ._params import quote
from ._problems import HttpProblem, bad_request
from ._request import current_principal, cursor
from ._runs import exact_run
from ._sse import writes
from ._state import current_state
from ._streaming import sse_response, take_stream_slot

blueprint = Blueprint("events", __name__)
#: What ``/runs/<id>`` accepts as a run id (the app's ``runid`` converter).
_RUN_ID = re.compile(r"[A-Za-z0-9_.-]{1,128}")


async def _gone_if_evicted(run_id: str | None, after: int | None, transport: str) -> None:
    """410 for a cursor that points into history retention has evicted."""
    if after is None:
        return
    state = current_state()
    if await state.engine.cursor_expired(run_id, after):
        if state.metrics is not None:
            state.metrics.cursor_expired.labels(transport).inc()
        raise HttpProblem(410, "cursor expired",
                          "the events after this cursor were evicted by retention; "
                          "start again without Last-Event-ID (GET /runs lists what is "
                          "kept)", code="cursor.expired")


@blueprint.get("/runs/<runid:run_id>/events")
async def run_events(run_id: str) -> Any:
    """The run's events as SSE: a replay after the cursor, then live.

    Cancellation: nothing is left behind (the stream's slot is released with its body).
    """
    state = current_state()
    engine = state.engine
    if cursor() is None and engine.is_live(run_id):
        # A live run of this process, streamed from its first event: it
        # exists and the answer cannot be 204, so no journal lookup.
        return await sse_response(run_id, 0)
    try:
        run = await exact_run(run_id)
    except RunNotFound:
        await _gone_if_evicted(run_id, cursor(), "sse")
        raise
    after = cursor()
    if after is not None:
        if state.metrics is not None:
            state.metrics.sse_resumes.inc()
        if run.status in TERMINAL_STATUSES and after >= await engine.stream_end(run.id):
            # The stream already ended for this client: 204 stops EventSource.
            return Response("", status=204)
    return await sse_response(run.id, after or 0)


@blueprint.get("/events")
async def all_events() -> Any:
    """Every run's events as SSE, from now (or after the cursor); with ``?run_id=``,
    that run's events only (see :func:`run_events`).

    Cancellation: nothing is left behind.
    """
    run_id = request.args.get("run_id")
    if run_id is not None:
        # One run's stream, as the reference's ``?run_id=`` (reached with events:read
        # alone): the same as /runs/<id>/events — from its first event.
        if not _RUN_ID.fullmatch(run_id):
            raise bad_request(f"invalid run_id {quote(run_id)}",
                              errors=[{"arg": "run_id", "message": "a run id, as runs show it"}],
                              code="invalid-run-id")
        return await run_events(run_id)
    after = cursor()
    await _gone_if_evicted(None, after, "sse")
    if after is None:
        # A new global subscriber starts at "now", not at the beginning of history.
        after = await current_state().engine.last_seq()
    return await sse_response(None, after)


@blueprint.get("/runs/<runid:run_id>/events.ndjson")
async def run_events_ndjson(run_id: str) -> Any:
    """The run's journaled events as NDJSON (an export: it does not follow the run).

    Cancellation: nothing is left behind (here as in ``run_log_text``).
    """
    try:
        run = await exact_run(run_id)
    except RunNotFound:
        # As the SSE stream: resuming the export of an evicted run is 410, not 404.
        await _gone_if_evicted(run_id, cursor(), "ndjson")
        raise
    return await _export(run.id, cursor() or 0, "ndjson",
                         lambda batch: (record.ndjson() for record in batch),
                         {"Content-Type": "application/x-ndjson"})


@blueprint.get("/runs/<runid:run_id>/log.txt")
async def run_log_text(run_id: str) -> Any:
    """The run's output as plain text, as its terminal shows it (a download; it does not
    follow the run): stdout and stderr lines in journal order, unmarked, each after
    ``[<step>] `` for a ``composition: steps`` job (see ``EventRecord.text``).
    """
    run = await exact_run(run_id)
    steps = False

    def text(batch: list[EventRecord]) -> Iterator[bytes]:
        nonlocal steps
        for record in batch:
            if record.type == RUN_START and "composition" in record.data:
                steps = record.data["composition"] == "steps"
            yield record.text(step_prefix=steps)

    name = _UNSAFE_IN_FILENAME.sub("_", f"{run.job_id}-{run.id}")
    return await _export(run.id, 0, "text", text, {
        "Content-Type": "text/plain; charset=utf-8",
        "Content-Disposition": f'attachment; filename="{name}.log"'})


#: What a download's name keeps of a job id and a run id (a header value, a file name).
_UNSAFE_IN_FILENAME = re.compile(r"[^A-Za-z0-9._-]")


async def _export(run_id: str, after: int, kind: str,
                  render: Callable[[list[EventRecord]], Iterable[bytes]],
                  headers: dict[str, str]) -> Any:
    """A stream of the run's journaled events after ``after``, each batch as ``render``
    frames it, in writes of bounded size: a page of the journal at a time, so memory
    does not grow with the run (a slow reader paces its own reads)."""
    state, principal = current_state(), current_principal()

    async def body() -> AsyncGenerator[bytes, None]:
        try:
            # It ends early if its credentials stop holding (see _grants).
            with state.sessions.grant(principal) as grant:
                async with aclosing(guarded(grant, math.inf, lambda _: state.engine.events(
                        run_id, after=after, follow=False))) as stream:
                    async for batch in stream:
                        for piece in writes(render(batch)):
                            yield piece
        finally:
            slot.release()

    slot = take_stream_slot(kind)
    stream = body()
    slot.release_with(stream)
    response = await make_response(stream, 200, {**headers, "Cache-Control": "no-store"})
    response.timeout = None  # type: ignore[union-attr]
    return response


@blueprint.websocket("/runs/<runid:run_id>/ws")
@cors_exempt  # _dev_gate checks the Origin (see the cors() call in _app)
async def run_ws(run_id: str) -> None:
    """The run's events as JSON messages; the client may send ``{"type": "cancel"}``.

    Cancellation: a cancel the client sent may already be with the run (it stops).
    """
    run = await exact_run(run_id)
    slot = take_stream_slot("websocket")
    try:
        await _ws_stream(run)
    finally:
        slot.release()


async def _ws_stream(run: RunRow) -> None:
    await websocket.accept()
    state = current_state()
    if state.metrics is not None:
        state.metrics.websockets.inc()
    try:
        with state.sessions.grant(current_principal()) as grant:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_ws_commands, state.engine, run.id, current_principal(), grant)
                async with aclosing(guarded(grant, state.options.keep_alive, lambda beat: (
                        state.engine.events(run.id, heartbeat=beat)))) as stream:
                    async for batch in stream:
                        for record in batch:
                            for event in record.iter_events():
                                await websocket.send(json.dumps(event))
                nursery.cancel_scope.cancel(reason="stream ended")
        if grant.revoked:  # 1008: policy violation (RFC 6455 §7.4.1)
            await websocket.close(1008, "the token or session no longer holds")
        else:
            await websocket.close(1000, "run finished")
    finally:
        if state.metrics is not None:
            state.metrics.websockets.dec()


async def _ws_commands(engine: Engine, run_id: str, principal: Principal | None,
                       grant: StreamGrant) -> None:
    while True:
        text = await websocket.receive()
        try:
            message = json.loads(text)
        except (TypeError, ValueError):
            message = None
        if isinstance(message, dict) and message.get("type") == "cancel":
            if not grant.holds(now=True):
                await websocket.send(json.dumps({"type": "error", "code": "unauthorized",
                                                 "detail": "the token or session no longer "
                                                           "holds"}))
                continue
            if principal is not None and principal.missing(["runs:write"]):
                await websocket.send(json.dumps({"type": "error", "code": "forbidden",
                                                 "detail": "cancel needs runs:write"}))
                continue
            await engine.request_cancel(
                run_id, reason="canceled by request",
                by=f"ws:{principal.name if principal else '-'}")
        else:
            await websocket.send(json.dumps({
                "type": "error", "code": "invalid-message",
                "detail": 'send {"type": "cancel"} to cancel the run'}))
