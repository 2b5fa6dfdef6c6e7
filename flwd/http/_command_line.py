"""``POST /runs``' ``words`` form: a ``flwd JOB …`` command line, run by this server for
the thin client on the local socket (one request per run).

The client sends its words and what a command line depends on besides them (its
environment, whether it can prompt, the scripts root it found); the server resolves,
binds and plans them exactly as the CLI does locally (the :class:`CommandLines` the CLI
hands ``:serve``), starts the run and answers with what the command line prints,
rendered here with the CLI's own renderer (:class:`flwd.output.RunOutput`) and the
client's colours, in the frames of :mod:`flwd.thin._frames` (``Accept:``
``application/x-flwd-terminal``):

- ``l`` (local): this command line is not for the server (it reads a secret from a file
  or the terminal, its environment asks for another policy, the server serves another
  workspace…): the client runs it itself. Nothing was done.
- ``o``/``e``: bytes for the client's stdout/stderr — what the command line prints
  before its run (a warning, a job's ``--help``, an error), then the run's output and
  status lines as a local run prints them (NDJSON with ``--json``).
- ``x``: the command line is done; its exit status (no run, or ``:logs``).
- ``r``: the run started (201, ``Location``), its id; ``f``: the run ended, its status
  (the client exits as a local run: 130 or 143 for a cancel by its own signal).
  A stream ending without the run's end says so on stderr, then ``x`` 1.

A run started this way belongs to its command line as a local run to its CLI: the
client leaving before the run ends cancels it.

The words may also be one of the CLI's verbs ``:jobs``, ``:plan``, ``:runs``, ``:logs``,
``:cancel`` (in the plain forms :func:`flwd.thin.parse_verb` takes; ``color``: the
client's stdout shows colours): they are answered as a job's ``--help`` is, with ``o``,
``e`` and ``x``, but ``:logs`` (200): ``g`` once the run is found, its events rendered —
up to its end with ``follow``, else up to what is journaled — then ``x`` (``--follow``:
as the run ended). Nothing of a run follows its client there: leaving early only ends
the stream.

A client of another protocol version gets ``cli.local`` as an SSE frame (what every
earlier client understands): it then runs the command line itself.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import trio
from pydantic import BaseModel, ConfigDict, Field
from quart import Response

from flwd.engine import Engine
from flwd.events import RUN_FINISH, EventRecord
from flwd.exits import EXIT_OK, exit_status
from flwd.plan import Plan
from flwd.thin import CLIENT_PROTOCOL, MEDIA_TYPE, frame

from ._local_socket import Client, is_local_peer, local_peer
from ._problems import HttpProblem
from ._request import current_principal, validate_body
from ._state import current_state
from ._streaming import SSE_HEADERS, event_stream, stream_response, take_stream_slot
from ._terminal import Renderer

__all__ = ["Answered", "CommandLine", "CommandLines", "Declined", "Ready", "Replay",
           "run_command_line"]


@dataclass(frozen=True, slots=True)
class CommandLine:
    """A ``flwd JOB …`` command line of a process on this host, as its client sent it."""

    #: The words after flwd's global options (the job's, then its flags).
    words: Sequence[str]
    #: The scripts root the client found (its ``--scripts``, ``FLWD_SCRIPTS`` or cwd).
    scripts_root: str
    #: Its environment: what the run's host steps start with, as in a local run.
    env: Mapping[str, str]
    #: Its standard input and error are terminals (a missing secret would be asked for).
    can_prompt: bool
    #: Its standard output shows colours (``flwd.output.use_color``: a verb's tables).
    color: bool = False


@dataclass(frozen=True, slots=True)
class Declined:
    """The command line must run in the client's own process; ``reason`` says why."""

    reason: str


@dataclass(frozen=True, slots=True)
class Answered:
    """The command line is done without a run: what it prints, and its exit status."""

    output: Sequence[tuple[str, str]]
    code: int


