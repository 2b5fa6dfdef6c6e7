"""The container runtime preflight with real Podman (issue 14 item 5).

A podman that is installed but cannot create a container — here a real one whose
containers.conf asks for more open files than any process may have, which runc
refuses exactly as on a stock VM ("setting rlimit type 7") — is unavailable:
``flwd :serve`` refuses to boot and a CLI container run fails fast, one line with
``container.runtime.unavailable``. With the suite's working containers.conf the server
boots, the check leaves no container behind, and CLI runs remember a passed check.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from flwd.containers import RUNTIME_MEMORY
from tests.conftest import FLWD, flwd_env, run_cli

from .conftest import CONTAINERS_CONF, IMAGE, podman

CODE = "container.runtime.unavailable"
#: The suite's containers.conf, plus a default open-files limit beyond fs.nr_open: runc
#: cannot set it (EPERM, for root too), so every container fails to start, while
#: ``podman info`` still succeeds.
UNUSABLE_CONF = CONTAINERS_CONF.replace(
    "default_ulimits = []", 'default_ulimits = ["nofile=2147483647:2147483647"]')


def _box(workspace: Path) -> None:
    job = workspace / "scripts" / "box"
    (job / "config.d").mkdir(parents=True)
    (job / "config.d" / "config.yaml").write_text(
        f"executor: container\ncontainer:\n  image: {IMAGE}\n")
    (job / "100_main.sh").write_text("#!/bin/sh\necho in-the-box\n")
    (job / "100_main.sh").chmod(0o755)


def _refusal(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"flwd: error: {CODE}: "), lines[0]
    return lines[0]


def _preflight_containers() -> list[str]:
    return podman("ps", "--all", "--filter", "label=flwd.preflight",
                  "--format", "{{.Names}}").stdout.split()


def test_a_podman_that_cannot_create_a_container_is_unavailable(
        tmp_path: Path, workspace: Path, data_dir: Path, podman_env: dict[str, str],
        policy_file: Path) -> None:
    conf = tmp_path / "unusable.conf"
    conf.write_text(UNUSABLE_CONF)
    env = {**podman_env, "CONTAINERS_CONF": str(conf), "FLWD_CONTAINER_RUNTIME": "podman",
           "FLWD_POLICY_FILE": str(policy_file),
           "FLWD_POLICY_PUBKEY": str(policy_file.with_name("policy.pub"))}
    # Why the check creates a container: `podman info` says nothing is wrong.
    assert subprocess.run(["podman", "info"], env={**os.environ, **env},
                          capture_output=True, timeout=120).returncode == 0
    line = _refusal(run_cli([":serve", "--bind", "127.0.0.1:0"], cwd=workspace,
                            data_dir=data_dir, **env))
    assert "podman (" in line and "cannot create a container: " in line
    assert "rlimit" in line  # the runtime's own words
    assert "--no-containers" in line
    assert not (data_dir / "flwd.db").exists()
    _box(workspace)
    line = _refusal(run_cli(["box"], cwd=workspace, data_dir=data_dir, **env))
    assert "rlimit" in line and "in-the-box" not in line
    assert not (data_dir / "flwd.db").exists()  # nothing of a run exists
    assert _preflight_containers() == []


def test_a_working_podman_boots_and_the_check_leaves_nothing(
        container_server, workspace: Path) -> None:
    server = container_server()
    serving = next(json.loads(line) for line in server.log if '"serving"' in line)
    assert serving["container_runtime"] == "podman"
    assert _preflight_containers() == []


def test_cli_runs_remember_a_passed_check(tmp_path: Path, workspace: Path, data_dir: Path,
                                          podman_env: dict[str, str],
                                          policy_file: Path) -> None:
    """The check costs about as much as the container run: a run within five minutes of a
    passed check, with nothing changed that decides it, does not check again; a changed
    containers.conf does (and a refusal is never remembered)."""
    conf = tmp_path / "containers.conf"
    conf.write_text(CONTAINERS_CONF)
    env = {**podman_env, "CONTAINERS_CONF": str(conf), "FLWD_POLICY_FILE": str(policy_file),
           "FLWD_POLICY_PUBKEY": str(policy_file.with_name("policy.pub"))}
    _box(workspace)
    memory = data_dir / RUNTIME_MEMORY

    def run() -> subprocess.CompletedProcess[str]:
        return run_cli(["box"], cwd=workspace, data_dir=data_dir, **env)

    first = run()
    assert first.returncode == 0 and "in-the-box" in first.stdout, first.stderr
    # The data dir did not exist at the first check (a check does not create it).
    assert not memory.exists()
    assert run().returncode == 0
    kept = json.loads(memory.read_text())
    assert kept["kind"] == "podman"
    assert memory.stat().st_mode & 0o777 == 0o600
    assert run().returncode == 0
    assert json.loads(memory.read_text()) == kept  # not checked again
    conf.write_text(UNUSABLE_CONF)  # another size: a changed file even within a tick
    assert "rlimit" in _refusal(run())
    assert json.loads(memory.read_text()) == kept  # the refusal is not kept
    conf.write_text(CONTAINERS_CONF)
    assert run().returncode == 0
    assert json.loads(memory.read_text())["checked_at"] > kept["checked_at"]
    assert _preflight_containers() == []


# -- probes a killed flwd left behind ---------------------------------------------------------

#: A podman that makes the probe container, then hangs where the check would initialise
#: it: a flwd stuck there is one killed "between create and rm" on demand. It says its
#: pid (that of the hanging process, for the test to end it) on the FIFO.
STUCK_PODMAN = """\
#!/bin/sh
if [ "$1" = init ]; then echo $$ > "$FLWD_TEST_FIFO"; exec sleep infinity; fi
exec {podman} "$@"
"""


def _probes() -> dict[str, dict[str, str]]:
    """Every preflight probe container: name → labels."""
    out = podman("ps", "--all", "--filter", "label=flwd.preflight", "--format", "json").stdout
    return {entry["Names"][0]: entry["Labels"] for entry in json.loads(out or "[]")}


class StuckChecks:
    """flwd CLI runs whose runtime check hangs with its probe container made."""

    def __init__(self, tmp_path: Path, workspace: Path, env: dict[str, str]) -> None:
        self.workspace, self.env = workspace, env
        self.runtime = tmp_path / "podman-stuck"
        self.runtime.write_text(STUCK_PODMAN.format(podman=shutil.which("podman")))
        self.runtime.chmod(0o755)
        self.fifo = tmp_path / "inits.fifo"
        os.mkfifo(self.fifo)
        # Read and write: the FIFO never reads as closed between two writers.
        self.reader = os.open(self.fifo, os.O_RDWR | os.O_NONBLOCK)
        self.started: list[tuple[subprocess.Popen[str], int]] = []

    def start(self, data_dir: Path) -> tuple[subprocess.Popen[str], int]:
        """A run that hangs in its check, once its probe exists; (the flwd, the hang's pid)."""
        flwd = subprocess.Popen(
            [*FLWD, "box"], cwd=self.workspace, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, text=True,
            env=flwd_env(data_dir, **self.env, FLWD_CONTAINER_RUNTIME=str(self.runtime),
                         FLWD_TEST_FIFO=str(self.fifo)))
        said = b""
        deadline = time.monotonic() + 120
        while not said.endswith(b"\n"):
            assert time.monotonic() < deadline and flwd.poll() is None, "no probe was made"
            if select.select([self.reader], [], [], 1.0)[0]:
                said += os.read(self.reader, 64)
        self.started.append((flwd, int(said)))
        return flwd, int(said)

    def close(self) -> None:
        for flwd, hang in self.started:
            for pid in (flwd.pid, hang):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            flwd.wait(timeout=30)
        self.started.clear()
        if self.reader >= 0:
            os.close(self.reader)
            self.reader = -1


@pytest.fixture
def stuck(tmp_path: Path, workspace: Path, podman_env: dict[str, str],
          policy_file: Path) -> Iterator[StuckChecks]:
    _box(workspace)
    env = {**podman_env, "FLWD_POLICY_FILE": str(policy_file),
           "FLWD_POLICY_PUBKEY": str(policy_file.with_name("policy.pub"))}
    checks = StuckChecks(tmp_path, workspace, env)
    yield checks
    checks.close()
    for name in _probes():  # whatever a failed test left
        podman("rm", "--force", "--ignore", name)


def test_a_probe_a_killed_flwd_left_is_removed_by_the_next_check_a_live_ones_is_kept(
        stuck: StuckChecks, tmp_path: Path) -> None:
    live, _ = stuck.start(tmp_path / "data-live")
    killed, hang = stuck.start(tmp_path / "data-killed")
    killed.send_signal(signal.SIGKILL)  # between its probe's create and rm
    killed.wait(timeout=30)
    os.kill(hang, signal.SIGKILL)
    probes = _probes()
    owners = {labels["flwd.preflight.owner"].split(":")[0]: name
              for name, labels in probes.items()}
    assert set(owners) == {str(live.pid), str(killed.pid)}, probes
    left = owners[str(killed.pid)]
    assert (Path(tempfile.gettempdir()) / left).is_dir()  # its rootfs folder too

    # The next check (another process, a data dir with no remembered check) cleans up.
    checked = run_cli(["box"], cwd=stuck.workspace, data_dir=tmp_path / "data-next",
                      **stuck.env)
    assert checked.returncode == 0 and "in-the-box" in checked.stdout, checked.stderr
    assert list(_probes()) == [owners[str(live.pid)]]  # the live one's is not touched
    assert not (Path(tempfile.gettempdir()) / left).exists()

    stuck.close()  # now that one's owner is dead too
    again = run_cli(["box"], cwd=stuck.workspace, data_dir=tmp_path / "data-last",
                    **stuck.env)
    assert again.returncode == 0, again.stderr
    assert _probes() == {}
