"""What a reference client reads of runs and of the Core DB (issue 14 items 7 and 8), against
a real server: ``started_at``, ``executor`` and ``runtime`` on run objects and ``run.start``;
``GET /health/storage`` with the reference's keys, its scope, and the schema version a
Core DB left by schema 7 is migrated to."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import httpx

from flwd.store import SCHEMA_VERSION
from tests.conftest import run_cli, sse_events

AUTH = {"Authorization": "Bearer dev-token"}
REFERENCE_KEYS = ("driver", "ok", "bytes_used", "max_bytes", "journal_bytes",
                  "journal_max_bytes", "eviction_active", "schema_version")


def events_of(url: str, run_id: str) -> list[dict[str, Any]]:
    """The run's events over SSE, until its stream ends (after ``run.finish``)."""
    with httpx.stream("GET", f"{url}/runs/{run_id}/events", headers=AUTH,
                      timeout=60) as response:
        assert response.status_code == 200
        return list(sse_events(response.iter_lines()))


def file_stats(data_dir: Path) -> tuple[int, int]:
    """(page_count × page_size, user_version) of the Core DB, read beside the server."""
    db = sqlite3.connect(f"file:{data_dir / 'flwd.db'}?mode=ro", uri=True)
    try:
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        size = db.execute("PRAGMA page_size").fetchone()[0]
        return pages * size, db.execute("PRAGMA user_version").fetchone()[0]
    finally:
        db.close()


def test_runs_and_run_start_say_when_and_how_they_run(dev_server: Any, workspace: Path,
                                                      data_dir: Path) -> None:
    url = dev_server.url
    created = httpx.post(f"{url}/runs", headers=AUTH, timeout=30,
                         json={"job_id": "demo", "args": {"name": "Ada"}})
    assert created.status_code == 201, created.text
    run = created.json()
    # Accepted, not started: the key is there, null, until the run executes.
    assert run["status"] == "queued" and run["started_at"] is None
    assert run["executor"] == "proc" and "runtime" not in run
    assert run["created_at"]

    records = events_of(url, run["id"])
    start = records[0]
    assert start["type"] == "run.start"
    assert start["data"]["status"] == "running" and start["data"]["executor"] == "proc"
    assert "runtime" not in start["data"]
    started = start["data"]["started_at"]
    assert started >= run["created_at"]
    assert records[-1]["type"] == "run.finish"

    # The stored run says the same: the start time is run.start's.
    one = httpx.get(f"{url}/runs/{run['id']}", headers=AUTH, timeout=30).json()
    assert (one["status"], one["started_at"], one["executor"]) == ("completed", started, "proc")
    assert "runtime" not in one
    [listed] = httpx.get(f"{url}/runs", headers=AUTH, timeout=30).json()
    assert (listed["started_at"], listed["executor"]) == (started, "proc")

    # A DAG of host steps is a proc run too; so the CLI's :runs --json says.
    dag = httpx.post(f"{url}/runs", headers=AUTH, timeout=30,
                     json={"job_id": "examples.pipeline"}).json()
    assert dag["executor"] == "proc"
    assert events_of(url, dag["id"])[0]["data"]["executor"] == "proc"
    local = run_cli([":runs", "--json"], cwd=workspace, data_dir=data_dir)
    assert local.returncode == 0, local.stderr
    assert {(r["id"], r["executor"]) for r in json.loads(local.stdout)} == {
        (run["id"], "proc"), (dag["id"], "proc")}


def test_health_storage_has_the_reference_keys_and_real_values(server_factory: Any,
                                                               workspace: Path,
                                                               data_dir: Path) -> None:
    assert run_cli(["demo", "--name", "x"], cwd=workspace, data_dir=data_dir).returncode == 0
    server = server_factory("--dev")
    answer = httpx.get(f"{server.url}/health/storage", headers=AUTH, timeout=30)
    assert answer.status_code == 200
    assert answer.headers["Cache-Control"] == "no-store"
    health = answer.json()
    assert list(health)[:len(REFERENCE_KEYS)] == list(REFERENCE_KEYS)
    assert health["driver"] == "sqlite" and health["ok"] is True
    size, version = file_stats(data_dir)
    assert health["schema_version"] == version == SCHEMA_VERSION
    assert health["bytes_used"] == size
    assert health["bytes_used"] < health["max_bytes"]
    # No --max-db-mb: the journal may hold what the database can.
    assert health["journal_max_bytes"] == health["max_bytes"]
    assert 0 < health["journal_bytes"] < health["bytes_used"]
    assert health["eviction_active"] is False
    # flwd's own keys stay.
    assert health["runs"] == 1 and health["used_bytes"] > 0 and health["retention"] is None
    server.stop()

    # With retention evicting: the budget is the journal's limit, eviction is active.
    assert run_cli(["demo", "--name", "y"], cwd=workspace, data_dir=data_dir).returncode == 0
    server = server_factory("--dev", "--retain-runs", "1", "--max-db-mb", "64")
    for _ in range(200):  # each request is the synchronisation: the first pass is running
        health = httpx.get(f"{server.url}/health/storage", headers=AUTH, timeout=30).json()
        if health.get("last_gc"):
            break
    assert health["last_gc"]["evicted_runs"] == 1
    assert health["eviction_active"] is True
    assert health["journal_max_bytes"] == 64 * 1024 * 1024


def test_health_storage_takes_jobs_read_or_metrics_read(server_factory: Any, workspace: Path,
                                                        data_dir: Path) -> None:
    tokens = {}
    for scope in ("jobs:read", "metrics:read", "runs:read"):
        made = run_cli([":tokens", "create", "--name", scope.replace(":", "-"), "--scope", scope],
                       cwd=workspace, data_dir=data_dir)
        assert made.returncode == 0, made.stderr
        tokens[scope] = made.stdout.strip()
    server = server_factory()

    def get(token: str) -> httpx.Response:
        return httpx.get(f"{server.url}/health/storage", timeout=30,
                         headers={"Authorization": f"Bearer {token}"})

    assert get(tokens["jobs:read"]).status_code == 200  # the reference's scope
    assert get(tokens["metrics:read"]).status_code == 200  # flwd's, before
    denied = get(tokens["runs:read"])
    assert denied.status_code == 403
    problem = denied.json()
    assert problem["missing_scopes"] == ["jobs:read"]
    assert problem["detail"] == "missing required scope: jobs:read or metrics:read"


def test_a_schema_7_core_db_is_migrated_and_its_runs_keep_their_executor(
        server_factory: Any, workspace: Path, data_dir: Path) -> None:
    done = run_cli(["demo", "--name", "old", "--json"], cwd=workspace, data_dir=data_dir)
    assert done.returncode == 0, done.stderr
    old = json.loads(done.stdout.splitlines()[0])["run_id"]
    # The Core DB as schema 7 left it: no executor or runtime on runs.
    with sqlite3.connect(data_dir / "flwd.db") as db:
        db.execute("ALTER TABLE runs DROP COLUMN executor")
        db.execute("ALTER TABLE runs DROP COLUMN runtime")
        db.execute("PRAGMA user_version = 7")
    db.close()
    assert file_stats(data_dir)[1] == 7

    server = server_factory("--dev")
    health = httpx.get(f"{server.url}/health/storage", headers=AUTH, timeout=30).json()
    assert health["schema_version"] == file_stats(data_dir)[1] == SCHEMA_VERSION
    run = httpx.get(f"{server.url}/runs/{old}", headers=AUTH, timeout=30).json()
    # Filled in from the plan the run stored; its start time was always kept.
    assert (run["executor"], run["status"]) == ("proc", "completed")
    assert run["started_at"] is not None
