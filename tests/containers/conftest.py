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
import socket
import subprocess
import tarfile
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Server, start_server

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


def write_signed_bundle(path: Path, text: str) -> Path:
    """Write the policy bundle ``text`` to ``path``, signed like ``cosign sign-blob --key``
    (``path.sig``); the public key is ``policy.pub`` next to it (FLWD_POLICY_PUBKEY)."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    path.write_text(text)
    key = ec.generate_private_key(ec.SECP256R1())
    (path.parent / "policy.pub").write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    signature = key.sign(path.read_bytes(), ec.ECDSA(hashes.SHA256()))
    Path(f"{path}.sig").write_bytes(base64.b64encode(signature))
    return path


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    """A bundle for the secure profile on a host without cosign (image signatures not
    verified), signed like ``cosign sign-blob --key``; the public key is ``policy.pub``."""
    return write_signed_bundle(tmp_path / "policy.yaml", "verify_signatures: disabled\n")


def start_container_server(workspace: Path, data_dir: Path, *flags: str,
                           **env: str) -> Server:
    """``flwd :serve --dev`` WITH containers (the shared fixture passes --no-containers)."""
    return start_server(workspace, data_dir, "--dev", *flags, containers=True, **env)


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


# -- a real OCI registry on loopback, and add-on images pushed to it ----------------


@dataclass(frozen=True)
class Registry:
    """``docker-registry`` serving on ``host`` (``127.0.0.1:PORT``)."""

    host: str
    #: Environment for podman and flwd: the containers.conf plus a registries.conf
    #: listing the registry as insecure (plain HTTP), as a user would configure it.
    env: dict[str, str]


@pytest.fixture(scope="session")
def oci_registry(podman_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[Registry]:
    """A real registry (Debian's docker-registry) on a free loopback port, for the session."""
    binary = shutil.which("docker-registry")
    if binary is None:
        pytest.skip("docker-registry is not installed (.ci/run installs it)")
    base = tmp_path_factory.mktemp("registry")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    host = f"127.0.0.1:{port}"
    config = base / "config.yml"
    config.write_text(f"""version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: {base / "data"}
  delete:
    enabled: true
http:
  addr: {host}
""")
    registries = base / "registries.conf"
    registries.write_text(f'[[registry]]\nlocation = "{host}"\ninsecure = true\n')
    process = subprocess.Popen([binary, "serve", str(config)], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)
    assert process.stdout is not None
    saved = os.environ.get("CONTAINERS_REGISTRIES_CONF")
    os.environ["CONTAINERS_REGISTRIES_CONF"] = str(registries)
    try:
        seen: list[str] = []
        for line in process.stdout:  # it says when it listens: no polling
            seen.append(line)
            if f'msg="listening on {host}"' in line:
                break
        else:
            raise AssertionError("docker-registry did not start:\n" + "".join(seen))
        # Keep reading so the registry never blocks on a full pipe.
        threading.Thread(target=lambda: [None for _ in process.stdout or ()],
                         daemon=True).start()
        with urllib.request.urlopen(f"http://{host}/v2/", timeout=10) as response:
            assert response.status == 200
        yield Registry(host, {**podman_env, "CONTAINERS_REGISTRIES_CONF": str(registries)})
    finally:
        if saved is None:
            os.environ.pop("CONTAINERS_REGISTRIES_CONF", None)
        else:
            os.environ["CONTAINERS_REGISTRIES_CONF"] = saved
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


#: The add-on of most tests: a job with a command (args, a secret as a file) and a job
#: without one (plans only).
ADDON_MANIFEST = """\
apiVersion: flwd.addon/v1
kind: AddOn
metadata:
  name: Test add-on
  id: flwd-test.addon
  version: 1.0.0
  summary: jobs shipped in an image
requires: {}
jobs:
  - id: greet
    name: Greet
    summary: prints a greeting from inside the add-on image
    argspec:
      args:
        - {name: who, type: string, required: true, description: whom to greet}
        - {name: times, type: integer, default: 1, minimum: 1, maximum: 3}
        - {name: api_key, type: string, format: secret}
    requirements: {tools: [{name: busybox, version: "1"}, {name: sh}]}
    command: ["/addon/greet.sh"]
  - id: info
    name: Info
    summary: a job to plan, not to run
    argspec: {}
"""
GREET = """\
#!/bin/sh
i=0
while [ "$i" -lt "${ARG_TIMES:-1}" ]; do echo "hello $ARG_WHO from the add-on"; i=$((i+1)); done
if [ -n "$ARG_API_KEY_FILE" ]; then echo "key_sha=$(busybox sha256sum "$ARG_API_KEY_FILE" | cut -c1-16)"; fi
echo "key_in_env=$(env | grep -c 'tok-addon-7' || true)"
if touch /probe 2>/dev/null; then echo rootfs=writable; else echo rootfs=read-only; fi
"""
#: ``cat`` of the probe image: it reports what the extraction container sees (its
#: capabilities, network interfaces, whether / is writable) in the manifest it prints.
PROBE_CAT = """\
#!/bin/sh
caps=$(busybox grep '^CapEff' /proc/self/status | busybox cut -f2)
ifaces=$(busybox tail -n +3 /proc/net/dev | busybox cut -d: -f1 | busybox tr -d ' ' | busybox tr '\\n' ',')
rootfs=$(busybox awk '$2 == "/" {split($4, o, ","); print o[1]}' /proc/mounts)
# / itself is r-x in the image; /probe-rw is the owner's (root's) to write unless read-only.
if busybox touch /probe-rw/written 2>/dev/null; then write=ok; else write=failed; fi
printf 'apiVersion: flwd.addon/v1\\nkind: AddOn\\nmetadata:\\n  name: probe add-on\\n'
printf '  summary: "caps=%s ifaces=%s rootfs=%s write=%s"\\n' "$caps" "$ifaces" "$rootfs" \\
  "$write"
printf 'requires: {}\\njobs:\\n  - {id: noop, name: noop, summary: nothing, argspec: {}}\\n'
"""
INVALID_MANIFEST = """\
apiVersion: flwd.addon/v2
kind: AddOn
metadata: {name: ab, version: "1.0"}
requires: {}
unexpected: true
jobs:
  - id: Bad
    name: bad
    argspec:
      args:
        - {name: level, type: float}
"""


@dataclass(frozen=True)
class AddonImage:
    ref: str
    #: The manifest digest the registry stored (``podman push --digestfile``).
    digest: str


def _build_and_push(registry: Registry, work: Path, name: str, files: dict[str, str]
                    ) -> AddonImage:
    context = work / name
    for rel, text in files.items():
        path = context / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(0o755)
    copies = "".join(f"COPY {top} /{top}\n" for top in sorted({rel.split("/")[0]
                                                              for rel in files}))
    # A label of our own: a source's metadata.labels shows the image's labels.
    (context / "Containerfile").write_text(
        f"FROM {IMAGE}\nLABEL org.opencontainers.image.title=flwd-test-{name}\n{copies}")
    build_tag = f"localhost/flwd-test/build-{name}:1"
    podman("build", "--quiet", "--tag", build_tag, str(context))
    ref = f"{registry.host}/flwd-test/{name}:1"
    digest_file = work / f"{name}.digest"
    podman("push", "--quiet", "--tls-verify=false", "--digestfile", str(digest_file), build_tag,
           f"docker://{ref}")
    # Only the registry's copy remains: a pull is what brings it into local storage.
    podman("rmi", "--force", build_tag)
    return AddonImage(ref, digest_file.read_text().strip())


@pytest.fixture(scope="session")
def addon_images(oci_registry: Registry, tmp_path_factory: pytest.TempPathFactory
                 ) -> dict[str, AddonImage]:
    """Add-on images built offline from the busybox image and pushed, once per session:
    ``addon`` (two jobs), ``probe`` (its ``cat`` reports the extraction container's view),
    ``nomanifest`` and ``invalid``; ``missing`` names an image the registry does not have."""
    work = tmp_path_factory.mktemp("addons")
    images = {
        "addon": _build_and_push(oci_registry, work, "addon", {
            "flwd-addon/manifest.yaml": ADDON_MANIFEST, "addon/greet.sh": GREET}),
        "probe": _build_and_push(oci_registry, work, "probe", {
            "flwd-addon/README": "the manifest is printed by /bin/cat itself\n",
            "probe-rw/README": "the probe writes here\n",
            "bin/cat": PROBE_CAT}),
        "nomanifest": _build_and_push(oci_registry, work, "nomanifest", {
            "addon/README": "no manifest here\n"}),
        "invalid": _build_and_push(oci_registry, work, "invalid", {
            "flwd-addon/manifest.yaml": INVALID_MANIFEST}),
    }
    images["missing"] = AddonImage(f"{oci_registry.host}/flwd-test/missing:1", "")
    return images


# -- add-on servers and their API ---------------------------------------------------


AUTH = {"Authorization": "Bearer dev-token"}


def all_containers() -> list[str]:
    return podman("ps", "--all", "--format", "{{.Names}}").stdout.split()


@pytest.fixture
def no_containers_at_all(podman_env: dict[str, str]) -> Iterator[None]:
    """Not even an extraction container (labelled flwd.addon, not flwd.run) may survive
    (``pytestmark = pytest.mark.usefixtures("no_containers_at_all")`` in a module)."""
    yield
    leaked = all_containers()
    if leaked:
        podman("rm", "--force", *leaked, check=False)
    assert not leaked, f"containers survived the test: {leaked}"


@pytest.fixture
def addon_server(container_server: Any, oci_registry: Registry, tmp_path: Path) -> Any:
    """``flwd :serve`` with containers, the registry's registries.conf, and a signed bundle
    (``bundle`` text; default: the registry allowed, signatures not verified)."""

    def start(bundle: str | None = None, *flags: str, **env: str) -> Server:
        folder = tmp_path / f"bundle-{len(list(tmp_path.glob('bundle-*')))}"
        folder.mkdir()
        text = bundle if bundle is not None else (
            f"verify_signatures: disabled\nallowed_registries: ['{oci_registry.host}']\n")
        path = write_signed_bundle(folder / "policy.yaml", text)
        return container_server(*flags, **oci_registry.env, FLWD_POLICY_FILE=str(path),
                                FLWD_POLICY_PUBKEY=str(folder / "policy.pub"), **env)

    return start


def add(server: Server, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{server.url}/sources", json=body, headers=AUTH, timeout=120)


def events(server: Server, run_id: str) -> list[dict[str, Any]]:
    found = []
    with httpx.stream("GET", f"{server.url}/runs/{run_id}/events", headers=AUTH,
                      timeout=120) as stream:
        for line in stream.iter_lines():
            if line.startswith("data: "):
                found.append(json.loads(line[6:]))
    return found


def output(records: list[dict[str, Any]]) -> dict[str, str]:
    lines = [r["data"]["message"] for r in records if r["type"] == "step.log"]
    return {k: v for k, v in (line.split("=", 1) for line in lines if "=" in line)}


# -- image signatures ------------------------------------------------------------------

#: A stand-in for ``cosign verify --key KEY IMAGE`` (no cosign on these machines, and
#: keyless verification needs the internet): it verifies the images listed in the file
#: ``signed`` next to it, and answers others as cosign does.
FAKE_COSIGN = """\
#!/bin/sh
[ "$1" = verify ] && [ "$2" = --key ] && [ -r "$3" ] || {
  echo "fake cosign: expected 'verify --key KEY IMAGE', got: $*" >&2; exit 2; }
if grep -qxF -- "$4" "$(dirname "$0")/signed"; then
  echo "Verification for $4 -- The signatures were verified against the specified public key"
  exit 0
fi
echo "Error: no matching signatures: $4" >&2
exit 1
"""


@dataclass(frozen=True)
class Cosign:
    """Environment that puts the fake ``cosign`` first on PATH (with FLWD_IMAGE_PUBKEY)."""

    env: dict[str, str]
    signed: Path

    def sign(self, *refs: str) -> None:
        with self.signed.open("a") as f:
            f.writelines(f"{ref}\n" for ref in refs)


@pytest.fixture
def fake_cosign(tmp_path: Path) -> Cosign:
    folder = tmp_path / "cosign-bin"
    folder.mkdir()
    program = folder / "cosign"
    program.write_text(FAKE_COSIGN)
    program.chmod(0o755)
    signed = folder / "signed"
    signed.touch()
    key = tmp_path / "image.pub"
    key.write_text("-----BEGIN PUBLIC KEY-----\n(not checked by the fake)\n"
                   "-----END PUBLIC KEY-----\n")
    return Cosign({"PATH": f"{folder}:{os.environ.get('PATH', '')}",
                   "FLWD_IMAGE_PUBKEY": str(key)}, signed)
