"""Ctrl-C at any moment of ``flwd JOB`` exits 130 without a traceback (issue 12, item 4).

A person presses Ctrl-C on a terminal: the test runs the real console script on a
pseudo-terminal that is its controlling terminal and writes ``^C`` to it, so the line
discipline sends SIGINT to the foreground process group. The moments are chosen by what
the process has done, not by time: ``PYTHONPROFILEIMPORTTIME`` reports each import as it
completes, and ``^C`` goes out right after a given module has been imported — that is,
while the next ones load.
"""

from __future__ import annotations

import os
import re
import select
import signal
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import spawn_on_pty

FLWD = str(Path(sys.executable).with_name("flwd"))

#: Modules imported on the way to a run, in order; ^C lands in the imports after each.
MOMENTS = ["flwd._entry", "flwd.errors", "yaml", "pydantic", "flwd.jobs._config",
           "flwd.cli", "trio", "flwd.engine._hub", "flwd.store", "flwd.plan"]




def _read_until(master: int, pattern: re.Pattern[bytes], seen: bytearray,
                timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while not pattern.search(seen):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"{pattern.pattern!r} never showed: {bytes(seen[-2000:])!r}")
        ready, _, _ = select.select([master], [], [], left)
        if not ready:
            continue
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            return False
        if not chunk:
            return False
        seen += chunk
    return True


def _drain(master: int, seen: bytearray, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], deadline - time.monotonic())
        if not ready:
            continue
        try:
            chunk = os.read(master, 65536)
        except OSError:
            return
        if not chunk:
            return
        seen += chunk
    raise AssertionError(f"flwd did not exit after ^C: {bytes(seen[-2000:])!r}")


@pytest.mark.parametrize("after", MOMENTS)
def test_ctrl_c_while_starting_exits_130_without_traceback(
        workspace: Path, data_dir: Path, after: str) -> None:
    env = {**os.environ, "FLWD_DATA_DIR": str(data_dir), "PYTHONPROFILEIMPORTTIME": "1",
           "FLWD_GRACE": "1", "NO_COLOR": "1"}
    pid, master = spawn_on_pty([FLWD, "examples", "long"], env, workspace)
    seen = bytearray()
    try:
        # The cumulative line of a module is printed once its import has finished.
        imported = re.compile(rb"\|\s*" + re.escape(after.encode()) + rb"\r?\n")
        alive = _read_until(master, imported, seen)
        assert alive, f"flwd exited before importing {after}: {bytes(seen[-2000:])!r}"
        os.write(master, b"\x03")
        _drain(master, seen)
    finally:
        exited, status = os.waitpid(pid, os.WNOHANG)
        if not exited:  # a failed check above: never leave it running, nor wait forever
            os.killpg(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
        os.close(master)
    output = bytes(seen).decode(errors="replace")
    assert "Traceback" not in output, output[-3000:]
    assert "KeyboardInterrupt" not in output, output[-3000:]
    assert os.waitstatus_to_exitcode(status) == 130, output[-3000:]
