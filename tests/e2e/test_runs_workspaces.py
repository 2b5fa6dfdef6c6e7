"""Run history per workspace (issue 12 item 8): two workspaces share one data dir (it is
per user); each run records its workspace; ``:runs`` and ``:logs last`` see the current
workspace's runs, ``--all`` every workspace's with a WORKSPACE column; ``GET /runs``
filters with ``?workspace=``. The real CLI and a real server."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import run_cli, start_server, write_job

AUTH = {"Authorization": "Bearer dev-token"}


@pytest.fixture
def spaces(tmp_path: Path) -> tuple[Path, Path]:
    """Two workspaces, each with a job of the same id printing its workspace's name."""
    found = []
    for name in ("alpha", "beta"):
        root = tmp_path / name
        write_job(root, "hello", "interpreter: bash\n", {"100_run.sh": f"echo from-{name}\n"})
        found.append(root)
    return found[0], found[1]


def cli(where: Path, data_dir: Path, *args: str) -> str:
    done = run_cli(list(args), cwd=where, data_dir=data_dir)
    assert done.returncode == 0, done.stderr
    return done.stdout


def runs(where: Path, data_dir: Path, *args: str) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = json.loads(cli(where, data_dir, ":runs", "--json", *args))
    return listed


def test_each_workspace_sees_its_own_runs(spaces: tuple[Path, Path], data_dir: Path) -> None:
    alpha, beta = spaces
    assert cli(alpha, data_dir, "hello") == "from-alpha\n"
    assert cli(beta, data_dir, "hello") == "from-beta\n"
    assert cli(beta, data_dir, "hello") == "from-beta\n"

    mine = runs(alpha, data_dir)
    assert [run["workspace"] for run in mine] == [str(alpha)]
    theirs = runs(beta, data_dir)
    assert [run["workspace"] for run in theirs] == [str(beta), str(beta)]
    # From a folder inside the workspace, and through a symlink: the same workspace.
    (alpha / "scripts" / "hello" / "sub").mkdir()
    assert runs(alpha / "scripts" / "hello" / "sub", data_dir) == mine
    (alpha.parent / "link").symlink_to(alpha)
    assert runs(alpha.parent / "link", data_dir) == mine

    table = cli(alpha, data_dir, ":runs").splitlines()
    assert table[0].split() == ["RUN", "JOB", "STATUS", "CREATED", "DURATION"]
    assert [line.split()[0] for line in table[1:]] == [mine[0]["id"]]

    every = runs(alpha, data_dir, "--all")
    assert [run["id"] for run in every] == [theirs[0]["id"], theirs[1]["id"], mine[0]["id"]]
    wide = cli(alpha, data_dir, ":runs", "--all").splitlines()
    assert wide[0].split() == ["RUN", "JOB", "STATUS", "CREATED", "DURATION", "WORKSPACE"]
    assert [line.split()[-1] for line in wide[1:]] == [str(beta), str(beta), str(alpha)]

    # `last` is this workspace's last run, for :logs and :cancel.
    assert "from-alpha" in cli(alpha, data_dir, ":logs", "last")
    assert cli(alpha, data_dir, ":cancel", "last") == \
        f"run {mine[0]['id']} already finished (completed)\n"
    elsewhere = alpha.parent / "gamma"
    (elsewhere / "scripts").mkdir(parents=True)
    assert cli(elsewhere, data_dir, ":runs") == \
        "(no runs yet in this workspace; flwd :runs --all lists every workspace's)\n"
    missing = run_cli([":logs", "last"], cwd=elsewhere, data_dir=data_dir)
    assert missing.returncode == 2
    assert missing.stderr == (f"flwd: error: no run in the workspace {elsewhere} yet "
                              "('flwd :runs --all' lists the runs of every workspace)\n")


def test_the_api_filters_by_workspace_and_the_remote_cli_lists_the_servers_runs(
        spaces: tuple[Path, Path], data_dir: Path, tmp_path: Path) -> None:
    alpha, beta = spaces
    cli(beta, data_dir, "hello")
    server = start_server(alpha, data_dir, "--dev")
    try:
        created = httpx.post(f"{server.url}/runs", headers=AUTH, json={"job_id": "hello"},
                             timeout=60)
        assert created.status_code == 201, created.text
        assert created.json()["workspace"] == str(alpha)  # the server's workspace

        def listing(**params: str) -> list[dict[str, Any]]:
            response = httpx.get(f"{server.url}/runs", headers=AUTH, params=params, timeout=60)
            assert response.status_code == 200, response.text
            assert int(response.headers["X-Total-Count"]) == len(response.json())
            found: list[dict[str, Any]] = response.json()
            return found

        assert {run["workspace"] for run in listing()} == {str(alpha), str(beta)}
        assert [run["workspace"] for run in listing(workspace=str(beta))] == [str(beta)]
        assert [run["id"] for run in listing(workspace=str(alpha))] == [created.json()["id"]]
        assert listing(workspace="/nowhere") == []
        bad = httpx.get(f"{server.url}/runs", headers=AUTH, params={"workspace": "relative"},
                        timeout=60)
        assert bad.status_code == 400
        assert bad.json()["errors"] == [{"arg": "workspace", "message": (
            "use an absolute path, as a run's `workspace` shows it")}]

        # Remote mode: the server's runs, of every workspace (this folder means nothing
        # to the server); --all adds the column.
        remote = {"FLWD_SERVER": server.url, "FLWD_TOKEN": "dev-token"}
        far = tmp_path / "far"
        far.mkdir()
        listed = run_cli([":runs", "--json"], cwd=far, data_dir=data_dir, **remote)
        assert {run["workspace"] for run in json.loads(listed.stdout)} == {str(alpha),
                                                                           str(beta)}
        wide = run_cli([":runs", "--all"], cwd=far, data_dir=data_dir, **remote)
        assert wide.stdout.splitlines()[0].split()[-1] == "WORKSPACE"
    finally:
        server.stop()


def test_runs_of_an_older_flwd_have_no_workspace(spaces: tuple[Path, Path],
                                                 data_dir: Path) -> None:
    alpha, _ = spaces
    cli(alpha, data_dir, "hello")
    # The Core DB as schema 5 left it: no workspace column.
    with sqlite3.connect(data_dir / "flwd.db") as db:
        db.execute("DROP INDEX runs_by_workspace")
        db.execute("ALTER TABLE runs DROP COLUMN workspace")
        # and what schema 8 added (a real schema 5 file has neither)
        db.execute("ALTER TABLE runs DROP COLUMN executor")
        db.execute("ALTER TABLE runs DROP COLUMN runtime")
        db.execute("PRAGMA user_version = 5")
    [old] = runs(alpha, data_dir, "--all")
    assert old["workspace"] is None
    assert runs(alpha, data_dir) == []  # not this workspace's, as far as anyone knows
    assert cli(alpha, data_dir, ":runs", "--all").splitlines()[1].split()[-1] == "-"
    cli(alpha, data_dir, "hello")
    assert [run["workspace"] for run in runs(alpha, data_dir, "--all")] == [str(alpha), None]
