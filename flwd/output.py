"""A run's events as the CLI prints them: output lines raw on stdout and stderr, flwd's
status lines on stderr, or NDJSON with ``--json`` — and the exit status of a run.

One renderer for every way a run is shown: a local run, ``--server`` remote mode,
``flwd :logs``, and the thin client handing its run to a local ``flwd :serve``. That
last one imports this module before anything heavy, so it stays on the standard
library (and :mod:`flwd.events`): no trio, pydantic, yaml, httpx or cyclopts here.
"""

from __future__ import annotations

import os
import sys
from typing import BinaryIO, TextIO

from flwd.events import (
    POLICY_DECISION,
    RUN_CANCELED,
    RUN_FINISH,
    RUN_START,
    STEP_FINISH,
    STEP_LOG,
    STEP_START,
    EventRecord,
)
from flwd.exits import EXIT_FAILED, EXIT_OK, EXIT_SIGINT, EXIT_SIGTERM, EXIT_USAGE, exit_status

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_SIGINT", "EXIT_SIGTERM", "EXIT_USAGE", "RunOutput",
           "Style", "exit_status", "shows_color", "use_color"]


def use_color(stream: TextIO) -> bool:
    """Colour only on a TTY, and never when ``NO_COLOR`` is set (https://no-color.org)."""
    return stream.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


def shows_color(fd: int) -> bool:
    """:func:`use_color` for a file descriptor (the thin client's streams; a closed or
    odd one shows none). The thin client has its own copy: it imports nothing of this."""
    try:
        is_terminal = os.isatty(fd)
    except OSError:
        return False
    return is_terminal and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


class Style:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def _wrap(self, code: str, text: str) -> str:
        """``text`` in the colour ``code``, which every line opens and closes itself.

        A reset written after a newline (``ESC[31m…\\nESC[0m``) leaves the newline and
        what follows it coloured until the reset arrives: a pager or a log viewer
        showing lines one by one, a prompt printed after an interrupted write, and
        ``grep`` on the output all see a colour that never ends on that line.
        """
        if not self.enabled:
            return text
        return "\n".join(f"\x1b[{code}m{line}\x1b[0m" if line else line
                         for line in text.split("\n"))

    def bold(self, text: str) -> str:
        return self._wrap("1", text)

    def dim(self, text: str) -> str:
        return self._wrap("2", text)

    def red(self, text: str) -> str:
        return self._wrap("31", text)

    def green(self, text: str) -> str:
        return self._wrap("32", text)

    def yellow(self, text: str) -> str:
        return self._wrap("33", text)

    def status(self, status: str) -> str:
        color = {"completed": self.green, "failed": self.red, "canceled": self.yellow,
                 "interrupted": self.yellow, "running": self.bold}.get(status)
        return color(status) if color else status


