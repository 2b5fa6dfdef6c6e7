"""Killing what is left of runs whose flwd process died (blocking; start-up recovery).

The same containment that bounds a step while flwd runs finds it afterwards, each
way a guarantee weaker than the one before:

1. the step cgroups of the run (recorded in ``<run dir>/containment.jsonl``, and
   looked for by name in every mounted cgroup2 hierarchy): ``cgroup.kill``;
2. the process keeper that started the steps outlives flwd and stays their
   ancestor (a subreaper): everything below it belongs to runs of the dead flwd;
3. a census of the host's ``/proc``: processes in a recorded session or process
   group, or carrying the run's ``FLWD_RUN_ID``, and all their descendants.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from . import _cgroup
from ._contain import LEDGER
from ._procfs import Census, boot_id, children, process_alive, stat

#: Seconds recovery waits for the processes it killed to be gone.
KILL_WAIT = 2.0


def _ledger(runs_dir: Path | None, run_id: str) -> Iterator[dict[str, Any]]:
    if runs_dir is None:
        return
    try:
        with open(runs_dir / run_id / LEDGER, "rb") as f:
            lines = f.read().splitlines()
    except OSError:
        return
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:  # a line cut by the crash
            continue
        if isinstance(entry, dict):
            yield entry


def _ancestors(pid: int) -> set[int]:
    found = set()
    while pid > 1 and pid not in found:
        found.add(pid)
        proc = stat(pid)
        if proc is None:
            break
        pid = proc.ppid
    return found


def kill_run_processes(run_ids: Sequence[str], runs_dir: Path | None, *,
                       wait: float = KILL_WAIT) -> int:
    """SIGKILL every process of ``run_ids``, then wait (bounded) until they are gone.

    For runs whose owner process is gone only: everything found is killed.
    Returns how many processes were killed.
    """
    if not run_ids:
        return 0
    boot = boot_id()
    cgroups: set[Path] = set()
    keepers: set[tuple[int, int | None]] = set()
    sessions: dict[int, int] = {}
    for run_id in run_ids:
        for entry in _ledger(runs_dir, run_id):
            if entry.get("boot") != boot:
                continue  # pids of another boot are someone else's now
            if isinstance(entry.get("cgroup"), str):
                cgroups.add(Path(entry["cgroup"]))
            if isinstance(entry.get("keeper"), int):
                keepers.add((entry["keeper"], entry.get("keeper_start")))
            if isinstance(entry.get("session"), int):
                start = entry.get("start")
                sessions[entry["session"]] = start if isinstance(start, int) else 0
    mounts = _cgroup.mounted()
    for run_id in run_ids:
        cgroups.update(_cgroup.find_run_cgroups(mounts, run_id))
    for path in cgroups:
        try:
            _cgroup.kill(path)
        except OSError:
            pass
    census = Census([f"FLWD_RUN_ID={run_id}" for run_id in run_ids])
    roots: set[int] = set()
    for found in census.marked.values():
        roots |= found
    for session, start in sessions.items():
        leader = census.processes.get(session)
        if leader is not None and leader.start != start:
            continue  # the id was recycled: a pid is reused only once its session is empty
        roots |= census.in_groups({session}, since=start)
    for pid, start in keepers:
        if process_alive(pid, start):
            # The keeper's owner is dead: all that is below it is of dead runs.
            roots.update(children(pid))
    targets = census.closure(roots) - _ancestors(os.getpid())
    killed: list[tuple[int, int | None]] = []
    for pid in targets:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            continue
        killed.append((pid, census.processes[pid].start))
    # SIGKILL is asynchronous: wait (bounded) until the kernel has torn the
    # processes down, so that "recovered" means "nothing of the run still runs".
    deadline = time.monotonic() + wait
    while True:
        killed = [(pid, start) for pid, start in killed if process_alive(pid, start)]
        busy = [path for path in cgroups if _cgroup.populated(path)]
        if (not killed and not busy) or time.monotonic() > deadline:
            break
        time.sleep(0.005)
    for path in cgroups:
        _cgroup.remove(path)
    return len(targets)
