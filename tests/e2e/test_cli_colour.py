"""Colour on a terminal: every coloured line closes its colour before its newline, whatever
the coloured text holds (issue 12, item 16). Run through the real CLI on a pseudo-terminal."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import FLWD, flwd_env, write_job

_SGR = re.compile(rb"\x1b\[([0-9;]*)m")


def on_a_terminal(args: list[str], cwd: Path, data_dir: Path) -> tuple[int, bytes]:
    """``flwd ARGS`` with a pty as stdin, stdout and stderr; its status and all it wrote."""
    env = flwd_env(data_dir, TERM="xterm")
    env.pop("NO_COLOR")
    master, slave = pty.openpty()
    try:
        process = subprocess.Popen([*FLWD, *args], stdin=slave, stdout=slave, stderr=slave,
                                   cwd=cwd, env=env, start_new_session=True)
    finally:
        os.close(slave)
    output = b""
    deadline = time.monotonic() + 60
    try:
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([master], [], [], left)
            if not ready:
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every writer has gone
                chunk = b""
            if not chunk:
                break
            output += chunk
        else:
            raise AssertionError(f"flwd {args} did not finish; got {output!r}")
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
    return process.wait(timeout=30), output


def lines_left_coloured(output: bytes) -> list[bytes]:
    """The lines at whose end a colour is still open (its reset comes after the newline)."""
    bad = []
    for line in output.split(b"\n"):
        coloured = False
        for match in _SGR.finditer(line):
            coloured = match[1] not in (b"", b"0", b"39")
        if coloured:
            bad.append(line)
    return bad


@pytest.fixture
def colour_ws(workspace: Path) -> Path:
    # A file name may hold a newline: the step id, and so the coloured "step … failed"
    # line, then spans two terminal lines.
    write_job(workspace, "odd", "interpreter: bash\n", {"100_two\nlines.sh": "exit 4\n"})
    return workspace


@pytest.mark.parametrize("args", [["odd"], ["examples", "fail"], [":runs"],
                                  [":plan", "demo", "--name", "x"]])
def test_every_coloured_line_resets_before_its_newline(args: list[str], colour_ws: Path,
                                                       data_dir: Path) -> None:
    if args == [":runs"]:
        on_a_terminal(["odd"], colour_ws, data_dir)  # a failed run (red) for :runs to list
    status, output = on_a_terminal(args, colour_ws, data_dir)
    assert status in (0, 1), output
    assert b"\x1b[" in output, "no colour on a terminal"
    assert lines_left_coloured(output) == []
    if args == ["odd"]:
        assert b"\x1b[31mflwd: step 100_two\x1b[0m\r\n\x1b[31mlines.sh failed with exit " \
               b"status 4\x1b[0m\r\n" in output