class RunOutput:
    """Renders a run's events: raw output lines (human) or NDJSON (``--json``).

    ``prefix_steps``: tag output lines with their step (``[build] …``), as for
    ``composition: steps`` jobs; a ``run.start`` that names its composition sets it, so a
    replay (``:logs``) renders like the live run did. Lines go out in ``seq`` order: when
    the output switches between stdout and stderr, the other stream is flushed first, so a
    terminal showing both gets them interleaved as the job wrote them.
    """

    def __init__(self, as_json: bool, *, prefix_steps: bool = False,
                 streams: tuple[BinaryIO, BinaryIO] | None = None,
                 color: bool | None = None) -> None:
        self.as_json = as_json
        self.prefix_steps = prefix_steps
        #: This process's stdout and stderr, or (a server rendering for a thin client,
        #: ``flwd/http/_command_line.py``) writers standing for that client's.
        self.stdout: BinaryIO
        self.stderr: BinaryIO
        self.stdout, self.stderr = (
            (sys.stdout.buffer, sys.stderr.buffer) if streams is None else streams)
        self.style = Style(use_color(sys.stderr) if color is None else color)
        self.broken = False
        #: A CLI run canceled by SIGTERM (``flwd :cancel``) exits 143, not 130.
        self.canceled_by_sigterm = False
        self._last: BinaryIO | None = None
        #: A step that failed with an error (it could not start, it crashed) is shown
        #: when the next line is printed — unless that line is the run's last one with
        #: the same error, which then says it once, with the reason (a run's last line
        #: always carries its reason).
        self._held: tuple[str, str] | None = None
    def write(self, records: list[EventRecord]) -> None:
        for record in records:
            if record.type == RUN_START and "composition" in record.data:
                self.prefix_steps = record.data["composition"] == "steps"
            elif record.type == RUN_CANCELED:
                self.canceled_by_sigterm = (
                    record.data.get("by") == "cli"
                    and str(record.data.get("reason", "")).startswith("interrupted by SIGTERM"))
        if self.broken:
            return
        try:
            if self.as_json:
                self.stdout.write(b"".join(record.ndjson() for record in records))
                self.stdout.flush()
                return
            for record in records:
                if record.type == STEP_LOG and record.lines is not None:
                    stream = self.stdout if record.data.get("channel") == "stdout" else self.stderr
                    self._release()
                    self._switch(stream)
                    stream.write(record.text(step_prefix=self.prefix_steps))
                elif record.type in (POLICY_DECISION, RUN_START, STEP_START, STEP_FINISH,
                                     RUN_CANCELED, RUN_FINISH):
                    self._status(record)
            self.stdout.flush()
            self.stderr.flush()
        except BrokenPipeError:
            self.broken = True
            # Point the fds at /dev/null so the interpreter's final flush is quiet.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)

    def _switch(self, stream: BinaryIO) -> None:
        if self._last is not None and self._last is not stream:
            self._last.flush()
        self._last = stream

    def _release(self, unless: object = None) -> None:
        held, self._held = self._held, None
        if held is not None and held[0] != unless:
            self._switch(self.stderr)
            self.stderr.write((held[1] + "\n").encode())

    def error(self, text: str) -> None:
        """One line on stderr (whatever the output mode)."""
        try:
            self._release()
            self.stderr.write((self.style.red(text) + "\n").encode())
            self.stderr.flush()
        except BrokenPipeError:
            pass

    def _status(self, record: EventRecord) -> None:
        data = record.data
        style = self.style
        text = None
        step = data.get("step")
        if record.type == POLICY_DECISION:
            # What policy allowed but wants seen (an unsigned image in permissive, an
            # override in disabled) is journaled and shown; plain "info" decisions are not.
            if data.get("level") == "warning":
                text = style.yellow(f"flwd: warning: policy: {data.get('reason')}")
        elif record.type == RUN_START and data.get("warnings"):
            # The job's own warnings (nothing to run), live and replayed by :logs.
            text = "\n".join(style.yellow(f"flwd: warning: {warning.get('message')}")
                              for warning in data["warnings"] if isinstance(warning, dict))
        elif record.type == STEP_START:
            attempt, most = data.get("attempt", 1), data.get("max_attempts", 1)
            if isinstance(attempt, int) and attempt > 1:
                text = style.yellow(f"flwd: step {step}: attempt {attempt}/{most}")
        elif record.type == STEP_FINISH and data.get("status") == "failed":
            if data.get("error"):
                self._release()
                self._held = (str(data["error"]), style.red(f"flwd: step {step} failed: "
                                                            f"{data['error']}"))
                return
            text = style.red(f"flwd: step {step} failed with exit status {data.get('exit_code')}")
        elif record.type == STEP_FINISH and data.get("status") == "skipped":
            text = style.yellow(f"flwd: step {step} skipped: {data.get('reason', 'not run')}")
        elif record.type == RUN_CANCELED:
            text = style.yellow(f"flwd: canceling run {record.run_id}: {data.get('reason')}")
        elif record.type == RUN_FINISH:
            status = data.get("status", "?")
            self._release(unless=str(data.get("error")))
            if status != "completed" or style.enabled:
                detail = f": {data['error']}" if data.get("error") else ""
                text = f"flwd: run {record.run_id} {style.status(status)}{detail}"
        if text:
            self._release()
            self._switch(self.stderr)
            self.stderr.write((text + "\n").encode())
