"""Crash and full-disk tests: real servers and CLI runs killed with SIGKILL, a tmpfs data dir.

Helpers: a job that streams numbered lines forever, an SSE reader independent
of the product's decoder, the process groups of a run, a small tmpfs.
"""

from __future__ import annotations

import itertools
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import processes_under, sse_events, write_job

DEV = {"Authorization": "Bearer dev-token"}

#: Prints a numbered line every ~10 ms forever. It ignores SIGPIPE, so it
#: outlives the death of the flwd process reading its output: only recovery
#: (which kills by FLWD_RUN_ID) can end it.
CHATTY = """#!/bin/bash
trap '' PIPE
i=0
while :; do
  echo "line $i"
  i=$((i + 1))
  sleep 0.01
done
"""


def write_chatty(workspace: Path, name: str = "chatty") -> str:
    write_job(workspace, name, f"job: {{id: {name}}}\n", {"100_main.sh": CHATTY})
    return name


def replay(url: str, run_id: str) -> list[dict]:
    """Every event of a finished run, over SSE from the start (the stream ends by itself)."""
    with httpx.stream("GET", f"{url}/runs/{run_id}/events", headers=DEV,
                      timeout=60) as response:
        assert response.status_code == 200, response.read()
        return list(sse_events(response.iter_lines()))


def process_groups(run_id: str) -> set[int]:
    """Process group ids of the live processes of ``run_id``."""
    groups = set()
    for pid in processes_under(f"FLWD_RUN_ID={run_id}"):
        try:
            groups.add(os.getpgid(pid))
        except ProcessLookupError:
            pass
    return groups


def live_members(groups: set[int]) -> list[int]:
    """Live (non-zombie) processes that belong to one of ``groups``."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()
        if fields[0] != b"Z" and int(fields[2]) in groups:
            found.append(int(name))
    return found


def assert_strictly_increasing(events: list[dict]) -> None:
    seqs = [event["seq"] for event in events]
    assert all(a < b for a, b in itertools.pairwise(seqs)), \
        "seqs are not strictly increasing (a duplicate or a reordering)"


def fill(folder: Path) -> None:
    """Write a ballast file until the file system says it is full.

    Unbuffered: a buffered file keeps what the last write could not place and tries
    again when it is closed, which then raises ENOSPC out of the ``with`` — unless the
    free space happened to end on a buffer's boundary (it stopped doing so when the
    Core DB grew a few tables).
    """
    with open(folder / "ballast", "wb", buffering=0) as ballast:
        try:
            while True:
                ballast.write(b"\0" * 65536)
        except OSError as exc:
            assert exc.errno == 28, exc  # ENOSPC


@pytest.fixture
def small_tmpfs(data_dir: Path) -> Iterator[Path]:
    """The test's data dir as a 2 MiB tmpfs (root only); unmounted afterwards."""
    mountpoint = data_dir
    mountpoint.mkdir(parents=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs",
                           str(mountpoint)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs for the full-disk test (needs root or "
                    f"CAP_SYS_ADMIN): {done.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "--lazy", str(mountpoint)], check=False)


# The real-Podman fixtures (a containers.conf for this VM, the busybox test image, a
# server with containers); only requested when podman is there.
from tests.containers.conftest import (  # noqa: E402
    container_server as container_server,
)
from tests.containers.conftest import (  # noqa: E402
    podman_env as podman_env,
)
from tests.containers.conftest import (  # noqa: E402
    policy_file as policy_file,
)
