"""History filters end to end: ``GET /runs`` on a real server (``status`` lists, a time range,
``arg.<name>=<value>``, secrets, hostile queries) and ``flwd :runs --arg/--since/--until``,
local and remote (``--server``)."""

from __future__ import annotations

import json
import select
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Server, run_cli, write_job

DEV = {"Authorization": "Bearer dev-token"}
GREET = """interpreter: bash
argspec:
  args:
    - {name: name, type: string, required: true}
    - {name: count, type: integer, default: 1}
    - {name: loud, type: boolean, default: false}
    - {name: tags, type: array}
    - {name: meta, type: object}
    - {name: key, type: string, format: secret}
"""
#: (args of each run, in the order they are started); the first fails.
RUNS: list[dict[str, Any]] = [
    {"name": "fail", "count": 3},
    {"name": "world", "count": 5, "loud": True, "tags": ["a", "b c"], "meta": {"env": "prod"},
     "key": "hunter2-the-secret"},
    {"name": "wörld ✓", "tags": ["b c"], "meta": {"env": "dev"}},
    {"name": "world", "count": 7, "key": "another-secret"},
]


def start(server: Server, args: dict[str, Any]) -> dict[str, Any]:
    created = httpx.post(f"{server.url}/runs", json={"job_id": "greet", "args": args},
                         headers=DEV, timeout=30)
    assert created.status_code == 201, created.text
    run: dict[str, Any] = created.json()
    with httpx.stream("GET", f"{server.url}/runs/{run['id']}/events", headers=DEV,
                      timeout=60) as response:
        for _ in response.iter_lines():
            pass  # the stream ends with the run
    return run


@pytest.fixture
def history(server_factory: Any, workspace: Path) -> tuple[Server, list[str], list[str]]:
    """A server, the ids of RUNS (oldest first) and their created_at."""
    write_job(workspace, "greet", GREET,
              {"100_main.sh": '[ "$name" != fail ] || exit 3\necho "hi $name"\n'})
    server = server_factory("--dev")
    runs = [start(server, args) for args in RUNS]
    return server, [run["id"] for run in runs], [run["created_at"] for run in runs]


def listed(server: Server, query: str | list[tuple[str, str]]) -> tuple[list[str], int]:
    response = httpx.get(f"{server.url}/runs", params=query, headers=DEV, timeout=30)
    assert response.status_code == 200, response.text
    return [run["id"] for run in response.json()], int(response.headers["X-Total-Count"])


def refused(server: Server, query: str | list[tuple[str, str]]) -> dict[str, Any]:
    response = httpx.get(f"{server.url}/runs", params=query, headers=DEV, timeout=30)
    assert response.status_code == 400, response.text
    problem: dict[str, Any] = response.json()
    assert problem["code"] == "invalid-request" and problem["errors"]
    return problem


def test_filters_by_argument_values(history: tuple[Server, list[str], list[str]]) -> None:
    server, ids, _ = history
    first, world, unicode, world7 = ids
    assert listed(server, "arg.name=world") == ([world7, world], 2)
    assert listed(server, [("arg.name", "wörld ✓")]) == ([unicode], 1)
    assert listed(server, "job_id=greet&arg.count=5") == ([world], 1)
    assert listed(server, "arg.count=1") == ([unicode], 1)  # its default, resolved
    assert listed(server, "arg.loud=true") == ([world], 1)
    assert listed(server, "arg.tags=b c") == ([unicode, world], 2)
    assert listed(server, "arg.tags=a&arg.tags=b c") == ([world], 1)
    assert listed(server, "arg.meta=env=dev") == ([unicode], 1)
    assert listed(server, "arg.name=world&arg.count=7") == ([world7], 1)
    assert listed(server, "arg.name=nobody") == ([], 0)
    assert listed(server, "arg.name=world&per_page=1&page=2") == ([world], 2)
    assert listed(server, "arg.name=fail&status=failed") == ([first], 1)
    # Runs show their arguments for "edit and re-run" — a secret as a mark, never its value.
    run = httpx.get(f"{server.url}/runs/{world}", headers=DEV, timeout=30).json()
    assert run["result"]["resolved_args"]["key"] == "[secret]"
    assert run["result"]["resolved_args"]["tags"] == ["a", "b c"]
    assert "hunter2" not in json.dumps(httpx.get(f"{server.url}/runs", headers=DEV).json())


def test_a_secret_argument_is_never_a_filter(history: tuple[Server, list[str], list[str]]
                                             ) -> None:
    server, _, _ = history
    problem = refused(server, "job_id=greet&arg.key=hunter2-the-secret")
    assert problem["errors"] == [{
        "arg": "arg.key", "message": "key is a secret argument of greet: its value is never "
                                     "stored, so runs cannot be filtered by it"}]
    assert "hunter2" not in problem["detail"]
    # Without the job, nothing says it is secret: it matches nothing, whatever the value.
    for value in ("hunter2-the-secret", "[secret]"):
        assert listed(server, [("arg.key", value)]) == ([], 0)


