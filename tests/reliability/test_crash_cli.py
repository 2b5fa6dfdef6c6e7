"""SIGKILL of CLI runs (``flwd JOB --json``) while they stream; any later flwd command recovers.

No sleeps: the NDJSON on each CLI's stdout says when it has streamed enough.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest

from tests.conftest import FLWD, flwd_env, run_cli

from .conftest import assert_strictly_increasing, live_members, process_groups, write_chatty
from .test_crash_server import LINES_BEFORE_KILL, journal_snapshot

pytestmark = pytest.mark.crash

CLI_RUNS = 3


def read_until_lines(process: subprocess.Popen[bytes], count: int) -> list[dict]:
    """NDJSON events from the CLI's stdout until ``count`` output lines went by."""
    assert process.stdout is not None
    events: list[dict] = []
    lines = 0
    while lines < count:
        raw = process.stdout.readline()
        assert raw.endswith(b"\n"), f"the CLI stopped early: {process.wait(timeout=30)}"
        events.append(json.loads(raw))
        lines += events[-1]["type"] == "step.log"
    return events


def test_sigkill_of_cli_runs_then_any_command_recovers(workspace: Path, data_dir: Path) -> None:
    job = write_chatty(workspace)
    processes = [subprocess.Popen([*FLWD, job, "--json"], cwd=workspace,
                                  env=flwd_env(data_dir, FLWD_GRACE="2"),
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
                 for _ in range(CLI_RUNS)]
    received: dict[str, list[dict]] = {}
    try:
        for process in processes:
            events = read_until_lines(process, LINES_BEFORE_KILL)
            received[events[0]["run_id"]] = events
        for process in processes:
            process.send_signal(signal.SIGKILL)
        for process in processes:
            assert process.wait(timeout=30) == -signal.SIGKILL
            assert process.stdout is not None
            # What was printed after our last read (whole lines only) was received too.
            for raw in process.stdout.read().splitlines(keepends=True):
                if raw.endswith(b"\n"):
                    event = json.loads(raw)
                    received[event["run_id"]].append(event)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()

    groups = {run_id: process_groups(run_id) for run_id in received}
    assert all(groups.values()), f"jobs died with their CLI, nothing to recover: {groups}"
    committed = {run_id: journal_snapshot(data_dir, run_id) for run_id in received}

    # Any flwd command recovers: here the history listing.
    listed = run_cli([":runs", "--json"], cwd=workspace, data_dir=data_dir)
    assert listed.returncode == 0, listed.stderr
    assert {(run["id"], run["status"]) for run in json.loads(listed.stdout)} == {
        (run_id, "interrupted") for run_id in received}
    assert live_members(set().union(*groups.values())) == []

    for run_id, seen in received.items():
        logs = run_cli([":logs", run_id, "--json"], cwd=workspace, data_dir=data_dir)
        assert logs.returncode == 0, logs.stderr
        events = [json.loads(line) for line in logs.stdout.splitlines()]
        before = committed[run_id]
        assert events[:len(seen)] == seen
        assert events[:len(before)] == before and len(before) >= len(seen)
        assert [(e["type"], e["data"]["status"]) for e in events[len(before):]] == [
            ("run.finish", "interrupted")]
        assert_strictly_increasing(events)
        lines = [e["data"]["message"] for e in events if e["type"] == "step.log"]
        assert lines == [f"line {i}" for i in range(len(lines))]
