"""SIGKILL of ``flwd :serve`` while 20 runs stream output, then a restart on the same data dir.

No sleeps: an SSE client on ``/events`` records everything it receives and the
kill happens once every run has streamed enough lines through it. With podman
(and busybox for the test image) one of the runs is a container job.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from flwd import store
from tests.conftest import sse_events, write_job

from .conftest import (
    DEV,
    assert_strictly_increasing,
    live_members,
    process_groups,
    replay,
    write_chatty,
)

pytestmark = pytest.mark.crash

RUNS = 20
#: Output lines each run must have streamed (seen by the recording client) before the kill.
LINES_BEFORE_KILL = 25
#: The container job streams then goes quiet: a podman client whose output pipe
#: breaks removes its container itself, and the point is to see recovery do it.
CONTAINER_LOOP = f"""#!/bin/sh
i=0
while [ "$i" -lt {LINES_BEFORE_KILL} ]; do echo "line $i"; i=$((i + 1)); sleep 0.01; done
exec sleep 600
"""


def containers_available() -> bool:
    return shutil.which("podman") is not None and shutil.which("busybox") is not None


@pytest.fixture
def start(request: pytest.FixtureRequest, workspace: Path) -> Iterator[Any]:
    """A server factory: with containers when podman is there, ``--no-containers`` otherwise."""
    if containers_available():
        from tests.containers.conftest import flwd_containers, podman

        factory = request.getfixturevalue("container_server")
        yield lambda: factory()
        leaked = flwd_containers()
        if leaked:
            podman("rm", "--force", *leaked, check=False)
        assert not leaked, f"containers survived the test: {leaked}"
        return
    factory = request.getfixturevalue("server_factory")
    yield lambda: factory("--dev", FLWD_GRACE="2")


def run_containers(run_id: str) -> list[str]:
    done = subprocess.run(["podman", "ps", "--all", "--filter", f"label=flwd.run={run_id}",
                           "--format", "{{.Names}}"], capture_output=True, text=True,
                          timeout=60, check=True)
    return done.stdout.split()


class Recorder:
    """One SSE client on ``/events?after=0``: every event it received, per run."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.events: dict[str, list[dict]] = {}
        self.lines: dict[str, int] = {}
        self.changed = threading.Condition()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._main, daemon=True)
        self.thread.start()

    def _main(self) -> None:
        try:
            with httpx.stream("GET", f"{self.url}/events?after=0", headers=DEV,
                              timeout=httpx.Timeout(30, read=None)) as response:
                assert response.status_code == 200
                for event in sse_events(response.iter_lines()):
                    with self.changed:
                        self.events.setdefault(event["run_id"], []).append(event)
                        if event["type"] == "step.log":
                            self.lines[event["run_id"]] = self.lines.get(event["run_id"], 0) + 1
                        self.changed.notify_all()
        except (httpx.HTTPError, AssertionError) as exc:  # the server died under it
            self.error = exc
        finally:
            with self.changed:
                self.changed.notify_all()

    def wait_for_lines(self, run_ids: list[str], count: int, timeout: float) -> None:
        with self.changed:
            ok = self.changed.wait_for(
                lambda: all(self.lines.get(run_id, 0) >= count for run_id in run_ids)
                or not self.thread.is_alive(), timeout=timeout)
            assert ok and self.thread.is_alive(), (
                f"runs did not stream {count} lines each: {self.lines} ({self.error!r})")


def journal_snapshot(data_dir: Path, run_id: str) -> list[dict]:
    """The run's events as committed in the Core DB, read directly (envelopes as on the wire)."""
    with store.open_reader(store.db_path(data_dir)) as conn:
        records = store.read_events(conn, run_id, after=0, limit=1_000_000)
    return [json.loads(json.dumps(envelope)) for record in records
            for envelope in record.iter_events()]


def test_sigkill_of_the_server_while_20_runs_stream(start: Any, workspace: Path,
                                                     data_dir: Path) -> None:
    job = write_chatty(workspace)
    with_container = containers_available()
    if with_container:
        from tests.containers.conftest import IMAGE

        write_job(workspace, "chatty-container",
                  f"job: {{id: chatty-container}}\nexecutor: container\n"
                  f"container:\n  image: {IMAGE}\n", {"100_main.sh": CONTAINER_LOOP})
    server = start()
    recorder = Recorder(server.url)
    jobs = [job] * (RUNS - 1) + (["chatty-container"] if with_container else [job])
    run_ids = []
    for job_id in jobs:
        created = httpx.post(f"{server.url}/runs", json={"job_id": job_id}, headers=DEV,
                             timeout=30)
        assert created.status_code == 201, created.text
        run_ids.append(created.json()["id"])
    container_run = run_ids[-1] if with_container else None
    process_runs = run_ids[:-1] if with_container else run_ids
    recorder.wait_for_lines(run_ids, LINES_BEFORE_KILL, timeout=180)

    server.process.send_signal(signal.SIGKILL)
    server.process.wait(timeout=30)
    recorder.thread.join(timeout=30)
    assert not recorder.thread.is_alive()

    # The jobs outlive the server (they ignore SIGPIPE): recovery has work to do.
    groups = {run_id: process_groups(run_id) for run_id in process_runs}
    assert all(groups.values()), f"runs without a live process group: {groups}"
    if container_run is not None:
        assert run_containers(container_run), "the container run's container is gone already"
    committed = {run_id: journal_snapshot(data_dir, run_id) for run_id in run_ids}

    again = start()
    all_groups = set().union(*groups.values())
    assert live_members(all_groups) == [], "process groups of interrupted runs survived"
    if container_run is not None:
        assert run_containers(container_run) == []
    seen: list[int] = []
    for run_id in run_ids:
        events = replay(again.url, run_id)
        received = recorder.events[run_id]
        before = committed[run_id]
        # What the client saw is exactly what the journal had, and the journal kept it all.
        assert len(received) >= LINES_BEFORE_KILL
        assert events[:len(received)] == received
        assert events[:len(before)] == before
        assert len(before) >= len(received)
        # The only addition is the terminal event recovery journaled.
        tail = events[len(before):]
        assert [(e["type"], e["data"]["status"]) for e in tail] == [
            ("run.finish", "interrupted")], tail
        assert sum(e["type"] == "run.finish" for e in events) == 1
        assert_strictly_increasing(events)
        lines = [e["data"]["message"] for e in events if e["type"] == "step.log"]
        assert lines == [f"line {i}" for i in range(len(lines))]  # no gap, no repeat
        seen += [e["seq"] for e in events]
        status = httpx.get(f"{again.url}/runs/{run_id}", headers=DEV, timeout=10).json()
        assert status["status"] == "interrupted"
    assert len(seen) == len(set(seen)), "an event seq appears in two runs"
    listed = httpx.get(f"{again.url}/runs", params={"status": "interrupted", "per_page": 100},
                       headers=DEV, timeout=10)
    assert {run["id"] for run in listed.json()} == set(run_ids)
