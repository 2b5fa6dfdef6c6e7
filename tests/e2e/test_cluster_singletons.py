"""Three real ``flwd :serve`` replicas on one PostgreSQL Core DB: what must happen once in
the cluster happens once.

- The scheduler: ``@every 1s`` fires each tick exactly once across the three (runs
  counted per trigger key); the leader killed with ``kill -9``, another takes over
  within the lease and no tick is fired twice. Pause and trigger-now on a follower act
  on the cluster, and ``GET /schedules`` says the same on every replica.

Each replica has its own data dir (as on separate machines) and the same workspace.
The leader lease lasts 2 s here (``FLWD_SCHEDULER_LEASE``) so a takeover is quick.
Every wait is a bounded poll on a condition (tests/conftest.py's wait_until).
"""

from __future__ import annotations

import json
import signal
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Server, processes_under, start_server, wait_until, write_job

DEV = {"Authorization": "Bearer dev-token"}
LEASE = "2"


def fire_time(run: dict[str, Any]) -> float:
    text = run["trigger"]["fire_at"]
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def key(run: dict[str, Any]) -> tuple[str, str]:
    """A scheduled run's fire, as its trigger key names it: (schedule, fire time)."""
    return run["trigger"]["name"], run["trigger"]["fire_at"]


def scheduled(url: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{url}/runs", params={"job_id": "tick", "per_page": 200},
                         headers=DEV, timeout=30)
    assert response.status_code == 200, response.text
    return [run for run in response.json()
            if (run.get("trigger") or {}).get("kind") == "schedule"
            and not run["trigger"].get("manual")]


def leaders(server: Server) -> list[str]:
    """What the replica's log says of the leader lease, in order ("took", "lost")."""
    said = []
    for line in list(server.log):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        message = str(record.get("msg", ""))
        if "the leader lease" in message:
            said.append(message.split()[1])
    return said


@pytest.fixture
def cluster(workspace: Path, tmp_path: Path, postgres_dsn: str) -> Iterator[list[Server]]:
    write_job(workspace, "tick", 'schedule:\n  - cron: "@every 1s"\n',
              {"100_tick.sh": "echo tick\n"})
    dirs = [tmp_path / f"replica-{index}" for index in range(3)]
    servers = [start_server(workspace, folder, "--dev", "--db", postgres_dsn,
                            FLWD_SCHEDULER_LEASE=LEASE) for folder in dirs]
    try:
        yield servers
    finally:
        for server in servers:
            server.stop()
        for folder in dirs:
            wait_until(lambda folder=folder: not processes_under(f"FLWD_RUN_DIR={folder}"),
                       "the runs' processes of every replica to end", timeout=30)


def test_every_tick_fires_once_and_a_killed_leader_is_replaced(cluster: list[Server]
                                                               ) -> None:
    url = cluster[0].url
    wait_until(lambda: len(scheduled(url)) >= 6, "six ticks", timeout=60)
    (leader,) = [server for server in cluster if leaders(server) == ["took"]]
    followers = [server for server in cluster if server is not leader]
    assert all(leaders(server) == [] for server in followers)
    before = scheduled(url)
    keys = Counter(key(run) for run in before)
    assert len(before) == len(keys), "a tick fired twice"
    fires = sorted(fire_time(run) for run in before)
    assert fires == [fires[0] + index for index in range(len(fires))], "a tick was lost"

    leader.process.send_signal(signal.SIGKILL)
    leader.process.wait(timeout=30)
    killed_at = datetime.now(UTC).timestamp()
    wait_until(lambda: any(leaders(server) == ["took"] for server in followers),
               "a follower to take the lease over", timeout=30)
    wait_until(lambda: [run for run in scheduled(followers[0].url)
                        if fire_time(run) > killed_at + 2], "ticks after the takeover",
               timeout=60)
    after = scheduled(followers[0].url)
    keys = Counter(key(run) for run in after)
    assert max(keys.values()) == 1, f"a tick fired twice: {keys.most_common(3)}"
    assert {key(run) for run in before} <= set(keys)


def view(server: Server) -> dict[str, Any]:
    response = httpx.get(f"{server.url}/schedules/tick", headers=DEV, timeout=30)
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


def test_pause_and_trigger_on_a_follower_act_on_the_cluster(cluster: list[Server]) -> None:
    wait_until(lambda: len(scheduled(cluster[0].url)) >= 2, "two ticks", timeout=60)
    leader = next(server for server in cluster if leaders(server) == ["took"])
    follower = next(server for server in cluster if server is not leader)
    paused = httpx.post(f"{follower.url}/schedules/tick:pause", headers=DEV, timeout=30)
    assert paused.status_code == 200, paused.text
    # The leader reads the pause at its next pass (each tick's) and records a skip.
    wait_until(lambda: (view(leader)["last_fire"] or {}).get("outcome") == "skipped:paused",
               "the leader to skip a paused tick", timeout=30)
    settled = len(scheduled(leader.url))
    manual = httpx.post(f"{follower.url}/schedules/tick:trigger", headers=DEV, timeout=30)
    assert manual.status_code == 201, manual.text
    run = httpx.get(f"{leader.url}/runs/{manual.json()['id']}", headers=DEV, timeout=30).json()
    assert run["trigger"]["manual"] is True
    views = [view(server) for server in cluster]
    assert {(v["status"], v["paused"]) for v in views} == {("paused", True)}
    nexts = [fire_time({"trigger": {"fire_at": v["next_fires"][0]["utc"]}}) for v in views]
    assert max(nexts) - min(nexts) <= 2  # the same, but for the seconds between the reads
    resumed = httpx.post(f"{cluster[2].url}/schedules/tick:resume", headers=DEV, timeout=30)
    assert resumed.status_code == 200, resumed.text
    assert len(scheduled(leader.url)) == settled  # nothing fired while it was paused
    wait_until(lambda: len(scheduled(leader.url)) > settled, "a tick after the resume",
               timeout=30)
