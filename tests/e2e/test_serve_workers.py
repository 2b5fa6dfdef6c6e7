"""``flwd :serve --workers N``: several processes on one port and one SQLite Core DB.

Real servers (a supervisor and its workers), real runs. What must hold:

- a run posted to any worker executes once, on some worker; both workers execute runs;
- a worker streams, and cancels, a run another worker executes (the connection used is
  one the other worker answered: ``GET /cluster`` says which replica answers);
- a job's ``concurrency: 1`` holds across the workers;
- ``kill -9`` of a worker: the supervisor starts it again, its run ends ``interrupted``
  (within the lease) with nothing of it left running; the server goes on serving;
- SIGTERM stops every worker, exit 0; ``kill -9`` of the supervisor stops the workers
  (their lifeline), and a new server starts on the data dir;
- a worker that cannot start fails the start, in one line; a bad ``--workers`` is one
  line; the thin client (``flwd JOB``) goes through the supervisor's socket.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import httpx
import pytest

from flwd.daemon import hold_data_dir
from flwd.store import SqliteStore
from tests.conftest import (
    FLWD,
    Server,
    flwd_env,
    processes_under,
    run_cli,
    start_server,
    wait_until,
    write_job,
)

DEV = {"Authorization": "Bearer dev-token"}
FAST = {"FLWD_CLUSTER_HEARTBEAT": "0.3", "FLWD_CLUSTER_LEASE": "3", "FLWD_GRACE": "1"}


def _children(pid: int) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(name))
    return sorted(found)


@contextmanager
def _workers(workspace: Path, data_dir: Path, count: int = 2, *flags: str
             ) -> Iterator[Server]:
    server = start_server(workspace, data_dir, "--dev", "--workers", str(count), *flags,
                          **FAST)
    try:
        assert len(_children(server.process.pid)) == count
        yield server
    finally:
        server.stop()


def _client_of(server: Server, *, not_pid: int | None = None, pid: int | None = None
               ) -> tuple[httpx.Client, int]:
    """A kept-alive connection answered by a worker (by pid), found by asking ``GET
    /cluster`` on fresh connections until the wanted one answers."""
    for _ in range(200):
        client = httpx.Client(base_url=server.url, headers=DEV, timeout=30)
        answered = client.get("/cluster").json()
        me = next(r["pid"] for r in answered["replicas"] if r["id"] == answered["replica_id"])
        if (not_pid is None or me != not_pid) and (pid is None or me == pid):
            return client, me
        client.close()
    raise AssertionError("no connection reached the wanted worker in 200 tries")


def _start_long(server: Server, store: SqliteStore) -> str:
    """Post a run of the job ``long`` and wait until its script printed (it then sleeps)."""
    run_id: str = httpx.post(f"{server.url}/runs", headers=DEV, timeout=30,
                             json={"job_id": "long"}).json()["id"]
    wait_until(lambda: store.run_statuses([run_id]).get(run_id) == "running" and any(
        e.type == "step.log" for e in store.read_events(run_id)), "the run to start")
    return run_id


def _sse_types(client: httpx.Client, path: str) -> list[tuple[int, str]]:
    seen = []
    with client.stream("GET", path, headers={"Accept": "text/event-stream"}) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: "):
                event = json.loads(line[6:])
                seen.append((event["seq"], event["type"]))
    return seen


def test_runs_go_to_any_worker_once_and_stream_from_any(workspace: Path, data_dir: Path
                                                        ) -> None:
    write_job(workspace, "ok", "interpreter: bash\n", {"100_main.sh": "echo ok\n"})
    with _workers(workspace, data_dir) as server:
        ids = []
        for _ in range(30):  # a new connection each: the kernel hands them to either worker
            response = httpx.post(f"{server.url}/runs", headers=DEV, timeout=30,
                                  json={"job_id": "ok"})
            assert response.status_code == 201, response.text
            ids.append(response.json()["id"])
        store = SqliteStore(data_dir / "flwd.db")
        wait_until(lambda: set(store.run_statuses(ids).values()) == {"completed"},
                   "every run completed")
        owners = {store.get_run(run_id).owner_pid for run_id in ids}
        assert owners == set(_children(server.process.pid)), "both workers executed runs"
        for run_id in ids:
            finishes = [e for e in store.read_events(run_id) if e.type == "run.finish"]
            assert len(finishes) == 1
        # Streamed by the worker that did not execute it: exactly the journal.
        run = store.get_run(ids[0])
        client, _ = _client_of(server, not_pid=run.owner_pid)
        with closing(client):
            streamed = _sse_types(client, f"/runs/{run.id}/events")
        journal = [(e.seq, e.type) for e in store.read_events(run.id)]
        assert streamed == journal[:len(streamed)] and streamed[-1][1] == "run.finish"


def test_a_worker_follows_and_cancels_a_run_another_executes(
        workspace: Path, data_dir: Path, tmp_path: Path) -> None:
    write_job(workspace, "long", "interpreter: bash\n",
              {"100_main.sh": "echo started\nexec sleep 600\n"})
    with _workers(workspace, data_dir) as server:
        store = SqliteStore(data_dir / "flwd.db")
        run_id = _start_long(server, store)
        owner = store.get_run(run_id).owner_pid
        assert processes_under(run_id)
        client, other = _client_of(server, not_pid=owner)
        with closing(client):
            assert other != owner
            canceled = client.post(f"/runs/{run_id}:cancel")
            assert canceled.status_code in (200, 202), canceled.text
            streamed = _sse_types(client, f"/runs/{run_id}/events")
        assert streamed[-1][1] == "run.finish"
        assert store.run_statuses([run_id])[run_id] == "canceled"
        wait_until(lambda: not processes_under(run_id), "the run's processes to be gone",
                   timeout=15)


def test_a_jobs_concurrency_holds_across_workers(workspace: Path, data_dir: Path,
                                                 tmp_path: Path) -> None:
    lock, overlaps = tmp_path / "inside", tmp_path / "overlaps"
    write_job(workspace, "one", "interpreter: bash\nconcurrency: 1\n", {
        "100_main.sh": f"mkdir {lock} 2>/dev/null || echo overlap >> {overlaps}\n"
                       f"sleep 0.3\nrmdir {lock} 2>/dev/null\n"})
    with _workers(workspace, data_dir) as server:
        store = SqliteStore(data_dir / "flwd.db")
        ids = [httpx.post(f"{server.url}/runs", headers=DEV, timeout=30,
                          json={"job_id": "one"}).json()["id"] for _ in range(6)]
        wait_until(lambda: set(store.run_statuses(ids).values()) == {"completed"},
                   "every run completed")
        assert len({store.get_run(run_id).owner_pid for run_id in ids}) >= 1
        assert not overlaps.exists(), "two runs of a concurrency-1 job ran at once"


def test_kill_9_of_a_worker_interrupts_its_run_and_it_comes_back(
        workspace: Path, data_dir: Path) -> None:
    write_job(workspace, "long", "interpreter: bash\n",
              {"100_main.sh": "echo started\nexec sleep 600\n"})
    write_job(workspace, "ok", "interpreter: bash\n", {"100_main.sh": "echo ok\n"})
    with _workers(workspace, data_dir) as server:
        store = SqliteStore(data_dir / "flwd.db")
        run_id = _start_long(server, store)
        victim = store.get_run(run_id).owner_pid
        assert victim in _children(server.process.pid)
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: store.run_statuses([run_id])[run_id] == "interrupted",
                   "the dead worker's run to be interrupted", timeout=30)
        wait_until(lambda: not processes_under(run_id), "its processes to be gone",
                   timeout=15)
        wait_until(lambda: len(_children(server.process.pid)) == 2 and victim not in
                   _children(server.process.pid), "the worker to be started again")
        assert any('"worker 0 exited' in line or '"flwd: worker' in line
                   for line in server.log)
        # And the server goes on.
        response = httpx.post(f"{server.url}/runs", headers={**DEV, "Accept":
                              "text/event-stream"}, timeout=30, json={"job_id": "ok"})
        assert response.status_code == 201 and "run.finish" in response.text


def test_sigterm_stops_every_worker(workspace: Path, data_dir: Path) -> None:
    server = start_server(workspace, data_dir, "--dev", "--workers", "2", **FAST)
    workers = _children(server.process.pid)
    assert len(workers) == 2
    assert server.stop() == 0
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)
    assert sum(json.loads(line).get("msg") == "stopped" for line in server.log
               if line.startswith("{")) == 3
    assert not (data_dir / "serve.sock").exists()


def test_kill_9_of_the_supervisor_stops_its_workers(workspace: Path, data_dir: Path
                                                    ) -> None:
    server = start_server(workspace, data_dir, "--dev", "--workers", "2", **FAST)
    workers = _children(server.process.pid)
    server.stop(signal.SIGKILL)
    wait_until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in workers),
               "the workers to stop", timeout=30)
    again = start_server(workspace, data_dir, "--dev", **FAST)  # the data dir is free
    assert again.stop() == 0


def test_a_worker_that_cannot_start_fails_the_start_in_one_line(workspace: Path,
                                                                data_dir: Path) -> None:
    held = hold_data_dir(data_dir / "workers" / "1", "serve", [":serve"])
    try:
        done = subprocess.run([*FLWD, ":serve", "--dev", "--bind", "127.0.0.1:0",
                               "--no-containers", "--workers", "2"], cwd=workspace,
                              env=flwd_env(data_dir, **FAST), capture_output=True, text=True,
                              timeout=120, check=False)
    finally:
        held.release()
    assert done.returncode == 1, done.stderr
    assert "worker 1 stopped before it was serving" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("count", ["0", "65", "x"])
def test_a_bad_workers_count_is_one_line(workspace: Path, data_dir: Path, count: str
                                         ) -> None:
    done = run_cli([":serve", "--dev", "--workers", count], cwd=workspace, data_dir=data_dir)
    assert done.returncode == 2 and "--workers" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) <= 2 and "Traceback" not in done.stderr


def test_the_thin_client_goes_through_the_supervisors_socket(workspace: Path, data_dir: Path
                                                             ) -> None:
    write_job(workspace, "ok", "interpreter: bash\n", {"100_main.sh": "echo hello\n"})
    with _workers(workspace, data_dir) as server:
        started = time.monotonic()
        done = run_cli(["ok"], cwd=workspace, data_dir=data_dir)
        assert done.returncode == 0 and "hello" in done.stdout, done.stderr
        assert time.monotonic() - started < 60
        wait_until(lambda: any('"subject": "local"' in line for line in server.log),
                   "the request on the local socket in a worker's log")


def test_a_worker_executes_the_runs_it_accepts_when_it_can(workspace: Path, data_dir: Path
                                                          ) -> None:
    """No second plan, claim and cross-process following for a run the accepting worker
    has room for; a job with a ``concurrency`` still goes through the queue."""
    write_job(workspace, "ok", "interpreter: bash\n", {"100_main.sh": "echo ok\n"})
    write_job(workspace, "one", "interpreter: bash\nconcurrency: 1\n",
              {"100_main.sh": "echo one\n"})
    with _workers(workspace, data_dir) as server:
        store = SqliteStore(data_dir / "flwd.db")
        client, pid = _client_of(server)
        with closing(client):
            ids = [client.post("/runs", json={"job_id": "ok"}).json()["id"] for _ in range(5)]
            queued = client.post("/runs", json={"job_id": "one"}).json()["id"]
        wait_until(lambda: set(store.run_statuses([*ids, queued]).values()) == {"completed"},
                   "the runs to complete")
        assert {store.get_run(run_id).owner_pid for run_id in ids} == {pid}
        with store.connection() as conn:
            (queue,) = conn.execute("SELECT queue FROM runs WHERE id = ?", (queued,)).fetchone()
            locals_ = conn.execute(
                f"SELECT count(*) FROM runs WHERE queue IS NULL AND id IN "
                f"({','.join('?' * len(ids))})", ids).fetchone()[0]
        assert queue is not None and locals_ == len(ids)


def _files_holding(roots: list[Path], needle: bytes) -> list[Path]:
    found = []
    for root in roots:
        for path in root.rglob("*") if root.exists() else ():
            try:
                if path.is_file() and not path.is_symlink() and needle in path.read_bytes():
                    found.append(path)
            except OSError:
                continue
    return found


@pytest.mark.parametrize("with_runtime_dir", [False, True])
def test_a_dead_workers_secret_files_go_with_its_runs(workspace: Path, data_dir: Path,
                                                      tmp_path: Path, with_runtime_dir: bool
                                                      ) -> None:
    """The worker that reaps a dead sibling's runs removes their secret files, wherever
    the sibling kept them (its run dirs, or the runtime dir)."""
    write_job(workspace, "keeps", "interpreter: bash\nargspec:\n  args:\n"
              "    - name: api_key\n      type: string\n      format: secret\n",
              {"100_main.sh": "echo started\nexec sleep 600\n"})
    runtime = tmp_path / "xdg"
    runtime.mkdir(mode=0o700)
    secret = b"s3cr3t-" + os.urandom(8).hex().encode()
    env = {**FAST, **({"XDG_RUNTIME_DIR": str(runtime)} if with_runtime_dir else {})}
    server = start_server(workspace, data_dir, "--dev", "--workers", "2", **env)
    try:
        store = SqliteStore(data_dir / "flwd.db")
        run_id = httpx.post(f"{server.url}/runs", headers=DEV, timeout=30, json={
            "job_id": "keeps", "args": {"api_key": secret.decode()}}).json()["id"]
        wait_until(lambda: any(e.type == "step.log" for e in store.read_events(run_id)),
                   "the run to start")
        roots = [data_dir, runtime]
        assert _files_holding(roots, secret), "the run's secret file exists while it runs"
        os.kill(store.get_run(run_id).owner_pid, signal.SIGKILL)
        wait_until(lambda: store.run_statuses([run_id])[run_id] == "interrupted",
                   "the run to be interrupted", timeout=30)
        wait_until(lambda: not processes_under(run_id), "its processes to be gone",
                   timeout=15)
        wait_until(lambda: not _files_holding(roots, secret), "its secret files to be gone",
                   timeout=15)
    finally:
        server.stop()


def test_workers_on_a_postgresql_core_db(workspace: Path, data_dir: Path, postgres_dsn: str
                                         ) -> None:
    """With ``--db postgresql://…`` the workers are replicas of that database's cluster."""
    pytest.importorskip("psycopg")
    from flwd.store.postgres import PostgresStore

    write_job(workspace, "ok", "interpreter: bash\n", {"100_main.sh": "echo ok\n"})
    server = start_server(workspace, data_dir, "--dev", "--workers", "2", "--db", postgres_dsn,
                          **FAST)
    store = PostgresStore(postgres_dsn)
    try:
        answered = httpx.get(f"{server.url}/cluster", headers=DEV, timeout=30).json()
        assert len([r for r in answered["replicas"] if r["alive"]]) == 2
        ids = [httpx.post(f"{server.url}/runs", headers=DEV, timeout=30,
                          json={"job_id": "ok"}).json()["id"] for _ in range(10)]
        wait_until(lambda: set(store.run_statuses(ids).values()) == {"completed"},
                   "every run completed")
        assert not (data_dir / "flwd.db").exists(), "nothing written to a SQLite file"
    finally:
        store.close()
        assert server.stop() == 0


