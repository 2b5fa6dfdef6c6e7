"""The /proc census recovery relies on: it finds every process of a tree, even one in mid-exec.

The census used to find a process that left its group only by the marker in its
environment; a process caught in ``execve`` shows an empty environment for a
moment, so a census taken right after the tree forked could miss it (the flaky
``test_concurrent_censuses_share_scans`` on a loaded machine). It now adds the
descendants of everything it found, by parent pid, and reads an empty
environment a second time after its pass.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from flwd.execute._procfs import Census, descendants

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="/proc")

MARKER = "FLWD_STEP_KEY"


def _spawn_tree(key: str) -> subprocess.Popen[bytes]:
    """A group leader with a child in its group, one that left it (setsid) and one that
    also cleared its environment (``env -i setsid``): it carries no marker at all.

    "ready" comes once all three are forked, typically before they finished exec'ing.
    """
    env = {**os.environ, MARKER: key}
    script = "sleep 30 & setsid sleep 31 & env -i setsid sleep 32 & echo ready; wait"
    return subprocess.Popen(["bash", "-c", script], env=env, start_new_session=True,
                            stdout=subprocess.PIPE)


def _ready(process: subprocess.Popen[bytes]) -> None:
    assert process.stdout is not None
    assert process.stdout.readline() == b"ready\n"


def _kill(process: subprocess.Popen[bytes]) -> None:
    for pid in descendants([process.pid]):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait()
    if process.stdout is not None:
        process.stdout.close()


def _tree(census: Census, process: subprocess.Popen[bytes], key: str) -> set[int]:
    """What recovery kills for this tree: its group, its marker, and all their descendants."""
    roots = census.in_groups({process.pid}) | census.marked[f"{MARKER}={key}"]
    return census.closure(roots)


def test_a_census_right_after_the_forks_sees_every_process_of_each_tree() -> None:
    # Many trees, each counted the moment it says its children are forked: with
    # environment markers alone, children in mid-exec were missed now and then.
    keys = [f"census-{os.getpid()}-{index}" for index in range(12)]
    processes = {key: _spawn_tree(key) for key in keys}
    try:
        for key, process in processes.items():
            _ready(process)
            census = Census([f"{MARKER}={key}"])
            found = _tree(census, process, key)
            # bash, its three children (whatever they are exec'ing right now).
            assert len(found) == 4, (key, sorted(found))
            assert process.pid in found
    finally:
        for process in processes.values():
            _kill(process)


def test_the_children_of_what_the_census_found_count_marker_or_not() -> None:
    key = f"census-closure-{os.getpid()}"
    process = _spawn_tree(key)
    try:
        _ready(process)
        leaver = next(pid for pid in descendants([process.pid])[1:]
                      if _exec_done(pid).split(b"\0")[1:2] == [b"32"])
        census = Census([f"{MARKER}={key}"])
        # Out of the group, without the marker (env -i): only the closure finds it.
        assert census.processes[leaver].pgid == leaver
        assert leaver not in census.in_groups({process.pid})
        assert leaver not in census.marked[f"{MARKER}={key}"]
        assert leaver in _tree(census, process, key)
    finally:
        _kill(process)


def _exec_done(pid: int) -> bytes:
    """``pid``'s command line once ``sleep`` replaced the forked shell (bounded wait)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                line = f.read()
        except OSError:
            return b""
        if line.split(b"\0")[0].endswith(b"sleep"):
            return line
        os.sched_yield()
    return b""


def test_a_recycled_session_id_does_not_claim_processes_started_before_it() -> None:
    key = f"census-since-{os.getpid()}"
    process = _spawn_tree(key)
    try:
        _ready(process)
        census = Census()
        leader = census.processes[process.pid]
        assert census.in_groups({process.pid}, since=leader.start)
        assert not census.in_groups({process.pid}, since=leader.start + 10**9)
    finally:
        _kill(process)


def test_descendants_follows_children_without_a_scan_of_proc() -> None:
    key = f"census-descendants-{os.getpid()}"
    process = _spawn_tree(key)
    try:
        _ready(process)
        below = descendants([process.pid])
        assert below[0] == process.pid and len(below) == 4
    finally:
        _kill(process)
