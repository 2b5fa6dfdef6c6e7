"""Three ``flwd :serve`` on one PostgreSQL Core DB: runs are a queue the replicas claim.

Each replica has its own data dir and shares the workspace. Runs are submitted round
robin; whichever replica claims one executes it, exactly once: the journal holds one
``run.start`` per run, and the job's own side effect (its run id appended to a file)
happens once per run. A job's ``runs_on`` is honoured (only the labelled replica runs
it), and a run with a secret argument is executed by the replica that received it.
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from flwd.events import TERMINAL_STATUSES
from flwd.store.postgres import PostgresStore
from tests.conftest import Server, scrape, start_server, wait_until, write_job

DEV = {"Authorization": "Bearer dev-token"}
#: Short heartbeats and leases, so that a replica's death is seen within seconds.
FAST = {"FLWD_CLUSTER_HEARTBEAT": "0.3", "FLWD_CLUSTER_LEASE": "10", "FLWD_GRACE": "1"}
RUNS = 300


def _share_idempotency_key(*data_dirs: Path) -> None:
    key = secrets.token_bytes(32)
    for data_dir in data_dirs:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        (data_dir / "idempotency.key").write_bytes(key)
        (data_dir / "idempotency.key").chmod(0o600)


@pytest.fixture
def replicas(workspace: Path, tmp_path: Path, postgres_dsn: str) -> Iterator[list[Server]]:
    write_job(workspace, "append", "interpreter: bash\n",
              {"100_main.sh": f'echo "$FLWD_RUN_ID" >> {tmp_path / "ran.txt"}\n'})
    write_job(workspace, "gpu", "interpreter: bash\nruns_on: [gpu]\n",
              {"100_main.sh": f'echo "$FLWD_RUN_ID" >> {tmp_path / "gpu.txt"}\n'})
    write_job(workspace, "nowhere", "interpreter: bash\nruns_on: [arm64]\n",
              {"100_main.sh": "true\n"})
    write_job(workspace, "secretive",
              "interpreter: bash\nargspec:\n  args:\n    - name: api_key\n      type: string\n"
              "      secret: true\n", {"100_main.sh": "true\n"})
    dirs = [tmp_path / f"data-{index}" for index in range(3)]
    _share_idempotency_key(*dirs)
    servers: list[Server] = []
    try:
        for index, data_dir in enumerate(dirs):
            labels = ("--labels", "gpu,linux") if index == 2 else ("--labels", "linux")
            servers.append(start_server(workspace, data_dir, "--dev", "--db", postgres_dsn,
                                        *labels, **FAST))
        yield servers
    finally:
        for server in servers:
            server.stop()


def _finished(store: PostgresStore, ids: list[str]) -> bool:
    statuses = store.run_statuses(ids)
    return all(statuses.get(run_id) in TERMINAL_STATUSES for run_id in ids)


def test_runs_submitted_round_robin_complete_exactly_once(
        replicas: list[Server], tmp_path: Path, postgres_dsn: str) -> None:
    clients = [httpx.Client(base_url=server.url, headers=DEV, timeout=60)
               for server in replicas]
    ids: list[str] = []
    for index in range(RUNS):
        response = clients[index % 3].post("/runs", json={"job_id": "append", "args": {}})
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    store = PostgresStore(postgres_dsn)
    try:
        wait_until(lambda: _finished(store, ids), f"{RUNS} runs to finish", timeout=120)
        runs = {run_id: store.get_run(run_id) for run_id in ids}
        assert {run_id: (run.status, run.error) for run_id, run in runs.items()
                if run.status != "completed"} == {}
        # Each run executed once: its own side effect once, one run.start in the journal.
        ran = (tmp_path / "ran.txt").read_text().split()
        assert Counter(ran) == Counter(ids)
        starts = Counter(event.run_id for run_id in ids
                         for event in store.read_events(run_id) if event.type == "run.start")
        assert starts == Counter(ids)
        # Claimed by more than one replica (each run's owner is the replica executing it).
        owners = Counter(run.owner_pid for run in runs.values())
        assert None not in owners and len(owners) >= 2, owners
    finally:
        store.close()
        for client in clients:
            client.close()


def test_runs_on_labels_and_secret_arguments(replicas: list[Server], tmp_path: Path,
                                             postgres_dsn: str) -> None:
    clients = [httpx.Client(base_url=server.url, headers=DEV, timeout=60)
               for server in replicas]
    store = PostgresStore(postgres_dsn)
    try:
        ids = [clients[index % 3].post("/runs", json={"job_id": "gpu", "args": {}}).json()["id"]
               for index in range(9)]
        wait_until(lambda: _finished(store, ids), "the gpu runs to finish")
        assert {run_id: (run.status, run.error) for run_id in ids
                if (run := store.get_run(run_id)).status != "completed"} == {}
        gpu_pid = replicas[2].process.pid
        assert {store.get_run(run_id).owner_pid for run_id in ids} == {gpu_pid}
        assert Counter((tmp_path / "gpu.txt").read_text().split()) == Counter(ids)

        # A run with a secret argument: executed where it was received, never queued.
        secret = "s3cr3t-" + secrets.token_hex(4)
        response = clients[0].post("/runs", json={"job_id": "secretive",
                                                  "args": {"api_key": secret}})
        assert response.status_code == 201, response.text
        run_id = response.json()["id"]
        wait_until(lambda: _finished(store, [run_id]), "the secret run to finish")
        assert store.get_run(run_id).owner_pid == replicas[0].process.pid
        # Secrets never reach the Core DB.
        with store.connection() as conn:
            rows = conn.execute("SELECT count(*) FROM runs WHERE queue LIKE ? OR args LIKE ?"
                                " OR plan LIKE ?", (f"%{secret}%",) * 3).fetchone()
        assert rows[0] == 0

        # No replica has the labels: it stays queued; cancelled from any replica, at once.
        stuck = clients[1].post("/runs", json={"job_id": "nowhere", "args": {}}).json()["id"]
        with pytest.raises(AssertionError):
            wait_until(lambda: store.get_run(stuck).status != "queued", "a claim", timeout=2)
        canceled = clients[2].post(f"/runs/{stuck}:cancel")
        assert canceled.status_code == 200 and canceled.json()["status"] == "canceled"
        assert [event.type for event in store.read_events(stuck)] == [
            "run.canceled", "run.finish"]

        response = httpx.get(f"{replicas[0].url}/cluster", headers=DEV, timeout=30)
        assert response.status_code == 200, response.text
        listed = response.json()["replicas"]
        assert len(listed) == 3
        assert sorted(tuple(item["labels"]) for item in listed) == [
            ("gpu", "linux"), ("linux",), ("linux",)]
        assert all(item["alive"] for item in listed)
        # Each replica's metrics say which replica it is (one series, bounded labels).
        samples = scrape(replicas[2].url)
        (info,) = [dict(labels) for (name, labels) in samples if name == "flwd_replica_info"]
        assert info["labels"] == "gpu,linux" and info["replica"] in {
            item["id"] for item in listed}
        assert ("flwd_replica_runs", frozenset({("state", "running")})) in samples
    finally:
        store.close()
        for client in clients:
            client.close()
