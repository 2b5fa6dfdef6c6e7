"""Events and cancels across replicas (issue 18, item 4): real ``flwd :serve --db``
replicas on one throw-away PostgreSQL database.

A run executing on replica B is read from replica A — its SSE stream is the journal,
every event once, in order, through ``run.finish``, also with thousands of output lines,
resumed with ``Last-Event-ID``, and when A's LISTEN connection is killed mid-run (its
notifications lost) — and cancelled through A: B stops it (its process tree is gone)
and the run is ``canceled`` with A's reason.
"""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import (
    Server,
    processes_under,
    run_cli,
    sse_events,
    start_server,
    wait_until,
    write_job,
)

DEV = {"Authorization": "Bearer dev-token"}
#: A bounded wait for a stream or a run (a broken cluster fails, it never hangs).
WAIT = 60.0
#: Output lines of the chatty run (several journal batches, pages and SSE writes).
LINES = 3000


@pytest.fixture
def replicas(workspace: Path, data_dir: Path, tmp_path: Path, postgres_dsn: str
             ) -> Iterator[tuple[Server, Server]]:
    """Replicas A and B of one Core DB, each with its own data dir."""
    gate = tmp_path / "gate"
    # Prints LINES lines, waits for the test's gate file (the run stays live while A
    # follows it), prints as many again.
    # Both run on B (labelled b): runs are a queue any replica may claim, and these tests
    # follow and cancel from A a run executing on B.
    write_job(workspace, "chatty", "interpreter: bash\nruns_on: [b]\n", {"100_main.sh": (
        f'for i in $(seq 1 {LINES}); do echo "first $i"; done\n'
        f'while [ ! -e "{gate}" ]; do sleep 0.05; done\n'
        f'for i in $(seq 1 {LINES}); do echo "second $i"; done\n')})
    write_job(workspace, "long", "interpreter: bash\nruns_on: [b]\n", {"100_main.sh": (
        "sleep 300 &\nwait\n")})
    servers: list[Server] = []
    try:
        for folder, labels in ((data_dir, "a"), (tmp_path / "data-b", "b")):
            servers.append(start_server(workspace, folder, "--dev", "--db", postgres_dsn,
                                        "--labels", labels))
        yield servers[0], servers[1]
    finally:
        for server in servers:
            server.stop()


def _post(server: Server, job: str) -> str:
    response = httpx.post(f"{server.url}/runs", headers=DEV, timeout=WAIT,
                          json={"job_id": job, "args": {}})
    assert response.status_code == 201, response.text
    run_id: str = response.json()["id"]
    return run_id


def _journal(server: Server, run_id: str) -> list[dict[str, Any]]:
    """The run's events as the journal holds them (the ndjson export, after the run)."""
    text = httpx.get(f"{server.url}/runs/{run_id}/events.ndjson", headers=DEV,
                     timeout=WAIT).text
    return [json.loads(line) for line in text.splitlines() if line]


def _run(server: Server, run_id: str) -> dict[str, Any]:
    run: dict[str, Any] = httpx.get(f"{server.url}/runs/{run_id}", headers=DEV,
                                    timeout=WAIT).json()
    return run


def _metric(server: Server, series: str) -> float:
    """The value of one series of the server's ``/metrics``."""
    text = httpx.get(f"{server.url}/metrics", headers=DEV, timeout=WAIT).text
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name == series:
            return float(value)
    raise AssertionError(f"no series {series} in /metrics")