def test_status_lists_and_a_time_range(history: tuple[Server, list[str], list[str]]) -> None:
    server, ids, created = history
    first, world, unicode, world7 = ids
    assert listed(server, "status=failed") == ([first], 1)
    assert listed(server, "status=failed&status=completed") == ([world7, unicode, world, first], 4)
    assert listed(server, "status=failed,canceled") == ([first], 1)
    assert listed(server, [("since", created[1])]) == ([world7, unicode, world], 3)
    assert listed(server, [("since", created[1]), ("until", created[3])]) == ([unicode, world], 2)
    # The same instant in another zone.
    shifted = datetime.fromisoformat(created[2]).astimezone(timezone(timedelta(hours=5)))
    assert listed(server, [("until", shifted.isoformat())]) == ([world, first], 2)
    assert listed(server, "since=2999-01-01T00:00:00Z") == ([], 0)
    assert listed(server, "since=2999-01-01T00:00:00Z&until=2000-01-01T00:00:00Z") == ([], 0)


def test_runs_by_what_started_them(server_factory: Any, workspace: Path) -> None:
    """``trigger=``: a schedule's runs (its scheduler fires them for real), one schedule's,
    a webhook's, and the runs the API started."""
    write_job(workspace, "tick", 'schedule:\n  - {cron: "@every 1s", name: ticker}\n',
              {"100_tick.sh": "echo tick\n"})
    write_job(workspace, "greet", GREET, {"100_main.sh": 'echo "hi $name"\n'})
    server = server_factory("--dev")
    mine = start(server, {"name": "by hand"})
    deadline = time.monotonic() + 60
    while not (fired := listed(server, "trigger=schedule")[0]):
        assert time.monotonic() < deadline, "the schedule never fired"
        select.select([], [], [], 0.1)
    response = httpx.get(f"{server.url}/runs", params={"trigger": "schedule:ticker"},
                         headers=DEV, timeout=30)
    assert response.status_code == 200 and response.json(), response.text
    assert {(run["job_id"], run["trigger"]["kind"], run["trigger"]["name"])
            for run in response.json()} == {("tick", "schedule", "ticker")}
    assert mine["id"] not in fired
    assert listed(server, "trigger=none") == ([mine["id"]], 1)
    assert listed(server, "trigger=schedule:nope") == ([], 0)
    assert listed(server, "trigger=hook") == ([], 0)
    assert refused(server, "trigger=cron")["errors"] == [{
        "arg": "trigger", "message": "'cron' is not a trigger kind: use schedule, hook, none "
                                     "(or KIND:NAME)"}]


def test_hostile_queries_are_clear_400s(history: tuple[Server, list[str], list[str]]) -> None:
    server, _, _ = history
    assert refused(server, "arg.=x")["errors"][0] == {
        "arg": "arg.", "message": "name the argument: arg.NAME=VALUE"}
    many = refused(server, [(f"arg.a{index}", "x") for index in range(17)])
    assert "17 argument filters: at most 16" in many["errors"][0]["message"]
    huge = refused(server, [("arg.name", "x" * 2000)])
    assert huge["errors"][0]["arg"] == "arg.name" and "x" * 100 not in json.dumps(huge)
    assert refused(server, "since=yesterday")["errors"][0]["arg"] == "since"
    assert refused(server, "until=2026-02-30T00:00:00Z")["errors"][0]["arg"] == "until"
    assert refused(server, "status=done")["errors"][0]["arg"] == "status"
    assert refused(server, [("arg.ná", "x")])["errors"][0]["arg"] == "arg.ná"
    assert listed(server, [("arg.name", "𝄞" * 1000)]) == ([], 0)
    both = refused(server, "status=done&since=x&arg.=1")
    assert [error["arg"] for error in both["errors"]] == ["status", "since", "arg."]


def test_the_cli_filters_locally_and_through_a_server(
        history: tuple[Server, list[str], list[str]], workspace: Path, data_dir: Path) -> None:
    server, ids, created = history
    first, world, unicode, world7 = ids

    def runs(*flags: str, **env: str) -> list[str]:
        done = run_cli([":runs", "--json", *flags], cwd=workspace, data_dir=data_dir, **env)
        assert done.returncode == 0, done.stderr
        return [run["id"] for run in json.loads(done.stdout)]

    remote = {"FLWD_SERVER": server.url, "FLWD_TOKEN": "dev-token"}
    for env in ({}, remote):
        assert runs("--arg", "name=world", **env) == [world7, world]
        assert runs("--arg", "tags=a", "--arg", "tags=b c", **env) == [world]
        assert runs("--arg", "meta=env=dev", "--job", "greet", **env) == [unicode]
        assert runs("--since", created[1], "--until", created[3], **env) == [unicode, world]
        assert runs("--status", "failed", "--arg", "count=3", **env) == [first]
    bad = run_cli([":runs", "--since", "last week"], cwd=workspace, data_dir=data_dir)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert "invalid run filter since: 'last week' is not an RFC 3339" in bad.stderr
    no_value = run_cli([":runs", "--arg", "name"], cwd=workspace, data_dir=data_dir)
    assert no_value.returncode == 2 and "--arg 'name' is not NAME=VALUE" in no_value.stderr
    secret = run_cli([":runs", "--job", "greet", "--arg", "key=x"], cwd=workspace,
                     data_dir=data_dir, **remote)
    assert secret.returncode == 2 and "key is a secret argument of greet" in secret.stderr
