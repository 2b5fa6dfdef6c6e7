"""Real Podman for the container tests: a containers.conf for this VM and a busybox image.

The session fixture writes the containers.conf the machine note prescribes
(runc, cgroupfs, no default ulimits, file events logger) and points
``CONTAINERS_CONF`` at it — /etc is never touched — and imports
``localhost/flwd-test/busybox:1`` built offline from the static busybox binary.
Every test then checks that no container labelled by flwd survives it.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FLWD, Server, flwd_env

IMAGE = "localhost/flwd-test/busybox:1"
CONTAINERS_CONF = """\
[containers]
default_ulimits = []
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""
APPLETS = ("sh", "echo", "cat", "ls", "sleep", "id", "env", "true", "grep", "touch", "tr",
           "test", "[", "cut", "sha256sum", "head", "wc")


def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], capture_output=True, text=True, timeout=120,
                          check=check)


def flwd_containers() -> list[str]:
    """Names of every container (running or not) labelled by flwd."""
    out = podman("ps", "--all", "--filter", "label=flwd.run", "--format", "{{.Names}}").stdout
    return out.split()


@pytest.fixture(scope="session")
def podman_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Environment for flwd processes using the test containers.conf and image map."""
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (.ci/run installs podman, runc, busybox-static)")
    busybox = shutil.which("busybox")
    if busybox is None:
        pytest.skip("busybox is not installed (.ci/run installs busybox-static)")
    base = tmp_path_factory.mktemp("podman")
    conf = base / "containers.conf"
    conf.write_text(CONTAINERS_CONF)
    saved = os.environ.get("CONTAINERS_CONF")
    os.environ["CONTAINERS_CONF"] = str(conf)
    try:
        if podman("image", "exists", IMAGE, check=False).returncode != 0:
            archive = base / "busybox.tar"
            with tarfile.open(archive, "w") as tar:
                info = tarfile.TarInfo("bin")
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
                tar.add(busybox, arcname="bin/busybox")
                for applet in APPLETS:
                    link = tarfile.TarInfo(f"bin/{applet}")
                    link.type, link.linkname = tarfile.SYMTYPE, "busybox"
                    tar.addfile(link)
                for folder in ("tmp", "proc", "sys", "dev", "run"):
                    info = tarfile.TarInfo(folder)
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)
            podman("import", str(archive), IMAGE)
        yield {"CONTAINERS_CONF": str(conf), "FLWD_IMAGE_MAP": f"alpine:3.20={IMAGE}"}
    finally:
        if saved is None:
            os.environ.pop("CONTAINERS_CONF", None)
        else:
            os.environ["CONTAINERS_CONF"] = saved


@pytest.fixture(autouse=True)
def no_leaked_containers(podman_env: dict[str, str]) -> Iterator[None]:
    """After each test, no container flwd started may be left (``podman ps -a``)."""
    yield
    leaked = flwd_containers()
    if leaked:
        podman("rm", "--force", *leaked, check=False)
    assert not leaked, f"containers survived the test: {leaked}"


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    """A bundle for the secure profile on a host without cosign (image signatures not
    verified), signed like ``cosign sign-blob --key``; the public key is ``policy.pub``."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    path = tmp_path / "policy.yaml"
    path.write_text("verify_signatures: disabled\n")
    key = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "policy.pub").write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    signature = key.sign(path.read_bytes(), ec.ECDSA(hashes.SHA256()))
    Path(f"{path}.sig").write_bytes(base64.b64encode(signature))
    return path


def start_container_server(workspace: Path, data_dir: Path, *flags: str,
                           **env: str) -> Server:
    """``flwd :serve`` WITH containers (the shared fixture passes --no-containers)."""
    process = subprocess.Popen(
        [*FLWD, ":serve", "--bind", "127.0.0.1:0", "--log", "json", "--dev", *flags],
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

    def drain() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            log.append(line)

    server = Server(process, url, log)
    server.drainer = threading.Thread(target=drain, daemon=True)
    server.drainer.start()
    return server


@pytest.fixture
def container_server(workspace: Path, data_dir: Path, podman_env: dict[str, str],
                     policy_file: Path) -> Iterator[Any]:
    servers: list[Server] = []

    def factory(*flags: str, **env: str) -> Server:
        merged = {**podman_env, "FLWD_POLICY_FILE": str(policy_file),
                  "FLWD_POLICY_PUBKEY": str(policy_file.with_name("policy.pub")),
                  "FLWD_GRACE": "2", **env}
        server = start_container_server(workspace, data_dir, *flags, **merged)
        servers.append(server)
        return server

    yield factory
    for server in servers:
        server.stop(signal.SIGTERM)  # also closes the pipe of a server a test killed