class _Reader(threading.Thread):
    """An SSE client of ``GET /runs/{id}/events`` in its own thread (events as they come)."""

    def __init__(self, server: Server, run_id: str | None, *,
                 last_event_id: int | None = None, stop_after: int | None = None,
                 until_finish_of: str | None = None) -> None:
        super().__init__(daemon=True)
        # No run: the global stream (every run's events, from now).
        self.url = (f"{server.url}/runs/{run_id}/events" if run_id is not None
                    else f"{server.url}/events")
        self.until_finish_of = until_finish_of
        self.started = threading.Event()
        self.headers = dict(DEV)
        if last_event_id is not None:
            self.headers["Last-Event-ID"] = str(last_event_id)
        self.stop_after = stop_after
        self.events: list[dict[str, Any]] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with httpx.stream("GET", self.url, headers=self.headers,
                              timeout=httpx.Timeout(WAIT)) as response:
                assert response.status_code == 200, response.read()
                self.started.set()
                for event in sse_events(response.iter_lines()):
                    self.events.append(event)
                    if self.stop_after is not None and len(self.events) >= self.stop_after:
                        return
                    if (event["type"] == "run.finish"
                            and event["run_id"] == self.until_finish_of):
                        return
        except BaseException as exc:  # reported by the test's thread
            self.error = exc
        finally:
            self.started.set()

    def result(self) -> list[dict[str, Any]]:
        self.join(WAIT)
        assert not self.is_alive(), "the stream did not end"
        if self.error is not None:
            raise self.error
        return self.events


def _lines(events: list[dict[str, Any]]) -> int:
    return sum(1 for event in events if event["type"] == "step.log")


