"""The command sink: run ``argv`` (no shell) with the notification as JSON on its stdin.

It starts in the workspace, in a session of its own (a timeout kills its whole group),
with a small environment: ``PATH``, ``HOME``, ``LANG``/``LC_ALL``/``TZ`` when set, and
``FLWD_NOTIFY_EVENT``, ``FLWD_NOTIFY_DELIVERY``, ``FLWD_RUN_ID``, ``FLWD_JOB_ID``. The
flwd process's other variables (its secrets among them) are not passed on. Its output
(stdout and stderr together) is read and kept only up to :data:`MAX_OUTPUT` bytes: the
last of them are what a failed attempt reports.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path

import trio

from flwd.jobs import CommandSink

from ._attempt import Attempt, bounded
from ._payload import Notification

#: Bytes of a command's output kept (the rest is read and dropped).
MAX_OUTPUT = 4096
#: Variables of the flwd process a command gets (nothing that could hold a secret).
PASSED_ON = ("PATH", "HOME", "LANG", "LC_ALL", "TZ")


def command_environment(note: Notification, environ: Mapping[str, str]) -> dict[str, str]:
    env = {name: environ[name] for name in PASSED_ON if name in environ}
    env.setdefault("PATH", os.defpath)
    env.update({"FLWD_NOTIFY_EVENT": note.event, "FLWD_NOTIFY_DELIVERY": note.delivery,
                "FLWD_RUN_ID": note.run_id, "FLWD_JOB_ID": note.job_id})
    return env


def _kill_group(process: trio.Process) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


async def run_command(sink: CommandSink, note: Notification, *, workspace: Path,
                      environ: Mapping[str, str]) -> Attempt:
    """Run the command once; exit status 0 is delivered.

    Cancellation: the command's process group is killed and reaped before this returns.
    """
    try:
        process = await trio.lowlevel.open_process(
            sink.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, cwd=workspace, env=command_environment(note, environ),
            start_new_session=True)
    except OSError as exc:
        return Attempt(False, error=bounded(f"cannot run {sink.argv[0]}: "
                                            f"{exc.strerror or exc}"))
    output = bytearray()

    async def feed() -> None:
        assert process.stdin is not None
        try:
            await process.stdin.send_all(note.body)
            await process.stdin.aclose()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # it did not read its stdin: its choice

    async def drain() -> None:
        assert process.stdout is not None
        while chunk := await process.stdout.receive_some(65536):
            output.extend(chunk)
            del output[:-MAX_OUTPUT]

    scope = trio.move_on_after(sink.timeout)
    try:
        with scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(feed)
                nursery.start_soon(drain)
                await process.wait()
                # What it left running in its session goes too (a child of it holding
                # the output pipe would keep drain() waiting).
                _kill_group(process)
    finally:
        if process.returncode is None:
            # Timed out or cancelled: nothing of it outlives the attempt.
            _kill_group(process)
            with trio.CancelScope(shield=True):
                await process.wait()
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                with trio.CancelScope(shield=True):
                    await stream.aclose()
    tail = bounded(output.decode("utf-8", "replace"))
    if process.returncode == 0:
        return Attempt(True, status=0)
    if scope.cancelled_caught:
        return Attempt(False, error=f"did not finish within {sink.timeout:g}s"
                                    + (f": {tail}" if tail else ""), retry=True)
    return Attempt(False, status=process.returncode,
                   error=f"exit status {process.returncode}" + (f": {tail}" if tail else ""),
                   retry=True)
