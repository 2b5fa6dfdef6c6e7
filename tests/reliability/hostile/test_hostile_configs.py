"""Hostile workspaces: a YAML bomb among the configs, and a config that claims another
job's id (issue 11 items 3 and 13), through the real CLI and a real ``flwd :serve``.

The bomb is the 700-byte "billion laughs": on the code before the bounded loader
``flwd :jobs`` took 49 s and 5.5 GB on it and ``GET /jobs`` 43 s. Here every call
has a timeout far below that, so the old behaviour fails the test instead of
passing slowly.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import trio

from tests.conftest import Server, run_cli, write_job

ServerFactory = Callable[..., Server]

DEV = {"Authorization": "Bearer dev-token"}
BOMB_PATH = "scripts/bomb/config.d/config.yaml"
DUP_PATH = "scripts/bad/dup/config.d/config.yaml"
DEMO_PATH = "scripts/demo/config.d/config.yaml"
EXPANDS = "the document expands to more than 100,000 nodes (anchors and aliases included)"


def bomb(under: str) -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [{','.join([f'*{prev}'] * 9)}]")
    return "\n".join([*lines, under]) + "\n"


def plant_bombs(workspace: Path) -> None:
    # Where the old code paid for the expansion: a message quoting the value
    # (job.name must be a string) and an env map walked by validation.
    write_job(workspace, "bomb", bomb("job: {name: *i}"), {"100_main.sh": "echo boom\n"})
    write_job(workspace, "bomb2", bomb("env: {A: *i}"), {})
    write_job(workspace, "huge", "interpreter: bash\n" + "#" * (1 << 20) + "\n", {})


def plant_duplicate(workspace: Path) -> None:
    write_job(workspace, "bad/dup", "job: {id: demo}\n", {"100_main.sh": "echo HIJACKED\n"})


# -- YAML bomb ---------------------------------------------------------------------------------


def test_cli_lists_the_good_jobs_and_names_each_bomb(workspace: Path, data_dir: Path) -> None:
    plant_bombs(workspace)
    listed = run_cli([":jobs", "--json"], cwd=workspace, data_dir=data_dir, timeout=30)
    assert listed.returncode == 0, listed.stderr
    report = json.loads(listed.stdout)
    assert {"demo", "examples.pipeline"} <= {job["id"] for job in report["jobs"]}
    assert not {"bomb", "bomb2", "huge"} & {job["id"] for job in report["jobs"]}
    errors = {error["path"]: error for error in report["errors"]}
    assert errors[BOMB_PATH] == {"path": BOMB_PATH, "error": EXPANDS, "code": "config.too.large"}
    assert errors["scripts/bomb2/config.d/config.yaml"]["error"] == EXPANDS
    assert errors["scripts/huge/config.d/config.yaml"]["error"].startswith(
        "the file is larger than 256 KiB")

    human = run_cli([":jobs"], cwd=workspace, data_dir=data_dir, timeout=30)
    assert human.returncode == 0
    assert f"flwd: error: {BOMB_PATH}: {EXPANDS} [config.too.large]\n" in human.stderr
    assert max(len(line) for line in human.stderr.splitlines()) < 300
    assert "demo" in human.stdout

    ran = run_cli(["bomb"], cwd=workspace, data_dir=data_dir, timeout=30)
    assert ran.returncode == 2
    assert ran.stderr == f"flwd: error: {BOMB_PATH}: {EXPANDS} (fix the file, then retry)\n"
    assert "boom" not in ran.stdout


def test_server_lists_the_rest_and_reports_the_bomb_promptly(
        workspace: Path, server_factory: ServerFactory) -> None:
    plant_bombs(workspace)
    server = server_factory("--dev")
    jobs = httpx.get(f"{server.url}/jobs", headers=DEV, params={"per_page": 200},
                     timeout=20)
    assert jobs.status_code == 200
    assert "demo" in [job["id"] for job in jobs.json()]
    assert int(jobs.headers["X-Flwd-Discovery-Errors"]) == 3
    found = httpx.get(f"{server.url}/discovery", headers=DEV, timeout=20)
    assert found.status_code == 200
    errors = {error["path"]: error for error in found.json()["errors"]}
    assert errors[BOMB_PATH] == {"path": BOMB_PATH, "error": EXPANDS,
                                 "code": "config.too.large"}
    assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 204


def test_healthz_answers_while_discovery_of_bombs_runs(
        workspace: Path, server_factory: ServerFactory) -> None:
    """Discovery runs in a worker thread: health checks are never queued behind it."""
    for index in range(20):
        write_job(workspace, f"bombs/b{index}", bomb("job: {summary: *i}"), {})
    server = server_factory("--dev")

    async def attack() -> list[int]:
        statuses: list[int] = []
        async with httpx.AsyncClient(base_url=server.url, timeout=20) as client:
            async def jobs() -> None:
                response = await client.get("/jobs", headers=DEV)
                statuses.append(response.status_code)

            async with trio.open_nursery() as nursery:
                for _ in range(3):
                    nursery.start_soon(jobs)
                for _ in range(10):
                    statuses.append((await client.get("/healthz", timeout=5)).status_code)
        return statuses

    assert sorted(set(trio.run(attack))) == [200, 204]
    issues = httpx.get(f"{server.url}/discovery", headers=DEV, timeout=20).json()["errors"]
    assert sum(issue["code"] == "config.too.large" for issue in issues) == 20


# -- duplicate job ids -------------------------------------------------------------------------


def test_cli_runs_neither_copy_of_an_ambiguous_id(workspace: Path, data_dir: Path) -> None:
    plant_duplicate(workspace)
    both = f"{DUP_PATH} and {DEMO_PATH} both claim it"
    for args in (["demo", "--name", "x"], ["DEMO"], [":plan", "demo"], ["hello-demo"]):
        ran = run_cli(args, cwd=workspace, data_dir=data_dir, timeout=30)
        assert ran.returncode == 2, (args, ran.stderr)
        assert "HIJACKED" not in ran.stdout and "Hello" not in ran.stdout
        [line] = ran.stderr.splitlines()
        assert DUP_PATH in line and DEMO_PATH in line, line
    ran = run_cli(["demo"], cwd=workspace, data_dir=data_dir, timeout=30)
    assert ran.stderr == (f"flwd: error: job id 'demo' is ambiguous: {both}, so none of them "
                          "runs under it (set a distinct job.id in all but one of them)\n")

    listed = run_cli([":jobs", "--json"], cwd=workspace, data_dir=data_dir, timeout=30)
    assert listed.returncode == 0
    report = json.loads(listed.stdout)
    assert "demo" not in [job["id"] for job in report["jobs"]]
    # The alias of the ambiguous id is an error of flwd.yaml too (as in the reference).
    assert sorted((e["path"], e["code"]) for e in report["errors"]) == [
        (DUP_PATH, "job.id.duplicate"), (DEMO_PATH, "job.id.duplicate"),
        ("scripts/flwd.yaml", "alias.target.invalid")]
    assert report["alias_invalid"]["hello-demo"]["code"] == "alias.target.invalid"
    assert "keeping" not in listed.stdout + listed.stderr


def test_server_refuses_an_ambiguous_id_naming_both_paths(
        workspace: Path, server_factory: ServerFactory) -> None:
    plant_duplicate(workspace)
    server = server_factory("--dev")
    jobs = httpx.get(f"{server.url}/jobs", headers=DEV, params={"per_page": 200}, timeout=20)
    assert "demo" not in [job["id"] for job in jobs.json()]
    assert jobs.headers["X-Flwd-Discovery-Errors"] != "0"
    errors = httpx.get(f"{server.url}/discovery", headers=DEV, timeout=20).json()["errors"]
    assert sorted((e["path"], e["code"]) for e in errors) == [
        (DUP_PATH, "job.id.duplicate"), (DEMO_PATH, "job.id.duplicate"),
        ("scripts/flwd.yaml", "alias.target.invalid")]
    for method, path, body in [("POST", "/runs", {"job_id": "demo", "args": {"name": "x"}}),
                               ("POST", "/plans", {"job_id": "Demo"}),
                               ("GET", "/jobs/demo", None)]:
        response = httpx.request(method, f"{server.url}{path}", json=body, headers=DEV,
                                 timeout=20)
        assert response.status_code == 409, response.text
        problem = response.json()
        assert problem["code"] == "job.id.duplicate"
        assert problem["paths"] == [DUP_PATH, DEMO_PATH]
    through_alias = httpx.post(f"{server.url}/runs", json={"job_id": "hello-demo"},
                               headers=DEV, timeout=20)
    assert through_alias.status_code == 400
    assert through_alias.json()["code"] == "alias.target.invalid"
    runs = httpx.get(f"{server.url}/runs", headers=DEV, timeout=20)
    assert runs.json() == []