def test_a_run_of_b_streamed_from_a_is_the_journal_every_event_once_in_order(
        replicas: tuple[Server, Server], tmp_path: Path) -> None:
    a, b = replicas
    run_id = _post(b, "chatty")
    reader = _Reader(a, run_id)
    reader.start()
    # A follows the live run of B: the first half is read while the run waits.
    wait_until(lambda: _lines(reader.events) >= LINES or reader.error, "the first half via A")
    (tmp_path / "gate").touch()
    streamed = reader.result()
    assert streamed[-1]["type"] == "run.finish"
    assert streamed[-1]["data"]["status"] == "completed"
    journal = _journal(b, run_id)
    assert streamed == journal[:len(streamed)] and len(streamed) == len(journal)
    seqs = [event["seq"] for event in streamed]
    assert seqs == sorted(set(seqs))  # every event once, in order
    assert _lines(streamed) == 2 * LINES
    # A was told of B's commits (it did not just poll).
    assert _metric(a, "flwd_cluster_listening") == 1
    assert _metric(a, 'flwd_cluster_notifications_total{channel="events"}') > 0
    # Resumed from A with Last-Event-ID in the middle: exactly the rest.
    middle = streamed[len(streamed) // 2]["seq"]
    resumed = _Reader(a, run_id, last_event_id=middle)
    resumed.start()
    assert resumed.result() == [e for e in journal if e["seq"] > middle]


def test_a_resume_from_a_while_the_run_is_live_on_b_has_no_gap_and_no_duplicate(
        replicas: tuple[Server, Server], tmp_path: Path) -> None:
    a, b = replicas
    run_id = _post(b, "chatty")
    first = _Reader(a, run_id, stop_after=LINES // 2)  # a client that drops mid-run
    first.start()
    head = first.result()
    resumed = _Reader(a, run_id, last_event_id=head[-1]["seq"])
    resumed.start()
    wait_until(lambda: resumed.events or resumed.error, "the resumed stream")
    (tmp_path / "gate").touch()
    assert head + resumed.result() == _journal(b, run_id)


def test_lost_notifications_never_lose_or_duplicate_events(
        replicas: tuple[Server, Server], tmp_path: Path, postgres_dsn: str) -> None:
    import psycopg

    a, b = replicas
    run_id = _post(b, "chatty")
    reader = _Reader(a, run_id)
    reader.start()
    wait_until(lambda: reader.events or reader.error, "the stream via A")
    # Every replica's LISTEN connection dropped mid-run: what is committed until they
    # are back is announced to nobody.
    with psycopg.connect(postgres_dsn, autocommit=True) as admin:
        dropped = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name"
            " = 'flwd-listen' AND datname = current_database()").fetchall()
    assert dropped == [(True,), (True,)]
    (tmp_path / "gate").touch()
    streamed = reader.result()
    assert streamed == _journal(b, run_id) and streamed[-1]["type"] == "run.finish"
    assert _lines(streamed) == 2 * LINES
    for server in (a, b):  # both listen again
        wait_until(lambda server=server: _metric(server, "flwd_cluster_listen_connects_total")
                   == 2 and _metric(server, "flwd_cluster_listening") == 1,
                   "the LISTEN connection to be made again")


def test_a_cancel_sent_to_a_stops_the_run_live_on_b(
        replicas: tuple[Server, Server], tmp_path: Path) -> None:
    a, b = replicas
    run_id = _post(b, "long")
    wait_until(lambda: _run(b, run_id)["status"] == "running", "the long run on B")
    wait_until(lambda: processes_under(run_id), "the run's processes on B")
    reader = _Reader(a, run_id)
    reader.start()
    response = httpx.post(f"{a.url}/runs/{run_id}:cancel", headers=DEV, timeout=WAIT,
                          json={"reason": "stopped through A"})
    assert response.status_code == 202, response.text
    run = wait_until(lambda: (r := _run(a, run_id))["status"] not in ("queued", "running")
                     and r, "the run to stop")
    assert run["status"] == "canceled"
    events = reader.result()
    assert events == _journal(b, run_id)
    canceled = [e for e in events if e["type"] == "run.canceled"]
    assert canceled and canceled[0]["data"]["reason"] == "stopped through A", events
    assert canceled[0]["data"]["by"] == "api:dev", canceled
    assert _metric(b, "flwd_cluster_cancels_taken_total") == 1
    assert events[-1]["type"] == "run.finish"
    # B's process tree of the run is gone (its steps' env names the run).
    assert wait_until(lambda: not processes_under(run_id), "the run's processes to go", 30)


def test_a_cancel_of_a_finished_run_through_a_is_answered_as_finished(
        replicas: tuple[Server, Server]) -> None:
    a, b = replicas
    run_id = _post(b, "long")
    wait_until(lambda: _run(b, run_id)["status"] == "running", "the long run on B")
    assert httpx.post(f"{b.url}/runs/{run_id}:cancel", headers=DEV,
                      timeout=WAIT).status_code == 202
    wait_until(lambda: _run(a, run_id)["status"] == "canceled", "the run to stop")
    again = httpx.post(f"{a.url}/runs/{run_id}:cancel", headers=DEV, timeout=WAIT)
    assert again.status_code == 200 and again.json()["status"] == "canceled"




def test_the_cli_on_the_core_db_cancels_a_run_of_a_replica(
        replicas: tuple[Server, Server], workspace: Path, tmp_path: Path,
        postgres_dsn: str) -> None:
    _, b = replicas
    run_id = _post(b, "long")
    wait_until(lambda: processes_under(run_id), "the run's processes on B")
    # Another data dir (no server of its own): the request goes through the Core DB.
    done = run_cli([":cancel", run_id, "--db", postgres_dsn], cwd=workspace,
                   data_dir=tmp_path / "data-cli")
    assert done.returncode == 0, done.stderr
    wait_until(lambda: _run(b, run_id)["status"] == "canceled", "the run to stop")
    canceled = [e for e in _journal(b, run_id) if e["type"] == "run.canceled"]
    assert canceled[0]["data"]["by"] == "cli"
    assert wait_until(lambda: not processes_under(run_id), "the run's processes to go", 30)


def test_a_cancel_through_a_of_a_run_whose_replica_died_marks_it_interrupted(
        replicas: tuple[Server, Server]) -> None:
    a, b = replicas
    run_id = _post(b, "long")
    wait_until(lambda: processes_under(run_id), "the run's processes on B")
    b.stop(signal.SIGKILL)
    # No replica takes a request for it: A recovers it, as a server on its host does.
    response = httpx.post(f"{a.url}/runs/{run_id}:cancel", headers=DEV, timeout=WAIT)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "interrupted"
    assert wait_until(lambda: not processes_under(run_id), "the run's processes to go", 30)


def test_the_global_stream_of_a_carries_the_runs_of_b(
        replicas: tuple[Server, Server], tmp_path: Path) -> None:
    a, b = replicas
    everything = _Reader(a, None)
    everything.start()
    assert everything.started.wait(WAIT)
    run_id = _post(b, "chatty")
    everything.until_finish_of = run_id  # before the run can finish (it waits for the gate)
    (tmp_path / "gate").touch()
    events = everything.result()
    seqs = [event["seq"] for event in events]
    assert seqs == sorted(set(seqs))  # in order, each once
    assert [e for e in events if e["run_id"] == run_id] == _journal(b, run_id)
