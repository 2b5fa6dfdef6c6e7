"""A full disk: the data dir is a 2 MiB tmpfs and a run floods it with output.

What must happen: the run is stopped and finishes ``failed`` with an error
naming the storage problem (its ``run.finish`` still fits: the journal frees
its ballast file for it), no traceback, no hang; later commands fail with a
clear one-line error or problem document; the Core DB stays readable and
intact (``integrity_check``), while the disk is still full.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import httpx
import pytest

from flwd.store import SCHEMA_VERSION
from tests.conftest import FLWD, flwd_env, run_cli, scrape, start_server, write_job

from .conftest import DEV, assert_strictly_increasing, fill, replay

pytestmark = pytest.mark.crash

#: Floods stdout as fast as it can, forever.
FLOOD = '#!/bin/bash\nexec yes "a rather chatty line of output that fills a small disk 0123456789"\n'
STORAGE_WORDS = ("database or disk is full", "No space left on device")


def write_flood(workspace: Path) -> None:
    write_job(workspace, "flood", "job: {id: flood}\n", {"100_main.sh": FLOOD})


def assert_db_intact(data_dir: Path) -> list[tuple[str, str, str | None]]:
    """``PRAGMA integrity_check`` is ok; returns (id, status, error) of every run."""
    conn = sqlite3.connect(f"file:{data_dir / 'flwd.db'}?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        return conn.execute("SELECT id, status, error FROM runs ORDER BY created_at").fetchall()
    finally:
        conn.close()


def names_storage(text: str | None) -> bool:
    return text is not None and any(words in text for words in STORAGE_WORDS)


def test_cli_run_on_a_full_disk_fails_cleanly_and_the_db_stays_readable(
        workspace: Path, data_dir: Path, small_tmpfs: Path) -> None:
    write_flood(workspace)
    done = run_cli(["flood"], cwd=workspace, data_dir=data_dir, timeout=120, FLWD_GRACE="2")
    assert done.returncode == 1, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("flwd: run run-") and " failed: storage error: " in last, last
    assert names_storage(last)
    # The disk is still full: reading commands work, a new run fails with one clear line.
    listed = run_cli([":runs", "--json"], cwd=workspace, data_dir=data_dir)
    assert listed.returncode == 0, listed.stderr
    runs = json.loads(listed.stdout)
    assert [run["status"] for run in runs] == ["failed"]
    assert names_storage(runs[0]["error"])
    logs = run_cli([":logs", "last", "--json"], cwd=workspace, data_dir=data_dir)
    assert logs.returncode == 0, logs.stderr
    events = [json.loads(line) for line in logs.stdout.splitlines()]
    assert events[0]["type"] == "run.start" and events[-1]["type"] == "run.finish"
    seqs = [event["seq"] for event in events]
    assert seqs == sorted(set(seqs))
    lines = [e["data"]["message"] for e in events if e["type"] == "step.log"]
    assert lines and set(lines) == {"a rather chatty line of output that fills a small disk "
                                    "0123456789"}
    # What the failed transaction rolled back is free again (a larger batch, more of it):
    # the disk is filled to its last block before a new run is asked for.
    fill(small_tmpfs)
    again = run_cli(["demo", "--name", "x"], cwd=workspace, data_dir=data_dir, timeout=60)
    assert again.returncode != 0 and "Traceback" not in again.stderr
    assert names_storage(again.stderr), again.stderr
    assert len(again.stderr.strip().splitlines()) <= 3, again.stderr
    statuses = {status for _, status, _ in assert_db_intact(data_dir)}
    assert statuses <= {"failed"}


def test_server_run_on_a_full_disk_fails_cleanly_and_the_api_stays_up(
        workspace: Path, data_dir: Path, small_tmpfs: Path) -> None:
    write_flood(workspace)
    process = subprocess.Popen(
        [*FLWD, ":serve", "--bind", "127.0.0.1:0", "--log", "json", "--no-containers", "--dev"],
        cwd=workspace, env=flwd_env(data_dir, FLWD_GRACE="2"), stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    log: list[str] = []
    try:
        url = ""
        for line in process.stderr:
            log.append(line)
            if '"serving"' in line:
                url = json.loads(line)["urls"][0]
                break
        assert url, "".join(log)
        created = httpx.post(f"{url}/runs", json={"job_id": "flood"}, headers=DEV, timeout=30)
        assert created.status_code == 201, created.text
        run_id = created.json()["id"]
        events = replay(url, run_id)  # live until run.finish: a hang fails by timeout
        finish = events[-1]
        assert finish["type"] == "run.finish" and finish["data"]["status"] == "failed"
        assert names_storage(finish["data"]["error"]), finish
        assert_strictly_increasing(events)
        # The server is still up and says why new runs cannot be journaled.
        assert httpx.get(f"{url}/healthz", timeout=10).status_code == 204
        # The batch the disk refused is counted as such (a full disk, not another error).
        refused = scrape(url)[("flwd_persistence_latency_seconds_count", frozenset(
            {"operation": "journal_append", "outcome": "quota_exceeded"}.items()))]
        assert refused >= 1
        listed = httpx.get(f"{url}/runs", headers=DEV, timeout=10)
        assert listed.status_code == 200
        assert [(run["id"], run["status"]) for run in listed.json()] == [(run_id, "failed")]
        again = httpx.post(f"{url}/runs", json={"job_id": "demo", "args": {"name": "x"}},
                           headers=DEV, timeout=30)
        if again.status_code == 201:  # it fit after all: then it must finish cleanly
            last = replay(url, again.json()["id"])[-1]
            assert last["type"] == "run.finish"
            assert last["data"]["status"] == "completed" or names_storage(
                last["data"].get("error")), last
        else:
            assert again.status_code == 503, again.text
            problem = again.json()
            assert again.headers["content-type"].startswith("application/problem+json")
            assert problem["code"] == "E_STORAGE" and names_storage(problem["detail"])
        process.terminate()
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.extend(process.stderr)
        process.stderr.close()
    assert not any("Traceback" in line for line in log), "".join(log)[-3000:]
    assert_db_intact(data_dir)


def test_storage_health_is_degraded_while_the_disk_is_full(
        workspace: Path, data_dir: Path, small_tmpfs: Path) -> None:
    # A reference client watches GET /health/storage: 503 storage-degraded (with the
    # stats) while the Core DB cannot grow, 200 again once there is room.
    server = start_server(workspace, data_dir, "--dev")
    try:
        url = f"{server.url}/health/storage"
        healthy = httpx.get(url, headers=DEV, timeout=30)
        assert healthy.status_code == 200 and healthy.json()["ok"] is True
        fill(small_tmpfs)
        degraded = httpx.get(url, headers=DEV, timeout=30)
        assert degraded.status_code == 503, degraded.text
        assert degraded.headers["content-type"].startswith("application/problem+json")
        assert degraded.headers["Cache-Control"] == "no-store"
        problem = degraded.json()
        assert (problem["type"], problem["title"], problem["code"]) == (
            "https://flwd.dev/problems/storage-degraded", "storage degraded",
            "storage-degraded")
        assert problem["ok"] is False and problem["driver"] == "sqlite"
        assert problem["bytes_used"] == problem["max_bytes"] > 0
        assert problem["schema_version"] == SCHEMA_VERSION
        (small_tmpfs / "ballast").unlink()
        again = httpx.get(url, headers=DEV, timeout=30)
        assert again.status_code == 200 and again.json()["ok"] is True
    finally:
        assert server.stop() == 0
    assert not any("Traceback" in line for line in server.log), "".join(server.log)[-3000:]
