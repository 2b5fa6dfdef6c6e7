"""Three real ``flwd :serve`` replicas on one PostgreSQL Core DB: what must happen once in
the cluster happens once.

- The scheduler: ``@every 1s`` fires each tick exactly once across the three (runs
  counted per trigger key); the leader killed with ``kill -9``, another takes over
  within the lease and no tick is fired twice. Pause and trigger-now on a follower act
  on the cluster, and ``GET /schedules`` says the same on every replica.
- Tokens: minted with ``flwd :tokens create --db``, a token works on every replica;
  revoked, every replica refuses it within the bound (``flwd.tokens.core_db.REFRESH``).
- Sources: a git source added through one replica is listed, completed and runnable on
  the others (each checks it out into its own data dir); removed through one, gone
  from all.

Each replica has its own data dir (as on separate machines) and the same workspace.
The leader lease lasts 2 s here (``FLWD_SCHEDULER_LEASE``) so a takeover is quick.
Every wait is a bounded poll on a condition (tests/conftest.py's wait_until).
"""

from __future__ import annotations

import itertools
import json
import re
import signal
import subprocess
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import (
    Server,
    processes_under,
    run_cli,
    start_server,
    wait_until,
    write_job,
)

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


@contextmanager
def replicas(workspace: Path, tmp_path: Path, dsn: str) -> Iterator[list[Server]]:
    """Three replicas, each with its own data dir, on one Core DB."""
    dirs = [tmp_path / f"replica-{index}" for index in range(3)]
    servers: list[Server] = []
    try:
        for folder in dirs:
            servers.append(start_server(workspace, folder, "--dev", "--db", dsn,
                                        "--allow-path", str(tmp_path / "allowed"),
                                        FLWD_SCHEDULER_LEASE=LEASE))
        yield servers
    finally:
        for server in servers:
            server.stop()
        for folder in dirs:
            wait_until(lambda folder=folder: not processes_under(f"FLWD_RUN_DIR={folder}"),
                       "the runs' processes of every replica to end", timeout=30)


@pytest.fixture
def cluster(workspace: Path, tmp_path: Path, postgres_dsn: str) -> Iterator[list[Server]]:
    """Three replicas firing ``tick`` every second."""
    write_job(workspace, "tick", 'schedule:\n  - cron: "@every 1s"\n',
              {"100_tick.sh": "echo tick\n"})
    with replicas(workspace, tmp_path, postgres_dsn) as servers:
        yield servers


def leader_gauge(server: Server) -> float:
    """The replica's ``flwd_scheduler_leader`` (1 while it holds the lease)."""
    response = httpx.get(f"{server.url}/metrics", headers=DEV, timeout=30)
    assert response.status_code == 200, response.text
    found = re.search(r"^flwd_scheduler_leader ([0-9.e+-]+)$", response.text, re.M)
    assert found, "no flwd_scheduler_leader"
    return float(found.group(1))


def test_every_tick_fires_once_and_a_killed_leader_is_replaced(cluster: list[Server]
                                                               ) -> None:
    url = cluster[0].url
    wait_until(lambda: len(scheduled(url)) >= 6, "six ticks", timeout=60)
    (leader,) = [server for server in cluster if leaders(server) == ["took"]]
    followers = [server for server in cluster if server is not leader]
    assert all(leaders(server) == [] for server in followers)
    # Which replica leads, as each one's metrics say (polled: a renewal late under load
    # lets the lease's own deadline pass for a moment, as it should).
    assert [leader_gauge(server) for server in followers] == [0.0, 0.0]
    wait_until(lambda: leader_gauge(leader) == 1.0, "the leader's gauge at 1", timeout=30)
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
    (new_leader,) = [server for server in followers if leaders(server) == ["took"]]
    wait_until(lambda: leader_gauge(new_leader) == 1.0, "the new leader's gauge", timeout=30)
    assert [leader_gauge(server) for server in followers if server is not new_leader] == [0.0]
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


