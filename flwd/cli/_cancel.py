"""``flwd :cancel RUN`` without a server: cancel a run of another flwd process on this host.

No engine is started (a second engine would own nothing): the run's row says
who owns it. A live CLI owner is sent SIGTERM, which is its graceful Ctrl-C
path (TERM the process group, grace, KILL, ``run.canceled`` journaled); a run
of a live server can only be cancelled through that server; a run whose owner
died is marked ``interrupted`` and its processes reaped (``recover``). This is
the logic of ``Engine.request_cancel`` for a process that owns no runs.
"""

from __future__ import annotations

import os
import signal
import socket

from flwd import store
from flwd.engine import recover
from flwd.errors import UsageError
from flwd.events import TERMINAL_STATUSES, RunRow
from flwd.execute import process_alive
from flwd.settings import Settings

from ._context import CONTEXT


def cancel_local(run_ref: str) -> int:
    settings = CONTEXT.settings(require_scripts=False)
    if not settings.db_path.exists():
        raise UsageError(f"no runs yet (no Core DB at {settings.db_path})")
    run = _read(settings, run_ref)
    if run.status in TERMINAL_STATUSES:
        print(f"run {run.id} already finished ({run.status})")
        return 0
    host = socket.gethostname()
    if run.owner_host not in (None, host):
        raise UsageError(f"run {run.id} belongs to a flwd process on host {run.owner_host}",
                         hint="cancel it on that host")
    if run.owner_pid and process_alive(run.owner_pid, run.owner_start):
        if run.owner_kind != "cli":
            raise UsageError(f"run {run.id} is live in a flwd server (pid {run.owner_pid})",
                             hint=f"cancel it through the server: flwd --server URL :cancel "
                                  f"{run.id}")
        try:
            os.kill(run.owner_pid, signal.SIGTERM)
        except ProcessLookupError:
            pass  # it just exited: recovery below decides
        else:
            print(f"cancel requested for run {run.id}")
            return 0
    recover(settings)
    run = _read(settings, run.id)
    if run.status == "interrupted":
        print(f"run {run.id} interrupted: the flwd process that owned it "
              f"(pid {run.owner_pid}) had exited")
    else:
        print(f"run {run.id} already finished ({run.status})")
    return 0


def _read(settings: Settings, run_ref: str) -> RunRow:
    with store.open_reader(settings.db_path) as conn:
        # ``last`` is this workspace's last run, as for :logs.
        return store.get_run(conn, run_ref, workspace=settings.workspace_key)
