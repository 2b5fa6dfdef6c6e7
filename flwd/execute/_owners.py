"""Reaching the flwd process that owns a run from another process on the same host."""

from __future__ import annotations

import os
import signal


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
