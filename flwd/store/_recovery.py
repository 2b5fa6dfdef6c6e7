"""Start-up recovery: runs left unfinished by a dead process become ``interrupted``.

Blocking; runs on a short-lived connection before (or beside) the writer.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import time

from flwd.events import RUN_FINISH, EventRecord, format_ts, now
from flwd.execute._procfs import process_alive, process_start_time, processes_with_env

from ._journal import append_batch
from ._read import unfinished_runs

#: Seconds recovery waits for the processes it killed to be gone.
KILL_WAIT = 2.0


def owner_identity() -> tuple[int, int | None, str]:
    """(pid, start time, host) recorded on every run this process owns."""
    pid = os.getpid()
    global _identity
    if _identity is None or _identity[0] != pid:  # read /proc once per process, not per run
        _identity = (pid, process_start_time(pid))
    return pid, _identity[1], socket.gethostname()


_identity: tuple[int, int | None] | None = None


def recover_interrupted(conn: sqlite3.Connection) -> list[str]:
    """Mark runs whose owner process is gone as ``interrupted`` and reap their processes.

    A run is orphaned when its owner (pid + start time, on this host) no longer
    runs. Its leftover processes are found by their ``FLWD_RUN_ID`` and killed,
    so a crashed CLI or server never leaves a job running unsupervised.
    Returns the ids of the runs marked.
    """
    host = socket.gethostname()
    orphaned = [
        run for run in unfinished_runs(conn)
        if run.owner_host in (None, host)
        and not (run.owner_pid and process_alive(run.owner_pid, run.owner_start))
    ]
    if not orphaned:
        return []
    killed: list[tuple[int, int | None]] = []
    for run in orphaned:
        for pid in processes_with_env("FLWD_RUN_ID", run.id):
            start = process_start_time(pid)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            killed.append((pid, start))
    # SIGKILL is asynchronous: wait (bounded) until the kernel has torn the
    # processes down, so that "recovered" means "nothing of the run still runs".
    deadline = time.monotonic() + KILL_WAIT
    while True:
        killed = [(pid, start) for pid, start in killed if process_alive(pid, start)]
        if not killed or time.monotonic() > deadline:
            break
        time.sleep(0.005)
    ts = now()
    append_batch(conn, [
        EventRecord(run_id=run.id, job_id=run.job_id, type=RUN_FINISH, ts=ts, data={
            "status": "interrupted",
            "error": f"the flwd process that owned this run (pid {run.owner_pid}) exited "
                     "before the run finished",
            "finished_at": format_ts(ts),
        })
        for run in orphaned
    ])
    return [run.id for run in orphaned]

