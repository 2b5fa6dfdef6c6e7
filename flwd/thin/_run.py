"""``flwd JOB …`` (and the verbs it takes) handed to a local ``flwd :serve``: one request,
and what the server renders for it copied to this process's stdout and stderr.

The server resolves, binds and plans the words as this process would have (see
``flwd/http/_command_line.py``), starts the run and renders its events with the CLI's
own renderer and this terminal's colours (:mod:`flwd.thin._frames`), so the bytes and
the exit status are a local run's while this process imports next to nothing: the C
modules under ``socket``, ``signal``, ``select`` and ``json``, and none of the modules
around them (each costs milliseconds of a start-up that is the whole point).

Ctrl-C and SIGTERM do what they do to a local run: the first asks the server to cancel
the run (journaled ``run.canceled``, with the local run's reason), the output goes on
until the run's end and the exit status is 130 (143 for SIGTERM); a second one kills it
at once. A closed stdout (a broken pipe) cancels it too. Signals are caught by Python
handlers that only note them; a wakeup fd makes the blocking wait on the socket return,
and the cancels are sent from the main flow, each on its own short connection.
"""

from __future__ import annotations

# The C modules under ``signal`` and ``socket`` (which import ``enum``: see _http).
import _signal
import _socket
import os
import select
import sys

import flwd
from flwd.exits import EXIT_FAILED, EXIT_SIGINT, exit_status

from ._frames import (
    CLIENT_PROTOCOL,
    EXIT,
    FINISHED,
    LOCAL,
    LOGS,
    MEDIA_TYPE,
    RUN,
    STDERR,
    STDOUT,
    FrameError,
    FrameReader,
)
from ._http import ProtocolError, ResponseReader, connect, request, request_bytes

TYPE_CHECKING = False  # not typing's: the thin client does not import typing
if TYPE_CHECKING:
    from types import FrameType

#: Seconds a cancel request may take (the server answers at once).
CANCEL_TIMEOUT = 10.0
SIGINT, SIGTERM, SIGPIPE = _signal.SIGINT, _signal.SIGTERM, _signal.SIGPIPE
_NAMES = {SIGINT: "SIGINT", SIGTERM: "SIGTERM"}


class _Fallback(Exception):
    """The command line is to run in this process after all (nothing was done)."""


class _Noted:
    """SIGINT and SIGTERM noted (and waking the wait on the socket up) instead of their
    usual effect, until :meth:`close`."""

    def __init__(self) -> None:
        self.signals: list[int] = []
        self.wakeup, self._write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._previous = {signum: _signal.signal(signum, self._note)
                          for signum in (SIGINT, SIGTERM)}
        self._old_wakeup = _signal.set_wakeup_fd(self._write_end, warn_on_full_buffer=False)

    def _note(self, signum: int, frame: FrameType | None) -> None:
        self.signals.append(signum)

    def close(self) -> None:
        _signal.set_wakeup_fd(self._old_wakeup)
        for signum, handler in self._previous.items():
            _signal.signal(signum, handler)
        os.close(self.wakeup)
        os.close(self._write_end)


