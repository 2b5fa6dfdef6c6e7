"""`flwd :serve` that cannot listen: one line naming the address and the fix, exit 1, and
nothing started (the real CLI as a subprocess)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.conftest import FLWD, flwd_env, run_cli


def _refusal(workspace: Path, data_dir: Path, bind: str) -> str:
    done = run_cli([":serve", "--bind", bind, "--no-containers"], cwd=workspace,
                   data_dir=data_dir, timeout=60)
    assert done.returncode == 1, (done.returncode, done.stderr)
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr and "ExceptionGroup" not in done.stderr
    assert lines[0].startswith(f"flwd: error: cannot listen on {bind}: "), lines[0]
    # Bound before the data dir, recovery and the engine: none of them started.
    assert not (data_dir / "flwd.db").exists()
    return lines[0]


def test_a_busy_port_is_one_line_and_exit_1(workspace: Path, data_dir: Path) -> None:
    """Regression: a used --bind address printed 'internal error: ExceptionGroup'."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = _refusal(workspace, data_dir, f"127.0.0.1:{port}")
    assert f"127.0.0.1:{port}: address already in use (" in line
    assert "choose another --bind" in line


def test_an_address_not_of_this_host_and_a_name_that_does_not_resolve(
        workspace: Path, data_dir: Path) -> None:
    line = _refusal(workspace, data_dir, "192.0.2.1:0")  # TEST-NET-1: never ours
    assert "cannot assign requested address" in line
    line = _refusal(workspace, data_dir, "nosuch.invalid:0")
    assert "cannot resolve 'nosuch.invalid'" in line


def _as_nobody(command: list[str]) -> list[str]:
    """``command`` run as an unprivileged user (root drops to nobody with setpriv)."""
    if os.geteuid() != 0:
        return command
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("root, and no setpriv to drop privileges with")
    return [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", *command]


def test_a_privileged_port_is_permission_denied() -> None:
    unprivileged_start = int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text())
    if unprivileged_start <= 81:
        pytest.skip("every port is unprivileged on this host")
    with tempfile.TemporaryDirectory() as root:  # a workspace nobody may read
        os.chmod(root, 0o755)
        (Path(root) / "scripts").mkdir(mode=0o755)
        done = subprocess.run(
            _as_nobody([*FLWD, ":serve", "--bind", "127.0.0.1:81", "--no-containers"]),
            cwd=root, env=flwd_env(Path(root) / "data"), capture_output=True, text=True,
            timeout=60, check=False)
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines() == [
        "flwd: error: cannot listen on 127.0.0.1:81: permission denied (ports below 1024 need "
        "root or CAP_NET_BIND_SERVICE: choose a port from 1024 up)"]


def test_a_workspace_flwd_may_not_read_is_one_line(workspace: Path, data_dir: Path) -> None:
    """Any OSError on the way to serving (here: the scripts folder) is one line, exit 1."""
    if os.geteuid() != 0:
        workspace.joinpath("scripts").chmod(0)
    done = subprocess.run(_as_nobody([*FLWD, ":serve", "--bind", "127.0.0.1:0",
                                      "--no-containers"]),
                          cwd=workspace, env=flwd_env(data_dir), capture_output=True, text=True,
                          timeout=60, check=False)
    workspace.joinpath("scripts").chmod(0o755)
    assert done.returncode == 1, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("flwd: error: permission denied: "), lines
    assert "internal error" not in done.stderr
