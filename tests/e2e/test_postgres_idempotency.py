"""Two ``flwd :serve`` on one PostgreSQL Core DB: an Idempotency-Key starts one run.

Both servers (each with its own data dir, sharing the install's ``idempotency.key``
as docs/scale-out.md says) are sent the same ``POST /runs`` with the same key at the
same moment, many times: each key starts exactly one run, and the other request is
answered as a replay of it (201, the same run, ``Idempotent-Replay: true``). Servers
that were not given the same ``idempotency.key`` never start a second run either, and
say why they cannot replay.
"""

from __future__ import annotations

import secrets
import threading
from pathlib import Path

import httpx

from tests.conftest import processes_under, start_server, wait_until, write_job

DEV = {"Authorization": "Bearer dev-token"}
#: How many keys are fired at both servers at once.
ROUNDS = 25
#: A bounded wait for the other request's thread: a broken server fails, it does not hang.
WAIT = 60.0


def _share_idempotency_key(*data_dirs: Path) -> None:
    """One install key in every data dir (what a cluster's operator copies, 0600)."""
    key = secrets.token_bytes(32)
    for data_dir in data_dirs:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = data_dir / "idempotency.key"
        path.write_bytes(key)
        path.chmod(0o600)


def test_one_key_fired_at_two_servers_at_once_starts_one_run(
        workspace: Path, data_dir: Path, tmp_path: Path, postgres_dsn: str) -> None:
    write_job(workspace, "noop", "interpreter: bash\n", {"100_main.sh": "true\n"})
    other_dir = tmp_path / "data-b"
    _share_idempotency_key(data_dir, other_dir)
    servers = [start_server(workspace, data_dir, "--dev", "--db", postgres_dsn),
               start_server(workspace, other_dir, "--dev", "--db", postgres_dsn)]
    clients = [httpx.Client(base_url=server.url, headers=DEV, timeout=WAIT)
               for server in servers]
    try:
        for client in clients:  # connected before the race: the requests leave together
            assert client.get("/healthz").is_success
        go = threading.Barrier(2)
        answers: dict[tuple[int, int], httpx.Response | BaseException] = {}

        def fire(index: int) -> None:
            for round_ in range(ROUNDS):
                try:
                    go.wait(WAIT)
                    answers[round_, index] = clients[index].post(
                        "/runs", json={"job_id": "noop", "args": {}},
                        headers={"Idempotency-Key": f"race-{round_}"})
                except BaseException as exc:  # reported by the main thread
                    answers[round_, index] = exc

        threads = [threading.Thread(target=fire, args=(index,)) for index in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT * ROUNDS)
        assert not any(thread.is_alive() for thread in threads)

        run_ids = set()
        for round_ in range(ROUNDS):
            pair = [answers[round_, index] for index in range(2)]
            assert all(isinstance(answer, httpx.Response) for answer in pair), pair
            responses = [answer for answer in pair if isinstance(answer, httpx.Response)]
            assert [response.status_code for response in responses] == [201, 201], \
                [response.text for response in responses]
            ids = {response.json()["id"] for response in responses}
            assert len(ids) == 1, f"key race-{round_} started {ids}"
            replays = sorted(response.headers.get("Idempotent-Replay", "")
                             for response in responses)
            assert replays == ["", "true"]  # one started it, the other is its replay
            run_ids |= ids
        assert len(run_ids) == ROUNDS

        # The Core DB holds exactly those runs; let them finish before the servers stop.
        def settled() -> bool:
            response = clients[0].get("/runs", params={"job_id": "noop",
                                                       "status": "queued,running"})
            return response.headers["X-Total-Count"] == "0"

        wait_until(settled, "the runs to finish")
        every = clients[1].get("/runs", params={"job_id": "noop", "per_page": 100})
        assert every.headers["X-Total-Count"] == str(ROUNDS)
        assert {run["id"] for run in every.json()} == run_ids
        assert {run["status"] for run in every.json()} == {"completed"}
    finally:
        for client in clients:
            client.close()
        codes = [server.stop() for server in servers]
    assert codes == [0, 0]
    assert not processes_under(f"FLWD_RUN_DIR={other_dir}")


def test_a_server_with_another_idempotency_key_says_so_and_starts_nothing(
        workspace: Path, data_dir: Path, tmp_path: Path, postgres_dsn: str) -> None:
    write_job(workspace, "noop", "interpreter: bash\n", {"100_main.sh": "true\n"})
    other_dir = tmp_path / "data-b"  # each server makes its own key
    servers = [start_server(workspace, data_dir, "--dev", "--db", postgres_dsn),
               start_server(workspace, other_dir, "--dev", "--db", postgres_dsn)]
    try:
        request = {"json": {"job_id": "noop", "args": {}}, "timeout": WAIT,
                   "headers": {**DEV, "Idempotency-Key": "deploy-1"}}
        first = httpx.post(f"{servers[0].url}/runs", **request)  # type: ignore[arg-type]
        assert first.status_code == 201, first.text
        again = httpx.post(f"{servers[1].url}/runs", **request)  # type: ignore[arg-type]
        assert again.status_code == 409, again.text
        problem = again.json()
        assert problem["code"] == "idempotency-key-conflict"
        assert "another idempotency.key" in problem["detail"], problem
        assert "same <data dir>/idempotency.key" in problem["detail"], problem  # the hint
        listed = httpx.get(f"{servers[1].url}/runs", params={"job_id": "noop"},
                           headers=DEV, timeout=WAIT)
        assert [run["id"] for run in listed.json()] == [first.json()["id"]]
        # Its own server still replays it.
        replay = httpx.post(f"{servers[0].url}/runs", **request)  # type: ignore[arg-type]
        assert replay.headers.get("Idempotent-Replay") == "true"
        assert replay.json()["id"] == first.json()["id"]

        def settled() -> bool:
            return httpx.get(f"{servers[0].url}/runs/{first.json()['id']}", headers=DEV,
                             timeout=WAIT).json()["status"] == "completed"

        wait_until(settled, "the run to finish")
    finally:
        codes = [server.stop() for server in servers]
    assert codes == [0, 0]