def test_a_token_minted_once_works_on_every_replica_until_revoked(
        workspace: Path, tmp_path: Path, postgres_dsn: str) -> None:
    from flwd.tokens.core_db import REFRESH

    with replicas(workspace, tmp_path, postgres_dsn) as servers:
        minted = run_cli([":tokens", "create", "--name", "ci", "--scope", "runs:read",
                          "--db", postgres_dsn], cwd=workspace, data_dir=tmp_path / "cli")
        assert minted.returncode == 0, minted.stderr
        assert "the Core DB postgresql://" in minted.stderr
        bearer = {"Authorization": f"Bearer {minted.stdout.strip()}"}

        def status(server: Server) -> int:
            return httpx.get(f"{server.url}/runs", headers=bearer, timeout=30).status_code

        wait_until(lambda: all(status(server) == 200 for server in servers),
                   "the token to work on every replica", timeout=10 * REFRESH)
        listed = run_cli([":tokens", "list", "--json", "--db", postgres_dsn], cwd=workspace,
                         data_dir=tmp_path / "cli")
        assert [entry["name"] for entry in json.loads(listed.stdout)] == ["ci"]
        assert minted.stdout.strip() not in listed.stdout
        revoked = run_cli([":tokens", "revoke", "ci", "--db", postgres_dsn], cwd=workspace,
                          data_dir=tmp_path / "cli")
        assert revoked.returncode == 0, revoked.stderr
        # Refused by all within the bound (a few reloads; the bound is REFRESH).
        wait_until(lambda: all(status(server) == 401 for server in servers),
                   "every replica to refuse the revoked token", timeout=5 * REFRESH + 5)
        # Nothing of the token is in the data dirs: no tokens file was written.
        assert not any((tmp_path / f"replica-{index}" / "tokens.json").exists()
                       for index in range(3))


def test_a_tokens_file_is_imported_with_one_command(workspace: Path, tmp_path: Path,
                                                     postgres_dsn: str) -> None:
    data = tmp_path / "old"
    minted = run_cli([":tokens", "create", "--name", "old", "--scope", "*"], cwd=workspace,
                     data_dir=data)
    assert minted.returncode == 0, minted.stderr
    imported = run_cli([":tokens", "import", "--db", postgres_dsn], cwd=workspace,
                       data_dir=data)
    assert imported.returncode == 0, imported.stderr
    assert "imported 1 token(s)" in imported.stdout
    again = run_cli([":tokens", "import", "--db", postgres_dsn], cwd=workspace, data_dir=data)
    assert "kept 1 already there: old" in again.stdout
    with replicas(workspace, tmp_path, postgres_dsn) as servers:
        answer = httpx.get(f"{servers[1].url}/runs", timeout=30,
                           headers={"Authorization": f"Bearer {minted.stdout.strip()}"})
        assert answer.status_code == 200, answer.text
    refused = run_cli([":tokens", "import"], cwd=workspace, data_dir=data)
    assert refused.returncode == 2 and "shared Core DB" in refused.stderr


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.email=t@example.org", "-c", "user.name=t",
                           *args], cwd=repo, check=True, capture_output=True,
                          text=True).stdout.strip()


def complete(workspace: Path, data_dir: Path, dsn: str, *words: str) -> list[str]:
    """The inserts ``flwd __complete`` offers (as a shell asks) on a replica's host."""
    from tests.conftest import FLWD, flwd_env

    done = subprocess.run([*FLWD, "__complete", *words], cwd=workspace, timeout=60,
                          env=flwd_env(data_dir, FLWD_DB=dsn), capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stderr
    return [json.loads(line)["insert"] for line in done.stdout.splitlines()]


def test_a_source_added_on_one_replica_runs_on_the_others(
        workspace: Path, tmp_path: Path, postgres_dsn: str) -> None:
    repo = tmp_path / "allowed" / "repo"
    job = repo / "scripts" / "gitjob"
    (job / "config.d").mkdir(parents=True)
    (job / "config.d" / "config.yaml").write_text("job:\n  name: Git job\n")
    (job / "100_run.sh").write_text('echo "from git"\n')
    git(repo.parent, "init", "-q", "-b", "main", str(repo))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "one")
    with replicas(workspace, tmp_path, postgres_dsn) as servers:
        added = httpx.post(f"{servers[0].url}/sources", headers=DEV, timeout=60, json={
            "type": "git", "name": "tools", "url": f"file://{repo}", "ref": "main"})
        assert added.status_code == 201, added.text

        def listed(server: Server) -> list[str]:
            sources = httpx.get(f"{server.url}/sources", headers=DEV, timeout=30).json()
            return [source["name"] for source in sources
                    if source.get("status", "ready") == "ready"]

        wait_until(lambda: all(listed(server) == ["tools"] for server in servers),
                   "every replica to have the source", timeout=60)
        # Completion on replica 1's host offers the source's jobs (from what its server
        # serves: the registry's rows name another host's checkout).
        wait_until(lambda: "gitjob" in complete(workspace, tmp_path / "replica-1",
                                                postgres_dsn, "2", "tools", ""),
                   "completion to offer the source's job", timeout=30)
        created = httpx.post(f"{servers[2].url}/runs", headers=DEV, timeout=60, json={
            "job_id": "gitjob", "args": {}, "source": {"name": "tools"}})
        assert created.status_code == 201, created.text
        run_id = created.json()["id"]
        run = wait_until(lambda: (found := httpx.get(
            f"{servers[2].url}/runs/{run_id}", headers=DEV, timeout=30).json())["status"]
            not in ("queued", "running") and found, "the run to end", timeout=60)
        assert run["status"] == "completed", run
        checkout = run["provenance"]["source"]["checkout_path"]
        assert checkout.startswith(str(tmp_path / "replica-2")), checkout
        removed = httpx.delete(f"{servers[1].url}/sources/tools", headers=DEV, timeout=60)
        assert removed.status_code == 204, removed.text
        wait_until(lambda: all(listed(server) == [] for server in servers),
                   "every replica to drop the source", timeout=60)


