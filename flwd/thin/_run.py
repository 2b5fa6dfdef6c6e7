"""``flwd JOB …`` handed to a local ``flwd :serve``: one request, the run's events rendered
here by the CLI's own renderer (stdlib only).

The server resolves, binds and plans the words as this process would have (see
``flwd/http/_command_line.py`` for the stream's frames), and the events come back to
:class:`flwd.output.RunOutput` — the renderer of a local run, writing to this
process's own stdout and stderr with this process's terminal's colours — so the bytes
and the exit status are a local run's.

Ctrl-C and SIGTERM do what they do to a local run: the first asks the server to cancel
the run (journaled ``run.canceled``, with the local run's reason), the output goes on
until ``run.finish`` and the exit status is 130 (143 for SIGTERM); a second one kills it
at once. A closed stdout (a broken pipe) cancels it too. Signals are caught by Python
handlers that only note them; a wakeup fd makes the blocking wait on the socket return,
and the cancels are sent from the main flow, each on its own short connection.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from types import FrameType
from typing import Any

import flwd
from flwd.daemon import CLIENT_PROTOCOL
from flwd.events import RUN_FINISH, EventRecord
from flwd.output import EXIT_FAILED, EXIT_OK, EXIT_SIGINT, RunOutput, exit_status, use_color
from flwd.sse import SSEDecoder, SSEFrame

from ._http import ProtocolError, ResponseReader, connect, request, request_bytes
from ._wire import WireError, exact_line, record

#: Seconds a cancel request may take (the server answers at once).
CANCEL_TIMEOUT = 10.0


class _Fallback(Exception):
    """The command line is to run in this process after all (nothing was done)."""


class _Noted:
    """Signals noted by their handlers, and the pipe the kernel writes to on each."""

    def __init__(self, wakeup: int) -> None:
        self.wakeup = wakeup
        self.signals: list[int] = []


@contextmanager
def _noting_signals() -> Iterator[_Noted]:
    """SIGINT and SIGTERM noted (and waking :func:`_wait` up) instead of their usual
    effect, until the block ends."""
    read_end, write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    noted = _Noted(read_end)

    def note(signum: int, frame: FrameType | None) -> None:
        noted.signals.append(signum)

    previous = {signum: signal.signal(signum, note) for signum in (signal.SIGINT,
                                                                   signal.SIGTERM)}
    old_wakeup = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    try:
        yield noted
    finally:
        signal.set_wakeup_fd(old_wakeup)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        os.close(read_end)
        os.close(write_end)


class ThinRun:
    """One command line sent to the server at ``path``, and its answer rendered."""

    def __init__(self, path: Path, words: list[str], scripts_root: Path, *,
                 verb: bool = False) -> None:
        self.path = path
        self.words = words
        self.scripts_root = scripts_root
        #: A verb's command line (``:runs``…), not a job's: a Ctrl-C ends it as
        #: cyclopts ends a verb, with 130 and no word.
        self.verb = verb
        self.run_id: str | None = None
        self.output: RunOutput | None = None
        #: The signals taken as the local run takes them (SIGPIPE: the output closed).
        self.caught: list[int] = []
        self.status = "failed"
        self.finished = False
        #: Something was written: from here on, the command cannot run here instead.
        self.committed = False
        self.exact: dict[int, bytes] = {}
        self.exit_code: int | None = None
        #: ``flwd :logs``: a run's events replayed (nothing here is cancelled), and
        #: whether it follows them to the run's end (then exits with its status).
        self.replaying = False
        self.follow = False
        #: A ``cli.output`` met a closed pipe (``flwd :jobs | head``).
        self.pipe_broken = False

    def run(self) -> int | None:
        """The command's exit status; None: it runs in this process instead (nothing
        was done on the server).

        Raises:
            KeyboardInterrupt: Ctrl-C before the server started a run.
        """
        try:
            sock = connect(self.path)
        except OSError:
            return None  # a stale socket, a server stopping: run here
        try:
            with _noting_signals() as noted:
                return self._exchange(sock, noted)
        except _Fallback:
            if self.caught:  # pressed while the server looked at it: stop, as planned
                self._die(self.caught[0])
            return None
        finally:
            sock.close()

    def _exchange(self, sock: socket.socket, noted: _Noted) -> int | None:
        body = {"words": self.words, "scripts_root": str(self.scripts_root),
                "protocol": CLIENT_PROTOCOL, "env": _inherited_environment(),
                "can_prompt": _is_terminal(sys.stdin) and _is_terminal(sys.stderr),
                "color": _shows_color(sys.stdout)}
        try:
            sock.sendall(request_bytes("POST", "/runs", body, {"Accept": "text/event-stream"}))
        except OSError:
            raise _Fallback from None
        reader, decoder = ResponseReader(), SSEDecoder()
        seen = 0
        while self.exit_code is None:
            readable = _wait(sock, noted.wakeup)
            while seen < len(noted.signals):
                self._on_signal(noted.signals[seen])
                seen += 1
            if not readable:
                continue
            try:
                data = sock.recv(65536)
            except OSError:
                data = b""
            try:
                if not data:
                    reader.end_of_stream()
                    break
                piece = reader.feed(data)
            except ProtocolError:
                break
            if reader.head_done and not self.committed and not self._is_stream(reader):
                raise _Fallback
            self._frames(decoder.feed(piece))
            if reader.done:
                break
        return self._result()

    @staticmethod
    def _is_stream(reader: ResponseReader) -> bool:
        media = reader.headers.get("content-type", "").split(";")[0].strip()
        return reader.status in (200, 201) and media == "text/event-stream"

    # -- frames ----------------------------------------------------------------
    def _frames(self, frames: list[SSEFrame]) -> None:
        batch: list[EventRecord] = []
        for frame in frames:
            try:
                document = json.loads(frame.data)
            except ValueError:
                continue
            if not frame.event.startswith("cli."):
                try:
                    batch.append(record(document, self.exact))
                except WireError:
                    pass
                continue
            self._render(batch)
            batch = []
            self._cli_frame(frame.event, document)
        self._render(batch)

    def _cli_frame(self, event: str, document: Any) -> None:
        if not isinstance(document, dict):
            return
        if event == "cli.local" and not self.committed and self.run_id is None:
            raise _Fallback
        if event == "cli.output":
            self.committed = True
            stream = sys.stdout if document.get("stream") == "stdout" else sys.stderr
            try:
                stream.write(str(document.get("text", "")))
                stream.flush()
            except BrokenPipeError:
                self.pipe_broken = True
            except OSError:
                pass
        elif event == "cli.exit":
            code = document.get("code")
            # What the CLI prints before it exits, cut short by a closed pipe: it exits 1.
            self.exit_code = EXIT_FAILED if self.pipe_broken else (
                code if type(code) is int else 1)
        elif event == "cli.run" and isinstance(document.get("run_id"), str):
            self.committed = True
            self.run_id = document["run_id"]
            self.output = RunOutput(bool(document.get("json")),
                                    prefix_steps=bool(document.get("prefix_steps")))
            for index, signum in enumerate(self.caught):  # pressed while it was planned
                self._cancel(signum, force=index > 0)
        elif event == "cli.logs" and isinstance(document.get("run_id"), str):
            self.committed = self.replaying = True
            self.follow = bool(document.get("follow"))
            self.status = str(document.get("status", "failed"))
            self.output = RunOutput(bool(document.get("json")))
            if self.caught:  # pressed while the server looked for the run
                self._die(self.caught[0])
        elif event == "cli.done" and self.replaying and self.output is not None:
            # :logs exits 0 once printed; with --follow, as the run did.
            self.exit_code = (exit_status(self.status, self.output.canceled_by_sigterm)
                              if self.follow else EXIT_OK)
        elif event == "cli.bytes":
            with suppress(WireError):
                seq, line = exact_line(document)
                self.exact[seq] = line
        elif event == "cli.error" and self.output is not None:
            self.output.error(str(document.get("text", "")))
            self.exit_code = exit_status("failed")

    def _render(self, records: list[EventRecord]) -> None:
        if not records or self.output is None:
            return
        output = self.output
        output.write(records)
        for seen in records:
            self.exact.pop(seen.seq, None)
        if self.replaying:  # :logs: the run is not this command's to end
            if records[-1].type == RUN_FINISH:
                self.status = str(records[-1].data.get("status", self.status))
            return
        if output.broken and not self.caught:
            self.caught.append(signal.SIGPIPE)
            self._cancel(signal.SIGPIPE)
        if records[-1].type == RUN_FINISH:
            self.status = str(records[-1].data.get("status", "failed"))
            self.finished = True
            self.exit_code = exit_status(self.status, canceled_by_sigterm=bool(
                self.caught) and self.caught[0] == signal.SIGTERM)

    # -- signals -----------------------------------------------------------------
    def _on_signal(self, signum: int) -> None:
        self.caught.append(signum)
        if self.replaying:
            self._die(signum)  # as a local :logs: it stops printing, nothing else
        if self.run_id is not None:
            self._cancel(signum, force=len(self.caught) > 1)
        elif len(self.caught) > 1:
            self._die(self.caught[0])  # a second press while it is planned: stop waiting
        # else the run, if the server starts one, is cancelled as it starts

    def _cancel(self, signum: int, *, force: bool = False) -> None:
        """Ask the server to cancel the run, with the reason a local run gives."""
        if signum == signal.SIGPIPE:
            reason = "output closed (broken pipe)"
        else:
            name = signal.Signals(signum).name
            reason = (f"killed by a second {name}" if force else f"interrupted by {name}"
                      + (" (Ctrl-C)" if signum == signal.SIGINT else ""))
        try:
            status, _ = request(self.path, "POST", f"/runs/{self.run_id}:cancel",
                                {"reason": reason, "force": force}, timeout=CANCEL_TIMEOUT)
            if status >= 400:
                raise ProtocolError(f"HTTP {status}")
        except (OSError, ProtocolError) as exc:
            with suppress(OSError):
                sys.stderr.write(f"flwd: warning: cannot cancel run {self.run_id}: {exc}\n")

    def _die(self, signum: int) -> None:
        """End as the command line interrupted in the CLI's process ends (see
        :func:`_die_of`); a verb's Ctrl-C is 130 without a word (cyclopts' way)."""
        if self.verb and signum == signal.SIGINT:
            raise SystemExit(EXIT_SIGINT)
        _die_of(signum)

    # -- the end -----------------------------------------------------------------
    def _result(self) -> int | None:
        if self.exit_code is not None:
            if self.run_id is None and self.caught:
                self._die(self.caught[0])  # interrupted while it was being planned
            return self.exit_code
        if self.run_id is None:
            if self.caught:
                self._die(self.caught[0])
            if not self.committed:
                raise _Fallback  # the server went away before it did anything
            if self.replaying and self.output is not None:
                self.output.error("flwd: error: the connection to the flwd server was lost")
            return exit_status("failed")
        assert self.output is not None
        self.output.error(f"flwd: run {self.run_id} ended without a recorded result: the "
                          "connection to the flwd server was lost")
        return exit_status("failed")


def _wait(sock: socket.socket, wakeup: int) -> bool:
    """Block until ``sock`` is readable (True) or a signal arrived (False, the wakeup
    pipe drained)."""
    fd = sock.fileno()
    readable, _, _ = select.select([fd, wakeup], [], [])
    if wakeup in readable:
        with suppress(BlockingIOError):
            while os.read(wakeup, 512):
                pass
    return fd in readable


def _die_of(signum: int) -> None:
    """End as a local run interrupted before it started ends: Ctrl-C is ``flwd:
    interrupted`` and 130 (flwd's entry point says it), SIGTERM the signal's death."""
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    raise SystemExit(128 + signum)  # not reached: the signal is not blocked


def _inherited_environment() -> dict[str, str]:
    """The environment this process was started with: what a local run's steps inherit
    (as ``flwd.execute.inherited_environment``: not what flwd set for itself)."""
    own = flwd.OWN_ENVIRONMENT
    return {name: value for name, value in os.environ.items() if own.get(name) != value}


def _shows_color(stream: Any) -> bool:
    """The CLI's tables use colours on ``stream`` (:func:`flwd.output.use_color`)."""
    try:
        return use_color(stream)
    except (OSError, ValueError, AttributeError):
        return False


def _is_terminal(stream: Any) -> bool:
    try:
        return stream is not None and bool(stream.isatty())
    except (OSError, ValueError):
        return False
