"""Start-up recovery: runs left unfinished by a dead process become ``interrupted``.

The store answers the data questions (which runs are unfinished, which are
terminal) and takes the ``run.finish`` records; this module decides which runs
are orphans and clears what they left on this host: their processes, their
containers and their secret files. Blocking; it runs before the journal starts
(and beside it, when a cancel finds a dead owner).
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path

from flwd.errors import StorageError
from flwd.events import RUN_FINISH, EventRecord, format_ts, now
from flwd.execute import (
    kill_run_processes,
    process_alive,
    remove_secret_files,
    runs_with_runtime_secrets,
)
from flwd.settings import Settings
from flwd.store import Store

_log = logging.getLogger("flwd.engine")


def recover(settings: Settings) -> list[str]:
    """Mark runs of dead processes ``interrupted``; remove their containers and secret files.

    Blocking; cheap when there are none. A Core DB that cannot be written
    (disk full) only postpones the marking: the leftover processes are killed
    anyway and the next start tries again, so reading commands still work.
    """
    try:
        marked = recover_interrupted(settings.open_store(), runs_dir=settings.runs_dir)
    except StorageError as exc:
        _log.warning("flwd: unfinished runs of dead processes not marked interrupted yet: %s",
                     exc.one_line())
        return []
    if marked:
        from flwd.containers import reap_run_containers  # start-up: only after a crash

        reap_run_containers(marked)
    return marked


def recover_interrupted(store: Store, *, runs_dir: Path | None = None) -> list[str]:
    """Mark runs whose owner process is gone as ``interrupted`` and reap their processes.

    A run is orphaned when its owner (pid + start time, on this host) no longer
    runs. Its leftover processes are found (by their cgroups, the process keeper
    that still holds them, their sessions and ``FLWD_RUN_ID``) and killed, so a
    crashed CLI or server never leaves a job running unsupervised. The records
    of the first two are in ``runs_dir``; without it, cgroups are found by name.
    With ``runs_dir``, the secret files of the orphaned runs are removed too
    (wherever they are), and so are any a terminal run left in the runtime dir.
    Returns the ids of the runs marked.

    Raises:
        StorageError: the Core DB cannot be written (nothing is marked).
    """
    # Migrating an older schema is a write too: a Core DB that cannot take one
    # is reported before anything is killed (as when the marking fails).
    store.migrate()
    host = socket.gethostname()
    # A run of a cluster (owner_kind "cluster") is queued for any replica or leased by
    # one: the replicas' reapers finish it when its lease lapses, never recovery.
    orphaned = [
        run for run in store.unfinished_runs()
        if run.owner_kind != "cluster" and run.owner_host in (None, host)
        and not (run.owner_pid and process_alive(run.owner_pid, run.owner_start))
    ]
    if runs_dir is not None:
        sweep_terminal_secrets(store, runs_dir)
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
    store.append([
        EventRecord(run_id=run.id, job_id=run.job_id, type=RUN_FINISH, ts=ts, data={
            "status": "interrupted",
            "error": f"the flwd process that owned this run (pid {run.owner_pid}) exited "
                     "before the run finished",
            "finished_at": format_ts(ts),
        })
        for run in orphaned
    ])
    return [run.id for run in orphaned]


def sweep_terminal_secrets(store: Store, runs_dir: Path) -> list[str]:
    """Remove the secret files of runs that are terminal in this Core DB; their ids.

    A run removes its secret files before it journals ``run.finish``, so this
    finds only what something unforeseen left behind. Only the runtime dir is
    swept: it holds folders of live runs alone, so listing it is cheap (the run
    dirs under ``runs_dir`` are as many as the runs kept). It may be shared by
    several data dirs: a run this Core DB does not know is left alone.
    """
    finished = store.terminal_among(runs_with_runtime_secrets())
    remove_secret_files(runs_dir, finished)
    return finished
