"""A cluster replica that dies, or loses the Core DB: its runs stop, and end ``interrupted``.

Real ``flwd :serve`` replicas on one throw-away PostgreSQL, with short heartbeats and
leases (FLWD_CLUSTER_HEARTBEAT, FLWD_CLUSTER_LEASE):

- ``kill -9`` of a replica mid-run: its runs become ``interrupted`` within the lease
  (another replica reaps them, once), nothing of them survives on this host, and no
  run executed twice (each run's script records its start: once per run).
- a replica cut off from the database (its connections go through a proxy the test
  cuts): it stops its own run before the lease lapses, and another replica then
  finishes the run ``interrupted``; the run's processes were gone by then.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from flwd.store.postgres import PostgresStore
from tests._postgres import PORT, USER, Cluster
from tests.conftest import Server, processes_under, start_server, wait_until, write_job

DEV = {"Authorization": "Bearer dev-token"}
FAST = {"FLWD_CLUSTER_HEARTBEAT": "0.3", "FLWD_CLUSTER_LEASE": "5", "FLWD_GRACE": "1"}
#: The lease, plus a few heartbeats for a reaper to notice, plus slack for a loaded machine.
LAPSE_DEADLINE = 30.0


def _long_job(workspace: Path, tmp_path: Path, name: str = "long", extra: str = "") -> None:
    write_job(workspace, name, f"interpreter: bash\n{extra}",
              {"100_main.sh": f'echo "$FLWD_RUN_ID" >> {tmp_path / "started.txt"}\n'
                              "exec sleep 600\n"})


def _started(tmp_path: Path) -> list[str]:
    path = tmp_path / "started.txt"
    return path.read_text().split() if path.exists() else []


def test_kill_9_of_a_replica_interrupts_its_runs_once(
        workspace: Path, tmp_path: Path, postgres_dsn: str) -> None:
    _long_job(workspace, tmp_path)
    servers: list[Server] = []
    store = PostgresStore(postgres_dsn)
    try:
        for index in range(3):
            servers.append(start_server(workspace, tmp_path / f"data-{index}", "--dev", "--db",
                                        postgres_dsn, "--max-concurrent-runs", "2", **FAST))
        ids = [httpx.post(f"{servers[index % 3].url}/runs", headers=DEV, timeout=30,
                          json={"job_id": "long", "args": {}}).json()["id"]
               for index in range(6)]
        wait_until(lambda: sorted(_started(tmp_path)) == sorted(ids), "six runs executing")
        runs = {run_id: store.get_run(run_id) for run_id in ids}
        victim = next(server for server in servers
                      if server.process.pid == runs[ids[0]].owner_pid)
        doomed = [run_id for run_id, run in runs.items()
                  if run.owner_pid == victim.process.pid]
        assert doomed and all(processes_under(run_id) for run_id in doomed)
        victim.process.send_signal(signal.SIGKILL)
        victim.process.wait(30)

        def interrupted() -> bool:
            statuses = store.run_statuses(doomed)
            return all(statuses.get(run_id) == "interrupted" for run_id in doomed)

        begun = time.monotonic()
        wait_until(interrupted, "the dead replica's runs to be interrupted",
                   timeout=LAPSE_DEADLINE)
        assert time.monotonic() - begun < LAPSE_DEADLINE
        # Nothing of them survives on this host (the reaper here killed what was left).
        wait_until(lambda: not any(processes_under(run_id) for run_id in doomed),
                   "the dead replica's processes to be gone", timeout=15)
        for run_id in doomed:
            finishes = [event for event in store.read_events(run_id)
                        if event.type == "run.finish"]
            assert len(finishes) == 1, finishes
            assert "stopped renewing its lease" in finishes[0].data["error"]
        # The others go on, and nothing executed twice.
        statuses = store.run_statuses(ids)
        assert all(statuses[run_id] == "running" for run_id in ids if run_id not in doomed)
        assert Counter(_started(tmp_path)) == Counter(ids)
    finally:
        store.close()
        for server in servers:
            server.stop()


class _Proxy:
    """A Unix-socket proxy in front of the cluster's socket that the test can cut."""

    def __init__(self, target: str, directory: Path) -> None:
        self.target = target
        self.directory = directory
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(directory / f".s.PGSQL.{PORT}"))
        self.listener.listen(64)
        self.cut = threading.Event()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.cut.is_set():
                client.close()
                continue
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                upstream.connect(self.target)
            except OSError:
                client.close()
                upstream.close()
                continue
            with self._lock:
                self._pairs.append((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()

    def partition(self) -> None:
        """Drop every connection and refuse new ones (the database unreachable)."""
        self.cut.set()
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for end in pair:
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.partition()
        self.listener.close()


@pytest.fixture
def proxy(postgres_cluster: Cluster, tmp_path: Path) -> Iterator[_Proxy]:
    directory = tmp_path / "proxy"
    directory.mkdir()
    proxied = _Proxy(str(Path(postgres_cluster.socket_dir) / f".s.PGSQL.{PORT}"), directory)
    try:
        yield proxied
    finally:
        proxied.close()


def test_a_replica_cut_off_from_the_core_db_stops_its_run_before_its_lease_lapses(
        workspace: Path, tmp_path: Path, postgres_dsn: str, proxy: _Proxy) -> None:
    _long_job(workspace, tmp_path, extra="runs_on: [cut]\n")
    database = postgres_dsn.split("?")[0].rsplit("/", 1)[1]
    through_proxy = (f"postgresql://{USER}@/{database}?host="
                     f"{quote(str(proxy.directory), safe='')}&port={PORT}")
    store = PostgresStore(postgres_dsn)
    cut_off = start_server(workspace, tmp_path / "data-a", "--dev", "--db", through_proxy,
                           "--labels", "cut", **FAST)
    other = start_server(workspace, tmp_path / "data-b", "--dev", "--db", postgres_dsn, **FAST)
    try:
        run_id = httpx.post(f"{other.url}/runs", headers=DEV, timeout=30,
                            json={"job_id": "long", "args": {}}).json()["id"]
        wait_until(lambda: _started(tmp_path) == [run_id], "the run executing")
        assert store.get_run(run_id).owner_pid == cut_off.process.pid
        assert processes_under(run_id)
        proxy.partition()
        seen: dict[str, object] = {}

        def ended() -> bool:
            # The run's processes must be gone before the run is seen interrupted.
            alive = bool(processes_under(run_id))
            status = store.run_statuses([run_id]).get(run_id)
            if status == "interrupted":
                seen["alive_when_interrupted"] = alive
                return True
            return False

        wait_until(ended, "the cut-off replica's run to be interrupted", timeout=LAPSE_DEADLINE)
        assert seen["alive_when_interrupted"] is False
        finishes = [event for event in store.read_events(run_id) if event.type == "run.finish"]
        assert len(finishes) == 1 and finishes[0].data["status"] == "interrupted", finishes
        assert _started(tmp_path) == [run_id]  # never executed again
        assert cut_off.process.poll() is None  # the replica itself lives on
    finally:
        store.close()
        for server in (cut_off, other):
            server.stop()
