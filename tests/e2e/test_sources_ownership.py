"""Who may change a data dir's sources, and who may delete a source's tree (issue 12 item 3).

End to end with the real CLI, a real ``flwd :serve`` on the same data dir and real git
repositories: a local ``:sources`` change is refused while a server owns the data dir
(one line naming the ``--server`` command to use), a SIGKILLed server leaves no stale
ownership, and a tree a running job uses survives any refresh or remove by another
process until a later change sweeps it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import FLWD, Server, flwd_env, git, make_git_repo, run_cli

AUTH = {"Authorization": "Bearer dev-token"}

CONFIG = """\
job: {id: gitjob, summary: From a repository}
interpreter: bash
argspec:
  args:
    - {name: gate, type: string, required: false}
"""


def job_files(payload: str) -> dict[str, str]:
    """A job whose second script reads a file of its tree after an optional gate (a FIFO)."""
    return {"scripts/gitjob/config.d/config.yaml": CONFIG,
            "scripts/gitjob/100_wait.sh": 'echo ready\n'
                                          'if [ -n "${gate:-}" ]; then read -r _ < "$gate"; fi\n',
            "scripts/gitjob/200_read.sh": 'cat "$(dirname "$0")/payload.txt"\n',
            "scripts/gitjob/payload.txt": f"{payload}\n"}


@pytest.fixture
def repos(tmp_path: Path) -> Path:
    path = tmp_path / "repos"
    path.mkdir()
    return path


@pytest.fixture
def repo(repos: Path) -> Path:
    return make_git_repo(repos / "tools", job_files("payload-one"), message="one")


class Cli:
    def __init__(self, workspace: Path, data_dir: Path, repos: Path) -> None:
        self.workspace, self.data_dir, self.repos = workspace, data_dir, repos

    def __call__(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return run_cli(list(args), cwd=self.workspace, data_dir=self.data_dir, **env)

    def ok(self, *args: str, **env: str) -> str:
        done = self(*args, **env)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def remote(self, server: Server, *args: str) -> str:
        return self.ok(*args, FLWD_SERVER=server.url, FLWD_TOKEN="dev-token")

    def add_git(self, name: str, repo: Path) -> str:
        return self.ok(":sources", "add", "--type", "git", "--name", name, "--url",
                       f"file://{repo}", "--ref", "main", "--allow-path", str(self.repos))


@pytest.fixture
def cli(workspace: Path, data_dir: Path, repos: Path) -> Cli:
    return Cli(workspace, data_dir, repos)


def trees(data_dir: Path, name: str = "tools") -> list[str]:
    return sorted(p.name for p in (data_dir / "sources" / name / "trees").iterdir())


def run_to_end(server: Server, job_id: str) -> tuple[dict[str, Any], list[str]]:
    """``POST /runs``, then its event stream to the end; the run and its output lines."""
    created = httpx.post(f"{server.url}/runs", headers=AUTH, json={"job_id": job_id},
                         timeout=60)
    assert created.status_code == 201, created.text
    run_id = created.json()["id"]
    with httpx.stream("GET", f"{server.url}/runs/{run_id}/events", headers=AUTH,
                      timeout=60) as stream:  # it ends after run.finish
        events = [json.loads(line[5:]) for line in stream.iter_lines()
                  if line.startswith("data:")]
    lines = [e["data"]["message"] for e in events if e["type"] == "step.log"]
    run = httpx.get(f"{server.url}/runs/{run_id}", headers=AUTH, timeout=60).json()
    return run, lines


# -- (a) a server owns its data dir --------------------------------------------------------


def test_a_local_change_is_refused_while_a_server_runs_and_its_tree_stays(
        server_factory: Any, cli: Cli, repo: Path, repos: Path, data_dir: Path) -> None:
    first = git(repo, "rev-parse", "HEAD")
    cli.add_git("tools", repo)
    server = server_factory("--dev", "--allow-path", str(repos))
    make_git_repo(repo, job_files("payload-two"), message="two")

    refused = cli(":sources", "refresh", "tools")
    assert (refused.returncode, refused.stdout) == (2, "")
    assert refused.stderr == (
        f"flwd: error: flwd :serve (pid {server.process.pid}) is using this data dir; change "
        f"sources through it: flwd --server {server.url} :sources refresh tools\n")
    for args in ([":sources", "remove", "tools"],
                 [":sources", "add", "--type", "git", "--name", "other", "--url",
                  f"file://{repo}", "--ref", "main", "--allow-path", str(repos)]):
        done = cli(*args)
        assert done.returncode == 2 and len(done.stderr.splitlines()) == 1, done.stderr
        assert f"flwd --server {server.url} {' '.join(args[:2])}" in done.stderr
    # Nothing changed: the row, the tree, and what the server runs.
    [document] = json.loads(cli.ok(":sources", "list", "--json"))
    assert document["resolved_commit"] == first
    assert trees(data_dir) == [first]
    run, lines = run_to_end(server, "tools/gitjob")
    assert (run["status"], run.get("error")) == ("completed", None)
    assert lines[-1] == "payload-one"

    # Sent where the message says, the refresh works.
    assert "refreshed" in cli.remote(server, ":sources", "refresh", "tools")
    run, lines = run_to_end(server, "tools/gitjob")
    assert (run["status"], lines[-1]) == ("completed", "payload-two")


def test_a_sigkilled_server_leaves_no_stale_ownership(
        server_factory: Any, cli: Cli, repo: Path, repos: Path, workspace: Path,
        data_dir: Path) -> None:
    cli.add_git("tools", repo)
    server = server_factory("--dev", "--allow-path", str(repos))
    assert cli(":sources", "refresh", "tools").returncode == 2
    # A second server on the data dir is refused too, naming the first.
    second = run_cli([":serve", "--bind", "127.0.0.1:0", "--dev", "--no-containers"],
                     cwd=workspace, data_dir=data_dir)
    assert second.returncode == 2
    assert second.stderr == (
        f"flwd: error: flwd :serve (pid {server.process.pid}) already serves this data dir at "
        f"{server.url}; stop it first, or give this server another one "
        "(flwd --data-dir DIR :serve)\n")

    assert server.stop(signal.SIGKILL) == -signal.SIGKILL
    # What the server said about itself is still there; it is not trusted alone.
    owner = json.loads((data_dir / "serve.json").read_text())
    assert (owner["kind"], owner["pid"], owner["url"]) == ("serve", server.process.pid,
                                                           server.url)
    make_git_repo(repo, job_files("payload-two"), message="two")
    second_commit = git(repo, "rev-parse", "HEAD")
    assert cli.ok(":sources", "refresh", "tools") == \
        f"Source tools (git) refreshed at {second_commit[:12]}\n"
    assert trees(data_dir) == [second_commit]
    assert not (data_dir / "serve.json").exists()  # the change owned the data dir, then not
    assert server_factory("--dev").url  # and a new server starts


# -- (b) a tree in use is never deleted -----------------------------------------------------


@contextmanager
def gated_run(cli: Cli, fifo: Path) -> Iterator[subprocess.Popen[str]]:
    """A CLI run of tools/gitjob in its own process, blocked on ``fifo`` after 'ready'."""
    os.mkfifo(fifo)
    with subprocess.Popen([*FLWD, "tools/gitjob", "--gate", str(fifo)], cwd=cli.workspace,
                          env=flwd_env(cli.data_dir), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            for line in process.stdout:
                if line.strip().endswith("ready"):
                    break
            else:
                raise AssertionError(f"the run did not start: {process.stderr.read()}")
            yield process
        finally:
            if process.poll() is None:  # a failed test: Ctrl-C's path stops the job too
                process.terminate()
                process.wait(timeout=60)


@pytest.mark.parametrize(("who", "change"), [("server", "refresh"), ("cli", "refresh"),
                                             ("cli", "remove")])
def test_a_tree_a_run_uses_survives_another_process_and_is_swept_after(
        server_factory: Any, cli: Cli, repo: Path, repos: Path, data_dir: Path,
        tmp_path: Path, who: str, change: str) -> None:
    first = git(repo, "rev-parse", "HEAD")
    cli.add_git("tools", repo)
    server = server_factory("--dev", "--allow-path", str(repos)) if who == "server" else None

    def change_sources(*args: str) -> str:
        return cli.remote(server, *args) if server is not None else cli.ok(*args)

    with gated_run(cli, tmp_path / "gate") as run:
        make_git_repo(repo, job_files("payload-two"), message="two")
        second = git(repo, "rev-parse", "HEAD")
        change_sources(":sources", change, "tools")
        # The run's tree is still there while it runs, whoever changed the source.
        assert (data_dir / "sources" / "tools" / "trees" / first).is_dir()
        with open(tmp_path / "gate", "w") as gate:
            gate.write("go\n")
        out, err = run.communicate(timeout=60)
    assert run.returncode == 0, err
    assert out.splitlines()[-1].endswith("payload-one")  # read from its own tree at the end

    # Unused now: the next change sweeps it.
    if change == "refresh":
        change_sources(":sources", "refresh", "tools")
        assert trees(data_dir) == [second]
    else:
        cli.add_git("other", repo)
        assert not (data_dir / "sources" / "tools").exists()
        assert trees(data_dir, "other") == [second]