@dataclass(frozen=True, slots=True)
class Ready:
    """A run planned for the command line (to run as there: its host steps start with
    the command line's environment, ``Plan.host_env``); ``output``: what it printed first."""

    output: Sequence[tuple[str, str]]
    plan: Plan
    #: ``--json``: the client prints the events as NDJSON.
    as_json: bool


@dataclass(frozen=True, slots=True)
class Replay:
    """A run's events to print (``flwd :logs``); ``output``: what was printed first."""

    output: Sequence[tuple[str, str]]
    run_id: str
    #: The run's status when it was found (what ``:logs --follow`` exits with, unless
    #: the events end with the run's end).
    status: str
    #: ``--json``: the client prints the events as NDJSON.
    as_json: bool
    #: ``--follow``: ``events`` goes on until the run's end.
    follow: bool
    #: The events, in the batches the journal gives (closed when the stream ends).
    events: AsyncGenerator[list[EventRecord], None]


class CommandLines(Protocol):
    """What turns a command line into a plan as the CLI would (``flwd.cli`` gives one)."""

    async def prepare(self, engine: Engine, line: CommandLine
                      ) -> Declined | Answered | Ready | Replay:
        """Resolve, bind and plan ``line`` as ``flwd JOB …`` does in its own process (or
        answer the verb it is, as ``flwd :VERB …`` does).

        **Cancellation:** leaves nothing behind but a journaled refusal.
        """


class _CommandLineBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    words: list[str] = Field(min_length=1, max_length=4096)
    scripts_root: str = Field(min_length=1, max_length=4096)
    protocol: int
    env: dict[str, str] = Field(max_length=65536)
    can_prompt: bool = False
    color: bool = False
    color_stderr: bool = False


def is_command_line(data: Any) -> bool:
    """A ``POST /runs`` body in the ``words`` form."""
    return isinstance(data, dict) and "words" in data


async def run_command_line(data: Any) -> Response:
    """Answer a ``words`` body (see the module docstring): 201 with the run's stream, or
    200 with what the command line says without a run.

    Raises:
        HttpProblem: 403, not on the local socket; 400, a malformed body.

    Cancellation: a run already started is cancelled with its command line (the
    client is gone); before that, nothing is left behind but a journaled refusal.
    """
    if not is_local_peer():
        raise HttpProblem(403, "local socket only",
                          "the words form of POST /runs runs a command line of this host: "
                          "it is served on the data dir's Unix socket (serve.sock) only; "
                          "send {job_id, args} instead", code="words.local.only")
    body = validate_body(_CommandLineBody, data)
    state = current_state()
    if body.protocol != CLIENT_PROTOCOL or state.command_lines is None:
        # An SSE frame: what a client of any protocol version understands.
        return Response(b"event: cli.local\ndata: %s\n\n" % json.dumps(
            {"reason": "this server speaks another protocol"}).encode(), status=200,
            headers=dict(SSE_HEADERS))
    line = CommandLine(body.words, body.scripts_root, body.env, body.can_prompt, body.color)
    outcome = await state.command_lines.prepare(state.engine, line)
    if isinstance(outcome, Declined):
        return _answer([frame(b"l", outcome.reason.encode("utf-8", "replace"))])
    output = [frame(b"o" if stream == "stdout" else b"e",
                    text.encode("utf-8", "surrogateescape"))
              for stream, text in outcome.output]
    if isinstance(outcome, Answered):
        return _answer([*output, frame(b"x", b"%d" % outcome.code)])
    if isinstance(outcome, Replay):
        return await _replay_response(outcome, output, body.color_stderr)
    slot = take_stream_slot("sse")  # before the run: a refusal leaves nothing behind
    try:
        run = await state.engine.start_run(outcome.plan)
    except BaseException:
        slot.release()
        raise
    render = Renderer(outcome.as_json, color=body.color_stderr,
                       prefix_steps=outcome.plan.composition == "steps")
    finished = trio.Event()

    def encode(record: EventRecord) -> bytes:
        pieces = render([record])
        if record.type == RUN_FINISH:
            finished.set()
            pieces += frame(b"f", str(record.data.get("status", "failed")).encode())
        return pieces

    events = event_stream(state, run.id, 0, slot, current_principal(),
                          head=b"".join([*output, frame(b"r", run.id.encode())]),
                          encode=encode, preamble=b"", keep_alive=frame(b"k"))
    clients = state.command_line_clients
    stream = _run_stream(state.engine, run.id, events, finished, render,
                         lambda: clients.pop(run.id, None))
    peer = local_peer()
    if peer is not None:  # a cancel from anyone else goes to it, as a CLI run's to its CLI
        clients[run.id] = Client.of(peer)
        # A body never started (the client left first) never says it is done.
        weakref.finalize(stream, clients.pop, run.id, None)
    return await stream_response(stream, slot, status=201,  # type: ignore[no-any-return]
                                 headers={"Location": f"/runs/{run.id}",
                                          "Content-Type": MEDIA_TYPE})