class ThinRun:
    """One command line sent to the server at ``path``, and its answer copied out."""

    def __init__(self, path: str, words: list[str], scripts_root: str, *,
                 verb: bool = False) -> None:
        self.path = path
        self.words = words
        self.scripts_root = scripts_root
        #: A verb's command line (``:runs``…), not a job's: a Ctrl-C ends it as
        #: cyclopts ends a verb, with 130 and no word.
        self.verb = verb
        self.run_id: str | None = None
        #: The signals taken as the local run takes them (SIGPIPE: the output closed).
        self.caught: list[int] = []
        #: Something was written: from here on, the command cannot run here instead.
        self.committed = False
        self.exit_code: int | None = None
        #: ``flwd :logs``: a run's events replayed (nothing here is cancelled).
        self.replaying = False
        #: A write met a closed pipe (``flwd … | head``): nothing more is written.
        self.pipe_broken = False
        self.stderr_color = _shows_color(2)

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
            noted = _Noted()
            try:
                return self._exchange(sock, noted)
            finally:
                noted.close()
        except _Fallback:
            if self.caught:  # pressed while the server looked at it: stop, as planned
                self._die(self.caught[0])
            return None
        finally:
            sock.close()

    def _exchange(self, sock: _socket.socket, noted: _Noted) -> int | None:
        body = {"words": self.words, "scripts_root": self.scripts_root,
                "protocol": CLIENT_PROTOCOL, "env": _inherited_environment(),
                "can_prompt": _is_terminal(0) and _is_terminal(2),
                "color": _shows_color(1), "color_stderr": self.stderr_color}
        try:
            sock.sendall(request_bytes("POST", "/runs", body, {"Accept": MEDIA_TYPE}))
        except OSError:
            raise _Fallback from None
        reader, frames = ResponseReader(), FrameReader()
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
            if reader.head_done and not self.committed and not self._is_ours(reader):
                raise _Fallback
            try:
                for kind, payload in frames.feed(piece):
                    if self._frame(kind, payload):
                        break
            except FrameError:
                break
            if reader.done:
                break
        return self._result()

    @staticmethod
    def _is_ours(reader: ResponseReader) -> bool:
        media = reader.headers.get("content-type", "").split(";")[0].strip()
        return reader.status in (200, 201) and media == MEDIA_TYPE

    # -- frames ----------------------------------------------------------------
    def _frame(self, kind: bytes, payload: bytes) -> bool:
        """Act on one frame; whether the command is done (its exit status known)."""
        if kind in (STDOUT, STDERR):
            self.committed = True
            self._write(1 if kind == STDOUT else 2, payload)
        elif kind == LOCAL:
            if not self.committed and self.run_id is None:
                raise _Fallback
        elif kind == RUN:
            self.committed = True
            self.run_id = payload.decode("ascii", "replace")
            for index, signum in enumerate(self.caught):  # pressed while it was planned
                self._cancel(signum, force=index > 0)
        elif kind == LOGS:
            self.committed = self.replaying = True
            if self.caught:  # pressed while the server looked for the run
                self._die(self.caught[0])
        elif kind == FINISHED:
            self.exit_code = exit_status(payload.decode("ascii", "replace"), bool(
                self.caught) and self.caught[0] == SIGTERM)
        elif kind == EXIT:
            try:
                code = int(payload)
            except ValueError:
                code = EXIT_FAILED
            # What the CLI prints before it exits, cut short by a closed pipe: it exits 1.
            broken = self.pipe_broken and self.run_id is None and not self.replaying
            self.exit_code = EXIT_FAILED if broken else code
        return self.exit_code is not None

    def _write(self, fd: int, data: bytes) -> None:
        if self.pipe_broken:
            return
        view = memoryview(data)
        try:
            while view:
                try:
                    view = view[os.write(fd, view):]
                except BlockingIOError:
                    # A stdout another process made non-blocking: wait until it takes
                    # more, as a blocking one would have.
                    select.select([], [fd], [])
        except BrokenPipeError:
            self.pipe_broken = True
            # As the renderer of a local run: the rest goes nowhere, and so does the
            # interpreter's last flush.
            _to_devnull(fd)
            if self.run_id is not None and not self.replaying and not self.caught:
                self.caught.append(SIGPIPE)
                self._cancel(SIGPIPE)
        except OSError:
            self.pipe_broken = True  # EIO, ENOSPC…: nothing more can be written there

    def _error(self, text: str) -> None:
        """One line on stderr, red on a terminal that shows colours (as RunOutput.error)."""
        if self.stderr_color:
            text = f"\x1b[31m{text}\x1b[0m"
        self._write(2, (text + "\n").encode())

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
        if signum == SIGPIPE:
            reason = "output closed (broken pipe)"
        else:
            name = _NAMES.get(signum, f"signal {signum}")
            reason = (f"killed by a second {name}" if force else f"interrupted by {name}"
                      + (" (Ctrl-C)" if signum == SIGINT else ""))
        try:
            status, _ = request(self.path, "POST", f"/runs/{self.run_id}:cancel",
                                {"reason": reason, "force": force}, timeout=CANCEL_TIMEOUT)
            if status >= 400:
                raise ProtocolError(f"HTTP {status}")
        except (OSError, ProtocolError) as exc:
            try:
                sys.stderr.write(f"flwd: warning: cannot cancel run {self.run_id}: {exc}\n")
            except OSError:
                pass

    def _die(self, signum: int) -> None:
        """End as the command line interrupted in the CLI's process ends (see
        :func:`_die_of`); a verb's Ctrl-C is 130 without a word (cyclopts' way)."""
        if self.verb and signum == SIGINT:
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
            if self.replaying:
                self._error("flwd: error: the connection to the flwd server was lost")
            return exit_status("failed")
        self._error(f"flwd: run {self.run_id} ended without a recorded result: the "
                    "connection to the flwd server was lost")
        return exit_status("failed")


def _wait(sock: _socket.socket, wakeup: int) -> bool:
    """Block until ``sock`` is readable (True) or a signal arrived (False, the wakeup
    pipe drained)."""
    fd = sock.fileno()
    readable, _, _ = select.select([fd, wakeup], [], [])
    if wakeup in readable:
        try:
            while os.read(wakeup, 512):
                pass
        except BlockingIOError:
            pass
    return fd in readable


def _die_of(signum: int) -> None:
    """End as a local run interrupted before it started ends: Ctrl-C is ``flwd:
    interrupted`` and 130 (flwd's entry point says it), SIGTERM the signal's death."""
    if signum == SIGINT:
        raise KeyboardInterrupt
    _signal.signal(signum, _signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    raise SystemExit(128 + signum)  # not reached: the signal is not blocked


def _to_devnull(fd: int) -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    try:
        os.dup2(devnull, fd)
    except OSError:
        pass
    finally:
        os.close(devnull)


def _inherited_environment() -> dict[str, str]:
    """The environment this process was started with: what a local run's steps inherit
    (as ``flwd.execute.inherited_environment``: not what flwd set for itself)."""
    own = flwd.OWN_ENVIRONMENT
    return {name: value for name, value in os.environ.items() if own.get(name) != value}


def _shows_color(fd: int) -> bool:
    """``flwd.output.shows_color``: colours on ``fd`` (a terminal, no NO_COLOR, TERM not
    dumb)."""
    return _is_terminal(fd) and not os.environ.get("NO_COLOR") and \
        os.environ.get("TERM") != "dumb"


def _is_terminal(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


__all__ = ["ThinRun"]
