"""Start-up recovery: runs left unfinished by a dead process become ``interrupted``.

Blocking; runs on a short-lived connection before (or beside) the writer.
"""

from __future__ import annotations

import os
import socket
import sqlite3
from pathlib import Path

from flwd.events import RUN_FINISH, TERMINAL_STATUSES, EventRecord, format_ts, now
from flwd.execute import kill_run_processes, remove_secret_files, runs_with_runtime_secrets
from flwd.execute._procfs import process_alive, process_start_time

from ._journal import append_batch
from ._read import unfinished_runs


def owner_identity() -> tuple[int, int | None, str]:
    """(pid, start time, host) recorded on every run this process owns."""
    pid = os.getpid()
    global _identity
    if _identity is None or _identity[0] != pid:  # read /proc once per process, not per run
        _identity = (pid, process_start_time(pid))
    return pid, _identity[1], socket.gethostname()


_identity: tuple[int, int | None] | None = None


def recover_interrupted(conn: sqlite3.Connection, *, runs_dir: Path | None = None) -> list[str]:
    """Mark runs whose owner process is gone as ``interrupted`` and reap their processes.

    A run is orphaned when its owner (pid + start time, on this host) no longer
    runs. Its leftover processes are found (by their cgroups, the process keeper
    that still holds them, their sessions and ``FLWD_RUN_ID``) and killed, so a
    crashed CLI or server never leaves a job running unsupervised. The records
    of the first two are in ``runs_dir``; without it, cgroups are found by name.
    With ``runs_dir``, the secret files of the orphaned runs are removed too
    (wherever they are), and so are any a terminal run left in the runtime dir.
    Returns the ids of the runs marked.
    """
    host = socket.gethostname()
    orphaned = [
        run for run in unfinished_runs(conn)
        if run.owner_host in (None, host)
        and not (run.owner_pid and process_alive(run.owner_pid, run.owner_start))
    ]
    if runs_dir is not None:
        sweep_terminal_secrets(conn, runs_dir)
    if not orphaned:
        return []
    # By the containment that held them (cgroups, the process keeper), recorded in
    # each run dir; then by session and FLWD_RUN_ID. Returns once they are gone
    # (bounded), so that "recovered" means "nothing of the run still runs".
    kill_run_processes([run.id for run in orphaned], runs_dir)
    if runs_dir is not None:
        # Nothing of these runs runs any more: their secrets go now, even if
        # marking them below fails (a full disk postpones only the marking).
        remove_secret_files(runs_dir, [run.id for run in orphaned])
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


def sweep_terminal_secrets(conn: sqlite3.Connection, runs_dir: Path) -> list[str]:
    """Remove the secret files of runs that are terminal in this Core DB; their ids.

    A run removes its secret files before it journals ``run.finish``, so this
    finds only what something unforeseen left behind. Only the runtime dir is
    swept: it holds folders of live runs alone, so listing it is cheap (the run
    dirs under ``runs_dir`` are as many as the runs kept). It may be shared by
    several data dirs: a run this Core DB does not know is left alone.
    """
    candidates = runs_with_runtime_secrets()
    finished: list[str] = []
    for start in range(0, len(candidates), 500):
        batch = candidates[start:start + 500]
        marks = ",".join("?" * len(batch))
        statuses = ",".join("?" * len(TERMINAL_STATUSES))
        finished += [row[0] for row in conn.execute(
            f"SELECT id FROM runs WHERE id IN ({marks}) AND status IN ({statuses})",
            [*batch, *sorted(TERMINAL_STATUSES)])]
    remove_secret_files(runs_dir, finished)
    return finished
