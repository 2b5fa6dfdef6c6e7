"""Retention through the real CLI and server: `flwd :gc`, `:serve --retain-runs`,
`GET /health/storage`, and 410 for a cursor whose events were evicted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import run_cli

AUTH = {"Authorization": "Bearer dev-token"}


def runs_of(workspace: Path, data_dir: Path) -> list[str]:
    listed = run_cli([":runs", "--json", "--limit", "100"], cwd=workspace, data_dir=data_dir)
    return [run["id"] for run in json.loads(listed.stdout)]


def test_gc_evicts_whole_old_runs(workspace: Path, data_dir: Path) -> None:
    for index in range(4):
        assert run_cli(["demo", "--name", f"n{index}"], cwd=workspace,
                       data_dir=data_dir).returncode == 0
    before = runs_of(workspace, data_dir)  # newest first
    dry = run_cli([":gc", "--retain-runs", "1", "--dry-run"], cwd=workspace, data_dir=data_dir)
    assert dry.stdout.strip() == "would evict 3 runs"
    assert runs_of(workspace, data_dir) == before
    done = run_cli([":gc", "--retain-runs", "1", "--json"], cwd=workspace, data_dir=data_dir)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert sorted(result["evicted"]) == sorted(before[1:])
    assert result["storage"]["runs"] == 1 and result["events_deleted"] > 0
    assert runs_of(workspace, data_dir) == before[:1]
    assert not any((data_dir / "runs" / run_id).exists() for run_id in before[1:])
    gone = run_cli([":logs", before[1]], cwd=workspace, data_dir=data_dir)
    assert gone.returncode == 2 and "no run" in gone.stderr
    bad = run_cli([":gc"], cwd=workspace, data_dir=data_dir)
    assert bad.returncode == 2 and "--retain-runs" in bad.stderr
    bad = run_cli([":gc", "--retain-days", "-1"], cwd=workspace, data_dir=data_dir)
    assert bad.returncode == 2 and "must be positive" in bad.stderr


def test_server_retention_storage_health_and_410(workspace: Path, data_dir: Path,
                                                 server_factory: Any) -> None:
    ids = []
    for index in range(3):
        assert run_cli(["demo", "--name", f"n{index}"], cwd=workspace,
                       data_dir=data_dir).returncode == 0
        ids.append(runs_of(workspace, data_dir)[0])
    # The server applies its limits when it starts (then every minute).
    server = server_factory("--dev", "--retain-runs", "1")
    health = httpx.get(f"{server.url}/health/storage", headers=AUTH, timeout=30)
    assert health.status_code == 200
    usage = health.json()
    assert usage["retention"] == {"retain_runs": 1, "retain_days": None, "max_db_mb": None}
    # The first pass may still be running when the server answers: wait on its result
    # by asking again until it shows (bounded; each request is the synchronisation).
    for _ in range(200):
        if usage.get("last_gc"):
            break
        usage = httpx.get(f"{server.url}/health/storage", headers=AUTH, timeout=30).json()
    assert usage["last_gc"]["evicted_runs"] == 2
    assert usage["runs"] == 1 and usage["evicted_runs"] == 2
    assert usage["db_bytes"] > 0 and usage["used_bytes"] > 0
    listed = [run["id"] for run in httpx.get(f"{server.url}/runs", headers=AUTH,
                                             timeout=30).json()]
    assert listed == [ids[2]]
    # Resuming the stream of an evicted run: 410, not a silent gap (nor a bare 404).
    gone = httpx.get(f"{server.url}/runs/{ids[0]}/events",
                     headers={**AUTH, "Last-Event-ID": "3"}, timeout=30)
    assert gone.status_code == 410
    assert gone.json()["code"] == "cursor.expired"
    fresh = httpx.get(f"{server.url}/runs/{ids[0]}/events", headers=AUTH, timeout=30)
    assert fresh.status_code == 404  # without a cursor it is simply not there
    # The global stream: a cursor inside the evicted range is gone too.
    everything = httpx.get(f"{server.url}/events?after=1", headers=AUTH, timeout=30)
    assert everything.status_code == 410
    anonymous = httpx.get(f"{server.url}/health/storage", timeout=30)
    assert anonymous.status_code == 200  # --dev: requests without a token get every scope
