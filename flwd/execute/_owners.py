"""The flwd process that owns a run: who this process is, and reaching another one."""

from __future__ import annotations

import os
import signal
import socket

from ._procfs import process_start_time


def owner_identity() -> tuple[int, int | None, str]:
    """(pid, start time, host) recorded on every run this process owns.

    The start time tells this process from a later one that reuses its pid
    (see ``process_alive``).
    """
    pid = os.getpid()
    global _identity
    if _identity is None or _identity[0] != pid:  # read /proc once per process, not per run
        _identity = (pid, process_start_time(pid))
    return pid, _identity[1], socket.gethostname()


_identity: tuple[int, int | None] | None = None


def signal_owner(pid: int) -> bool:
    """Ask the CLI process ``pid`` that owns a run to cancel it; False when it is gone.

    SIGTERM is that process's graceful path (as Ctrl-C: TERM to the run's processes,
    the grace, then KILL; journaled ``run.canceled``; exit 143). The caller has
    checked that ``pid`` still is the owner (``process_alive`` with its start time):
    a process that exits between that check and this signal is reported gone, and
    recovery decides what became of its run.
    """
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    return True
