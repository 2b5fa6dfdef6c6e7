"""Shared fixtures: temporary workspaces and data dirs, the real CLI, leak checks."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# The throw-away PostgreSQL cluster of the session, and a fresh database per test.
from tests._postgres import postgres_cluster as postgres_cluster
from tests._postgres import postgres_dsn as postgres_dsn

REPO = Path(__file__).resolve().parent.parent
FLWD = [sys.executable, "-m", "flwd"]


def flwd_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLWD_")}
    env.update({"FLWD_DATA_DIR": str(data_dir), "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


def wait_until(condition: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    """Poll ``condition`` until it returns something true (its value); fail after ``timeout``
    seconds. A bounded wait on a condition, never a sleep as synchronisation."""
    import select
    import time

    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        select.select([], [], [], 0.05)
    return result


def processes_under(marker: str) -> list[int]:
    """Live (non-zombie) processes whose environment mentions ``marker`` (a temp path)."""
    needle = marker.encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                env = f.read()
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        state = stat[stat.rfind(b")") + 2 :].split()[0]
        if needle in env and state != b"Z":
            found.append(int(name))
    return found


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    """A fresh data dir; after the test no process of its runs may survive."""
    path = tmp_path / "data"
    yield path
    leaked = processes_under(f"FLWD_RUN_DIR={path}")
    for pid in leaked:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert not leaked, f"processes of the test's runs survived: {leaked}"


#: The files of the bundled scripts/ (paths under it): what a test workspace holds. A fixed
#: list, not a copy of the folder, so that jobs a user adds to the working tree (the README
#: suggests ``flwd init bash tools/hello``) never change what the tests see.
BUNDLED_SCRIPTS: tuple[str, ...] = (
    "demo-container/100_main.sh",
    "demo-container/config.d/config.yaml",
    "demo/100_main.sh",
    "demo/config.d/config.yaml",
    "examples/config.d/vars/10-examples.sh",
    "examples/fail/100_fail.sh",
    "examples/fail/config.d/config.yaml",
    "examples/long/100_long.sh",
    "examples/long/config.d/config.yaml",
    "examples/pipeline/config.d/config.yaml",
    "examples/pipeline/steps/build.sh",
    "examples/pipeline/steps/fetch.sh",
    "examples/pipeline/steps/lint.sh",
    "examples/pipeline/steps/package.sh",
    "examples/pipeline/steps/test.sh",
    "examples/python/100_main.py",
    "examples/python/config.d/config.yaml",
    "examples/vars/100_greet.sh",
    "examples/vars/config.d/config.yaml",
    "examples/vars/config.d/libs/greet.sh",
    "examples/vars/config.d/vars/20-job.sh",
    "flwd.yaml",
    "smoke-sources.sh",
)


def copy_bundled_scripts(root: Path, *, source: Path = REPO / "scripts") -> Path:
    """Write the bundled scripts/ (:data:`BUNDLED_SCRIPTS` of ``source``, modes kept) under
    workspace ``root``; returns ``root``."""
    for rel in BUNDLED_SCRIPTS:
        target = root / "scripts" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / rel, target)
    return root


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """The repository's bundled scripts/ (:data:`BUNDLED_SCRIPTS`) in a temporary workspace."""
    return copy_bundled_scripts(tmp_path / "ws")


def sse_events(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """The event envelopes of an SSE stream's lines (``id`` and ``event`` checked against
    the envelope's ``seq`` and ``type``)."""
    frame: dict[str, str] = {}
    for line in lines:
        if line == "":
            if "data" in frame:
                event = json.loads(frame["data"])
                assert str(event["seq"]) == frame["id"] and event["type"] == frame["event"]
                yield event
            frame = {}
        elif not line.startswith(":"):
            key, _, value = line.partition(": ")
            frame[key] = value


def write_job(root: Path, rel: str, config: str, scripts: dict[str, str]) -> Path:
    """Create ``scripts/<rel>`` with a config and scripts under workspace ``root``.

    A job without ``NNN_`` scripts runs nothing, with a ``job.nothing.to.run`` warning
    (tests/e2e/test_nothing_to_run.py), so with no ``scripts`` and no ``composition: steps``
    a no-op ``100_main.sh`` is written: a test's job runs something and warns about nothing.
    """
    job = root / "scripts" / rel
    (job / "config.d").mkdir(parents=True, exist_ok=True)
    (job / "config.d" / "config.yaml").write_text(config)
    if not scripts and "composition: steps" not in config:
        scripts = {"100_main.sh": "true\n"}
    for name, body in scripts.items():
        path = job / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body)
        path.chmod(0o755)
    return job