async def _replay_response(replay: Replay, output: Sequence[bytes], color: bool) -> Response:
    """``flwd :logs``' stream (see the module docstring).

    Cancellation: nothing is left behind (the events are closed with the body).
    """
    try:
        slot = take_stream_slot("sse")
    except BaseException:
        with trio.CancelScope(shield=True):
            await replay.events.aclose()
        raise
    render = Renderer(replay.as_json, color=color)
    return await stream_response(  # type: ignore[no-any-return]
        _replay_stream(b"".join([*output, frame(b"g")]), replay, render, slot.release), slot,
        headers={"Content-Type": MEDIA_TYPE})


async def _replay_stream(head: bytes, replay: Replay, render: Renderer,
                         release: Callable[[], object]) -> AsyncGenerator[bytes, None]:
    status = replay.status
    try:
        yield head
        async for records in replay.events:
            for record in records:
                if record.type == RUN_FINISH:
                    status = str(record.data.get("status", status))
            yield render(records)
        # :logs exits 0 once printed; with --follow, as the run did.
        code = exit_status(status, render.output.canceled_by_sigterm) \
            if replay.follow else EXIT_OK
        yield frame(b"x", b"%d" % code)
    finally:
        release()
        with trio.CancelScope(shield=True):
            await replay.events.aclose()


def _answer(pieces: Sequence[bytes]) -> Response:
    return Response(b"".join(pieces), status=200, headers={
        "Content-Type": MEDIA_TYPE, "Cache-Control": "no-store"})


async def _run_stream(engine: Engine, run_id: str, events: AsyncGenerator[bytes, None],
                      finished: trio.Event, render: Renderer, forget: Callable[[], object]
                      ) -> AsyncGenerator[bytes, None]:
    """``events`` until the run's end (``finished``: its last event was framed); a client
    leaving earlier takes the run with it, and a stream ending without the run's end
    says so (on stderr, then ``x`` 1). ``forget``: the client no longer follows the run."""
    try:
        async for piece in events:
            yield piece
    except BaseException:
        forget()
        if not finished.is_set():
            with trio.CancelScope(shield=True):
                try:
                    await engine.cancel_run(run_id, reason="the flwd command that ran it "
                                            "went away", by="cli")
                except Exception:  # the engine is stopping: it cancels the run itself
                    pass
        raise
    finally:
        forget()
        with trio.CancelScope(shield=True):  # its slot and subscription go now
            await events.aclose()
    if not finished.is_set():
        cause = engine.storage_error
        text = (f"flwd: run {run_id} ended without a recorded result"
                + (f": {cause.one_line()}" if cause is not None
                   else ": the flwd server stopped (it cancels its runs)"))
        yield render.error(text) + frame(b"x", b"%d" % exit_status("failed"))