def test_every_worker_reads_the_data_dirs_tokens_file(workspace: Path, data_dir: Path
                                                      ) -> None:
    def mint(name: str) -> str:
        created = run_cli([":tokens", "create", "--name", name, "--scope", "jobs:read"],
                          cwd=workspace, data_dir=data_dir)
        assert created.returncode == 0, created.stderr
        return created.stdout.strip()

    ci = mint("ci")
    server = start_server(workspace, data_dir, "--workers", "2", **FAST)
    try:
        for _ in range(40):  # fresh connections: both workers answer some
            client = httpx.Client(base_url=server.url, timeout=30,
                                  headers={"Authorization": f"Bearer {ci}"})
            with closing(client):
                assert client.get("/jobs").status_code == 200
        revoked = run_cli([":tokens", "revoke", "ci"], cwd=workspace, data_dir=data_dir)
        assert revoked.returncode == 0, revoked.stderr
        for _ in range(40):
            response = httpx.get(f"{server.url}/jobs", timeout=30,
                                 headers={"Authorization": f"Bearer {ci}"})
            assert response.status_code == 401, "a worker still took a revoked token"
    finally:
        assert server.stop() == 0


def test_the_schedule_fires_each_tick_once_across_the_workers(workspace: Path,
                                                              data_dir: Path) -> None:
    write_job(workspace, "tick", 'schedule:\n  - cron: "@every 1s"\n',
              {"100_tick.sh": "echo tick\n"})
    with _workers(workspace, data_dir, 2) as server:
        def scheduled() -> list[tuple[str, str]]:
            response = httpx.get(f"{server.url}/runs", params={"job_id": "tick",
                                 "per_page": 200}, headers=DEV, timeout=30)
            assert response.status_code == 200, response.text
            return [(run["trigger"]["name"], run["trigger"]["fire_at"])
                    for run in response.json()
                    if (run.get("trigger") or {}).get("kind") == "schedule"]

        wait_until(lambda: len(scheduled()) >= 5, "five ticks", timeout=60)
        fires = scheduled()
        assert len(fires) == len(set(fires)), f"a tick fired twice: {sorted(fires)}"
        took = [line for line in server.log if "took the leader lease" in line]
        assert len(took) == 1, took