GIT_ENV = {"GIT_AUTHOR_NAME": "flwd tests", "GIT_AUTHOR_EMAIL": "tests@flwd.invalid",
           "GIT_COMMITTER_NAME": "flwd tests", "GIT_COMMITTER_EMAIL": "tests@flwd.invalid",
           "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}


def git(repo: Path, *args: str) -> str:
    """Run the real ``git ARGS`` in ``repo`` (no user or system config); its stdout, stripped."""
    done = subprocess.run(["git", *args], cwd=repo, env={**os.environ, **GIT_ENV},
                          capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, f"git {' '.join(args)} failed: {done.stderr}"
    return done.stdout.strip()


def make_git_repo(path: Path, files: dict[str, str], *, message: str = "commit") -> Path:
    """Commit ``files`` (relative path → text; ``*.sh`` made executable) to the repository at
    ``path``, created on branch ``main`` if needed; returns ``path`` (``git(path,
    "rev-parse", "HEAD")`` is the new commit)."""
    if not (path / ".git").is_dir():
        path.mkdir(parents=True, exist_ok=True)
        git(path, "init", "--quiet", "--initial-branch=main")
    for rel, text in files.items():
        file = path / rel
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(text)
        if file.suffix == ".sh":
            file.chmod(0o755)
    git(path, "add", "--all")
    git(path, "commit", "--quiet", "--no-gpg-sign", "--allow-empty", "-m", message)
    return path


def run_cli(args: list[str], *, cwd: Path, data_dir: Path, timeout: float = 60,
            **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FLWD, *args], cwd=cwd, env=flwd_env(data_dir, **env),
                          capture_output=True, text=True, timeout=timeout, check=False)


class Server:
    """A real ``flwd :serve`` subprocess on 127.0.0.1:0 (its URL read from its JSON log)."""

    def __init__(self, process: subprocess.Popen[str], url: str, log: list[str]) -> None:
        self.process = process
        self.url = url
        self.log = log
        self.drainer: Any = None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        code = self.process.wait(timeout=timeout)
        if self.drainer is not None:
            self.drainer.join(timeout=timeout)
        if self.process.stderr is not None:
            self.process.stderr.close()
        return code


def start_server(workspace: Path, data_dir: Path, *flags: str, containers: bool = False,
                 bind: str = "127.0.0.1:0", **env: str) -> Server:
    """Start ``flwd :serve`` and wait for its "serving" log line (no sleeps: we read the log).

    Without ``containers`` it runs with ``--no-containers`` (no runtime needed). ``bind``
    names a port to serve on again (a restart at the same address); any free one otherwise.
    """
    import json
    import threading

    process = subprocess.Popen(
        [*FLWD, ":serve", "--bind", bind, "--log", "json",
         *(() if containers else ("--no-containers",)), *flags],
        cwd=workspace, env=flwd_env(data_dir, **env), stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    log: list[str] = []
    url = ""
    for line in process.stderr:
        log.append(line)
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("msg") == "serving":
            url = record["urls"][0]
            break
    if not url:
        process.wait(timeout=10)
        process.stderr.close()
        raise AssertionError("flwd :serve did not start:\n" + "".join(log))
    # Keep draining stderr so the server never blocks on a full pipe.
    def drain() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            log.append(line)

    server = Server(process, url, log)
    server.drainer = threading.Thread(target=drain, daemon=True)
    server.drainer.start()
    return server


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """``GET /metrics`` of the server at ``url`` (loopback: no token), parsed:
    (sample name, its labels) → value."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    response = httpx.get(f"{url}/metrics", timeout=30)
    assert response.status_code == 200, response.text
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples}


@pytest.fixture
def server_factory(workspace: Path, data_dir: Path) -> Iterator[Any]:
    """Start servers on the test's workspace and data dir; all are stopped afterwards."""
    servers: list[Server] = []

    def factory(*flags: str, **env: str) -> Server:
        server = start_server(workspace, data_dir, *flags, **env)
        servers.append(server)
        return server

    yield factory
    for server in servers:
        server.stop()


@pytest.fixture
def dev_server(server_factory: Any) -> Server:
    """A ``--dev`` server (the token ``dev-token`` has every scope)."""
    return server_factory("--dev")


def spawn_on_pty(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[int, int]:
    """Start ``argv`` in a new session whose controlling terminal is a new pty: (pid, master fd).

    What a person's terminal gives a command: writing ``\x03`` to the master sends SIGINT
    to the foreground group, and a prompt can read without echo.
    """
    import pty

    pid, master = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.chdir(cwd)
            # A terminal's command starts with SIGINT and SIGQUIT at their defaults; a
            # test run started in the background (``cmd &``) ignores them, and an
            # ignored SIGINT is inherited through exec (Python then keeps ignoring it).
            for signum in (signal.SIGINT, signal.SIGQUIT):
                signal.signal(signum, signal.SIG_DFL)
            os.execve(argv[0], argv, env)
        finally:
            os._exit(127)
    return pid, master
