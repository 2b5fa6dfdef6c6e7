"""Whose a preflight probe container is (``flwd.containers._leftovers``): a probe is
removed only when the process that made it is certainly gone."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

from flwd.containers._leftovers import dead_probes, owner_gone, owner_label
from flwd.execute import boot_id, process_start_time


def _exited() -> tuple[int, int]:
    """The pid and start time of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE)
    start = process_start_time(child.pid)
    assert start is not None
    child.communicate(b"")
    return child.pid, start


def test_this_process_is_alive_and_an_exited_one_is_gone() -> None:
    assert not owner_gone(owner_label())
    pid, start = _exited()
    host = socket.gethostname()
    assert owner_gone(f"{pid}:{start}:{boot_id()}:{host}")
    assert owner_gone(f"{pid}::{boot_id()}:{host}")  # a start time unknown: the pid decides


def test_a_reused_pid_or_an_earlier_boot_is_gone() -> None:
    pid, start, _, host = owner_label().split(":", 3)
    assert owner_gone(f"{pid}:{int(start) - 1}:{boot_id()}:{host}")  # another process's pid
    assert owner_gone(f"{pid}:{start}:another-boot:{host}")


def test_what_cannot_be_judged_is_never_gone() -> None:
    pid, start = _exited()
    for value in ("", "1", "x:1:b:h", f"{pid}:{start}:{boot_id()}:another-host",
                  f"{pid}:soon:{boot_id()}:{socket.gethostname()}"):
        assert not owner_gone(value), value


def test_a_listing_gives_only_flwd_probe_names_of_dead_owners() -> None:
    pid, start = _exited()
    dead = f"{pid}:{start}:{boot_id()}:{socket.gethostname()}"
    entries = [
        {"Names": ["flwd-preflight-12-0123abcd"], "Labels": {"flwd.preflight.owner": dead}},
        {"Names": ["flwd-preflight-13-0123abcd"], "Labels": {
            "flwd.preflight.owner": owner_label()}},
        {"Names": ["someone-elses"], "Labels": {"flwd.preflight.owner": dead}},
        {"Names": ["flwd-preflight-14-0123abcd"], "Labels": {"flwd.preflight": "1"}},
    ]
    # What `podman ps --format json` prints of them.
    listing = subprocess.Popen(["printf", "%s", json.dumps(entries)], stdout=subprocess.PIPE,
                               text=True)
    assert dead_probes(listing) == ["flwd-preflight-12-0123abcd"]
    assert dead_probes(None) == []
