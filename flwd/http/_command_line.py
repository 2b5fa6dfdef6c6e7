"""``POST /runs``' ``words`` form: a ``flwd JOB …`` command line, run by this server for
the thin client on the local socket (one request per run).

The client sends its words and what a command line depends on besides them (its
environment, whether it can prompt, the scripts root it found); the server resolves,
binds and plans them exactly as the CLI does locally (the :class:`CommandLines` the CLI
hands ``:serve``), starts the run and answers with an event stream:

- ``cli.local`` ``{reason}``: this command line is not for the server (it reads a
  secret from a file or the terminal, its environment asks for another policy, the
  server serves another workspace…): the client runs it itself. Nothing was done.
- ``cli.output`` ``{stream, text}``: what the command line prints before its run (a
  warning, a job's ``--help``, an error); ``cli.exit`` ``{code}``: it is done, no run.
- ``cli.run`` ``{run_id, json, prefix_steps}``: the run started (201, ``Location``);
  its events follow, framed as ``GET /runs/<id>/events`` frames them, each output line
  that is not UTF-8 preceded by ``cli.bytes`` ``{seq, base64}``, its exact bytes.
- ``cli.error`` ``{text}``: the stream ended without the run's end (the server is
  stopping, the journal failed).

A run started this way belongs to its command line as a local run to its CLI: the
client leaving before the run ends cancels it.

The words may also be one of the CLI's verbs ``:jobs``, ``:plan``, ``:runs``, ``:logs``,
``:cancel`` (in the plain forms :func:`flwd.thin.parse_verb` takes; ``color``: the
client's stdout shows colours): they are answered as a job's ``--help`` is, with
``cli.output`` and ``cli.exit``, but ``:logs`` (200): ``cli.logs`` ``{run_id, status,
json, follow}`` (the run found, its status then), the run's events framed as above
(``cli.bytes`` included) as the journal gives them — up to its end with ``follow``, else
up to what is journaled — and ``cli.done`` ``{}`` once they are all sent. Nothing of a
run follows its client there: leaving early only ends the stream.
"""

from __future__ import annotations

import base64
import json
import weakref
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import trio
from pydantic import BaseModel, ConfigDict, Field
from quart import Response

from flwd.daemon import CLIENT_PROTOCOL
from flwd.engine import Engine
from flwd.events import RUN_FINISH, STEP_LOG, EventRecord
from flwd.plan import Plan

from ._local_socket import Client, is_local_peer, local_peer
from ._problems import HttpProblem
from ._request import current_principal, validate_body
from ._sse import frames
from ._state import current_state
from ._streaming import SSE_HEADERS, event_stream, stream_response, take_stream_slot

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
        return _answer([_frame("cli.local", {"reason": "this server speaks another protocol"})])
    line = CommandLine(body.words, body.scripts_root, body.env, body.can_prompt, body.color)
    outcome = await state.command_lines.prepare(state.engine, line)
    if isinstance(outcome, Declined):
        return _answer([_frame("cli.local", {"reason": outcome.reason})])
    output = [_frame("cli.output", {"stream": stream, "text": text})
              for stream, text in outcome.output]
    if isinstance(outcome, Answered):
        return _answer([*output, _frame("cli.exit", {"code": outcome.code})])
    if isinstance(outcome, Replay):
        return await _replay_response(outcome, output)
    slot = take_stream_slot("sse")  # before the run: a refusal leaves nothing behind
    try:
        run = await state.engine.start_run(outcome.plan)
    except BaseException:
        slot.release()
        raise
    started = _frame("cli.run", {"run_id": run.id, "json": outcome.as_json,
                                 "prefix_steps": outcome.plan.composition == "steps"})
    finished = trio.Event()

    def encode(record: EventRecord) -> bytes:
        if record.type == RUN_FINISH:
            finished.set()
        return _exact_frames(record)

    events = event_stream(state, run.id, 0, slot, current_principal(),
                          head=b"".join([*output, started]), encode=encode)
    clients = state.command_line_clients
    stream = _run_stream(state.engine, run.id, events, finished,
                         lambda: clients.pop(run.id, None))
    peer = local_peer()
    if peer is not None:  # a cancel from anyone else goes to it, as a CLI run's to its CLI
        clients[run.id] = Client.of(peer)
        # A body never started (the client left first) never says it is done.
        weakref.finalize(stream, clients.pop, run.id, None)
    return await stream_response(stream, slot, status=201,  # type: ignore[no-any-return]
                                 headers={"Location": f"/runs/{run.id}"})


async def _replay_response(replay: Replay, output: Sequence[bytes]) -> Response:
    """``flwd :logs``' stream (see the module docstring).

    Cancellation: nothing is left behind (the events are closed with the body).
    """
    try:
        slot = take_stream_slot("sse")
    except BaseException:
        with trio.CancelScope(shield=True):
            await replay.events.aclose()
        raise
    head = b"".join([*output, _frame("cli.logs", {
        "run_id": replay.run_id, "status": replay.status, "json": replay.as_json,
        "follow": replay.follow})])
    return await stream_response(  # type: ignore[no-any-return]
        _replay_stream(head, replay.events, slot.release), slot)


async def _replay_stream(head: bytes, events: AsyncGenerator[list[EventRecord], None],
                         release: Callable[[], object]) -> AsyncGenerator[bytes, None]:
    try:
        yield head
        async for records in events:
            yield b"".join(_exact_frames(record) for record in records)
        yield _frame("cli.done", {})
    finally:
        release()
        with trio.CancelScope(shield=True):
            await events.aclose()


def _answer(pieces: Sequence[bytes]) -> Response:
    return Response(b"".join(pieces), status=200, headers=dict(SSE_HEADERS))


def _frame(event: str, data: Mapping[str, Any]) -> bytes:
    return b"event: %s\ndata: %s\n\n" % (event.encode(), json.dumps(data).encode())


def _exact_frames(record: EventRecord) -> bytes:
    """The record's frames; before each output line that is not UTF-8 (which its frame
    can only show with U+FFFD), a ``cli.bytes`` frame with the line's bytes."""
    if record.type != STEP_LOG or record.lines is None:
        return frames(record)
    try:
        record.lines.decode("utf-8")
        return frames(record)
    except UnicodeDecodeError:
        pass
    pieces = []
    for offset, line in enumerate(record.line_list()):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            pieces.append(_frame("cli.bytes", {"seq": record.seq + offset,
                                               "base64": base64.b64encode(line).decode()}))
    return b"".join(pieces) + frames(record)


async def _run_stream(engine: Engine, run_id: str, events: AsyncGenerator[bytes, None],
                      finished: trio.Event, forget: Callable[[], object]
                      ) -> AsyncGenerator[bytes, None]:
    """``events`` until the run's end (``finished``: its last event was framed); a client
    leaving earlier takes the run with it, and a stream ending without the run's end
    says so (``cli.error``). ``forget``: the client no longer follows the run."""
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
        yield _frame("cli.error", {"text": text})
