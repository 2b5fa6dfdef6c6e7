"""Ctrl-C and crashes of the CLI: the whole process tree goes, the journal says what happened."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import FLWD, flwd_env, processes_under, run_cli

GRACE = 2.0


def _start_long(workspace: Path, data_dir: Path, *flags: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*FLWD, "examples", "long", "--json", *flags], cwd=workspace,
                            env=flwd_env(data_dir, FLWD_GRACE=str(GRACE)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_tree(process: subprocess.Popen[str]) -> tuple[str, int, int]:
    """Read events until both the leader and the grandchild said they run."""
    assert process.stdout is not None
    run_id, leader, grandchild = "", 0, 0
    for line in process.stdout:
        event = json.loads(line)
        run_id = event["run_id"]
        message = event["data"].get("message", "")
        if message.startswith("long: leader"):
            leader = int(message.split()[2])
        if message.startswith("long: grandchild"):
            grandchild = int(message.split()[2])
        if leader and grandchild:
            return run_id, leader, grandchild
    raise AssertionError("the job never reported its process tree")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return state[state.rfind(b")") + 2 :].split()[0] != b"Z"


def _events(data_dir: Path, run_id: str) -> list[tuple[str, dict]]:
    conn = sqlite3.connect(data_dir / "flwd.db")
    try:
        rows = conn.execute("SELECT type, data FROM events WHERE run_id = ? ORDER BY seq",
                            (run_id,)).fetchall()
    finally:
        conn.close()
    return [(type_, json.loads(data)) for type_, data in rows]


@pytest.mark.parametrize("ignore_term", [False, True], ids=["plain", "grandchild-ignores-TERM"])
def test_ctrl_c_cancels_the_whole_tree(workspace: Path, data_dir: Path, ignore_term: bool) -> None:
    flags = ["--ignore_term"] if ignore_term else []
    with _start_long(workspace, data_dir, *flags) as process:
        run_id, leader, grandchild = _wait_for_tree(process)
        interrupted_at = time.monotonic()
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=GRACE + 10)
        elapsed = time.monotonic() - interrupted_at
    assert process.returncode == 130, stderr
    assert elapsed < GRACE + 1.0, f"exit took {elapsed:.2f}s"
    assert "Traceback" not in stderr
    assert not _alive(leader) and not _alive(grandchild)
    assert not processes_under(f"FLWD_RUN_ID={run_id}")
    types = [type_ for type_, _ in _events(data_dir, run_id)]
    assert "run.canceled" in types
    finish = [data for type_, data in _events(data_dir, run_id) if type_ == "run.finish"]
    assert finish and finish[-1]["status"] == "canceled"
    canceled = next(data for type_, data in _events(data_dir, run_id) if type_ == "run.canceled")
    assert canceled["by"] == "cli" and "SIGINT" in canceled["reason"]


def test_second_ctrl_c_kills_at_once(workspace: Path, data_dir: Path) -> None:
    with subprocess.Popen([*FLWD, "examples", "long", "--json", "--ignore_term"], cwd=workspace,
                          env=flwd_env(data_dir, FLWD_GRACE="60"), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as process:
        _, _, grandchild = _wait_for_tree(process)
        process.send_signal(signal.SIGINT)
        # Wait until the first press is journaled before pressing again.
        assert process.stdout is not None
        for line in process.stdout:
            if json.loads(line)["type"] == "run.canceled":
                break
        interrupted_at = time.monotonic()
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
        elapsed = time.monotonic() - interrupted_at
    assert process.returncode == 130, stderr
    assert elapsed < 5, f"the second Ctrl-C should not wait for the 60 s grace ({elapsed:.1f}s)"
    assert not _alive(grandchild)


def test_sigkill_of_the_cli_marks_the_run_interrupted(workspace: Path, data_dir: Path) -> None:
    with _start_long(workspace, data_dir) as process:
        run_id, leader, grandchild = _wait_for_tree(process)
        process.kill()
        process.communicate(timeout=10)
    # Any later command notices the dead owner, marks the run and reaps its tree.
    result = run_cli([":runs", "--json"], cwd=workspace, data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    runs = {run["id"]: run for run in json.loads(result.stdout)}
    assert runs[run_id]["status"] == "interrupted"
    assert not _alive(grandchild) and not _alive(leader)
    finish = [data for type_, data in _events(data_dir, run_id) if type_ == "run.finish"]
    assert len(finish) == 1 and finish[0]["status"] == "interrupted"
