"""The container runtime preflight without a usable runtime (issue 14 item 5; the product
README, "Container Executor"): ``flwd :serve`` refuses to boot and a CLI container run
fails fast, each with one line naming ``container.runtime.unavailable`` and exit status 2;
a ``--no-containers`` server answers 422 with that code. The real CLI as a subprocess.

Real podman made unusable by its configuration is in tests/containers/test_runtime_preflight.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.conftest import run_cli, write_job

CODE = "container.runtime.unavailable"
AUTH = {"Authorization": "Bearer dev-token"}
DAEMON_DOWN = ("Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
               "Is the docker daemon running?")
#: A named stand-in for what these machines cannot provide for sure: a docker client whose
#: daemon is not running. It answers ``docker info`` as docker 28 does then (the message on
#: stderr, exit 1) and records every call, so a test sees that nothing else was asked.
DOCKER_WITHOUT_DAEMON = f"""#!/bin/sh
echo "$*" >> "${{0%/*}}/calls"  # builtins only: PATH may hold nothing else
if [ "$1" = info ]; then echo "{DAEMON_DOWN}" >&2; exit 1; fi
exit 0
"""


def _box(workspace: Path) -> None:
    write_job(workspace, "box", "executor: container\ncontainer:\n  image: busybox:1\n",
              {"100_main.sh": "#!/bin/sh\necho never\n"})


def _one_line(done: subprocess.CompletedProcess[str]) -> str:
    """The refusal: exit 2, nothing on stdout, one stderr line that starts with the code."""
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert done.stdout == ""
    assert "Traceback" not in done.stderr and "ExceptionGroup" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"flwd: error: {CODE}: "), lines[0]
    return lines[0]


@pytest.fixture
def no_runtime(tmp_path: Path) -> str:
    """A PATH with neither podman nor docker (an empty folder)."""
    empty = tmp_path / "empty-path"
    empty.mkdir()
    return str(empty)


@pytest.fixture
def stand_in_docker(tmp_path: Path) -> Path:
    """A folder holding :data:`DOCKER_WITHOUT_DAEMON` as ``docker`` (and nothing else)."""
    folder = tmp_path / "docker-bin"
    folder.mkdir()
    docker = folder / "docker"
    docker.write_text(DOCKER_WITHOUT_DAEMON)
    docker.chmod(0o755)
    return folder


def test_serve_without_a_runtime_refuses_to_boot(workspace: Path, data_dir: Path,
                                                  no_runtime: str) -> None:
    done = run_cli([":serve", "--bind", "127.0.0.1:0"], cwd=workspace, data_dir=data_dir,
                   PATH=no_runtime)
    line = _one_line(done)
    assert "neither podman nor docker is on PATH" in line
    assert "--no-containers" in line  # the way to serve host jobs only
    # Checked before the data dir, recovery and the engine: none of them started.
    assert not (data_dir / "flwd.db").exists()
    # An explicitly configured runtime that is not there is named as such.
    named = run_cli([":serve", "--bind", "127.0.0.1:0"], cwd=workspace, data_dir=data_dir,
                    FLWD_CONTAINER_RUNTIME="no-such-runtime")
    assert "FLWD_CONTAINER_RUNTIME=no-such-runtime is not on PATH" in _one_line(named)


def test_serve_refuses_a_docker_whose_daemon_is_down(workspace: Path, data_dir: Path,
                                                     stand_in_docker: Path) -> None:
    """Present but unusable counts as unavailable: the stand-in docker (its daemon down)."""
    done = run_cli([":serve", "--bind", "127.0.0.1:0"], cwd=workspace, data_dir=data_dir,
                   PATH=str(stand_in_docker))
    line = _one_line(done)
    assert f"docker ({stand_in_docker / 'docker'}): 'docker info' failed: {DAEMON_DOWN}" in line
    assert "start the Docker daemon" in line and "--no-containers" in line
    assert (stand_in_docker / "calls").read_text().splitlines() == ["info"]
    assert not (data_dir / "flwd.db").exists()


def test_serve_refuses_the_real_docker_client_without_a_daemon(
        workspace: Path, data_dir: Path, tmp_path: Path) -> None:
    """Where a real docker client is installed and no daemon answers it (this VM), the same
    refusal comes from the real client."""
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker client on this machine")
    if subprocess.run([docker, "info"], capture_output=True, timeout=60).returncode == 0:
        pytest.skip("a docker daemon answers on this machine")
    folder = tmp_path / "real-docker"
    folder.mkdir()
    (folder / "docker").symlink_to(docker)
    line = _one_line(run_cli([":serve", "--bind", "127.0.0.1:0"], cwd=workspace,
                             data_dir=data_dir, PATH=str(folder)))
    assert f"docker ({folder / 'docker'}): 'docker info' failed: " in line


def test_a_cli_container_run_fails_fast(workspace: Path, data_dir: Path, no_runtime: str,
                                        stand_in_docker: Path, tmp_path: Path) -> None:
    _box(workspace)
    line = _one_line(run_cli(["box"], cwd=workspace, data_dir=data_dir, PATH=no_runtime))
    assert "no container runtime found: neither podman nor docker is on PATH" in line
    broken = _one_line(run_cli(["box"], cwd=workspace, data_dir=data_dir,
                               PATH=str(stand_in_docker)))
    assert DAEMON_DOWN in broken
    # Nothing of a run exists: planned before the engine, so not even the Core DB; the
    # runtime was asked `info` and nothing else (no pull, no run).
    assert not (data_dir / "flwd.db").exists()
    assert (stand_in_docker / "calls").read_text().splitlines() == ["info"]
    # `:plan` answers the same, and a host job still runs without any runtime.
    assert DAEMON_DOWN in _one_line(run_cli([":plan", "box"], cwd=workspace,
                                            data_dir=data_dir, PATH=str(stand_in_docker)))
    tools = tmp_path / "tools"  # bash for the host job, and no container runtime
    tools.mkdir()
    (tools / "bash").symlink_to(shutil.which("bash") or "/bin/bash")
    host = run_cli(["demo", "--name", "Ada"], cwd=workspace, data_dir=data_dir,
                   PATH=f"{stand_in_docker}:{tools}")
    assert host.returncode == 0, host.stderr
    assert (stand_in_docker / "calls").read_text().splitlines() == ["info", "info"]


def test_a_no_containers_server_answers_422(server_factory, workspace: Path,
                                            data_dir: Path) -> None:
    """Reference §8.4 step 9 / §8.5 step 7: POST /plans and POST /runs of a container job
    without a runtime → 422 ``container.runtime.unavailable``; nothing is stored."""
    _box(workspace)
    server = server_factory("--dev")  # --no-containers: the shared fixture's default
    for route in ("/plans", "/runs"):
        answer = httpx.post(f"{server.url}{route}", headers=AUTH, json={"job_id": "box"})
        assert answer.status_code == 422, (route, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json")
        problem = answer.json()
        assert problem["code"] == CODE and problem["title"] == "container runtime unavailable"
        assert "--no-containers" in problem["detail"]  # the hint, in parentheses
    # The CLI as the server's client reads the answer as the local refusal: one line, exit 2.
    remote = run_cli(["box"], cwd=workspace, data_dir=data_dir, FLWD_SERVER=server.url,
                     FLWD_TOKEN="dev-token")
    assert "--no-containers" in _one_line(remote)
    assert httpx.get(f"{server.url}/runs", headers=AUTH).json() == []


def test_adding_an_oci_source_asks_the_runtime_a_run_would_use(
        workspace: Path, data_dir: Path, stand_in_docker: Path) -> None:
    # The local CLI took the first runtime on PATH, worked or not, and failed later on
    # its pull; it now finds the runtime as a container run does, and says why none works.
    done = run_cli([":sources", "add", "--type", "oci", "--ref", "127.0.0.1:5000/x/addon:1",
                    "--trusted"], cwd=workspace, data_dir=data_dir, PATH=str(stand_in_docker),
                   FLWD_PROFILE="permissive")  # no signature to check: the runtime is next
    line = _one_line(done)
    assert f"docker ({stand_in_docker / 'docker'}): 'docker info' failed: {DAEMON_DOWN}" in line
    assert (stand_in_docker / "calls").read_text().splitlines() == ["info"]  # no pull
    listed = run_cli([":sources", "list", "--json"], cwd=workspace, data_dir=data_dir)
    assert listed.returncode == 0 and json.loads(listed.stdout) == []