def test_a_server_migrates_an_older_schema_before_reading_its_tokens(
        workspace: Path, tmp_path: Path, postgres_dsn: str) -> None:
    # A Core DB at schema 11 (before the tokens table): the server migrates it as it
    # starts, as before, instead of refusing the older schema when it reads the tokens.
    import psycopg

    from flwd.store import SCHEMA_VERSION, _pg_schema

    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        for statement in _pg_schema.statements(_pg_schema.BASELINE):
            conn.execute(statement)
        for statement in _pg_schema.statements(_pg_schema.MIGRATIONS[0]):
            conn.execute(statement)
        conn.execute("INSERT INTO schema_version(version) VALUES (11)")
    server = start_server(workspace, tmp_path / "data-old", "--dev", "--db", postgres_dsn)
    try:
        assert httpx.get(f"{server.url}/runs", headers=DEV, timeout=30).status_code == 200
    finally:
        assert server.stop() == 0
    with psycopg.connect(postgres_dsn) as conn:
        (version,) = conn.execute("SELECT version FROM schema_version").fetchone()
    assert version == SCHEMA_VERSION


def _interval(run: dict[str, Any]) -> tuple[float, float]:
    def parse(text: str) -> float:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()

    return parse(run["started_at"]), parse(run["finished_at"])


def test_overlap_holds_for_runs_another_replica_executes(
        workspace: Path, tmp_path: Path, postgres_dsn: str) -> None:
    # The leader starts the schedule's runs, but only replica B may execute them
    # (runs_on): their ends are journaled by B and never reach the leader's hub. With
    # overlap: skip no two of them may run at once (they did: each tick found the last
    # run not live in its own process, and fired).
    write_job(workspace, "slow", 'runs_on: [b]\nschedule:\n  - cron: "@every 1s"\n'
              "    overlap: skip\n", {"100_slow.sh": "sleep 2.5\n"})
    servers: list[Server] = []
    try:
        servers.append(start_server(workspace, tmp_path / "a", "--dev", "--db", postgres_dsn,
                                    "--labels", "a", FLWD_SCHEDULER_LEASE=LEASE))
        leader = servers[0]
        wait_until(lambda: leaders(leader) == ["took"], "replica a to lead", timeout=30)
        servers.append(start_server(workspace, tmp_path / "b", "--dev", "--db", postgres_dsn,
                                    "--labels", "b", FLWD_SCHEDULER_LEASE=LEASE))

        def finished() -> list[dict[str, Any]]:
            response = httpx.get(f"{leader.url}/runs", params={"job_id": "slow",
                                 "per_page": 200}, headers=DEV, timeout=30)
            assert response.status_code == 200, response.text
            return [run for run in response.json() if run["status"] in (
                "completed", "failed", "canceled", "interrupted")]

        done = wait_until(lambda: (runs := finished()) and len(runs) >= 3 and runs,
                          "three runs of the slow schedule", timeout=90)
        assert {run["status"] for run in done} == {"completed"}
        spans = sorted(_interval(run) for run in done)
        for (_, ended), (started, _) in itertools.pairwise(spans):
            assert started >= ended, f"two runs at once: {spans}"
    finally:
        for server in servers:
            server.stop()
