"""Whether a container runtime found on PATH can run containers (blocking, a fraction of
a second).

Why these checks (measured on the development VM, podman 4.3 with runc and a docker 28
client without a daemon; docs/containers.md, "Runtime", has the numbers):

- podman has no daemon to ask. ``podman info`` (0.3–0.5 s) succeeds where every
  container fails (runc refusing the default rlimits). Creating and initialising a
  container (``create`` + ``init`` + ``rm``) costs the same and fails exactly where
  runs fail: the OCI runtime sets up the namespaces, cgroup, rlimits and mounts with
  the hardening flags of every run. It needs no image (``--rootfs`` of an empty
  temporary folder, a host path as the runs' bind mounts are) and no network, and
  nothing runs in it: ``init`` stops before the container's process starts.
  A probe a killed flwd left behind is removed by the next check (``_leftovers``).
- docker fails when its daemon is down or out of reach: ``docker info`` asks the
  daemon (0.02 s when there is none). Creating a container would need an image,
  which a preflight must not pull.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ._argv import PIDS_LIMIT
from ._leftovers import (
    OWNER_LABEL,
    PROBE_LABEL,
    dead_probes,
    list_probes,
    owner_label,
    probe_folder,
    remove_folders,
)

if TYPE_CHECKING:  # _runtime asks this module; the type alone comes back
    from ._runtime import Runtime

#: One runtime call of the check; a daemon that does not answer in this time is not usable.
CHECK_TIMEOUT = 30.0
#: The runtime's own words kept in the error (its last error line).
_REASON_CHARS = 400
#: The probe container's command: it must exist for the OCI runtime to create the
#: container, and is never executed (``init`` stops before the process starts).
_PROBE_COMMAND = "/flwd-preflight"


def unusable(runtime: Runtime, env: Mapping[str, str]) -> str | None:
    """Why ``runtime`` cannot run containers, in its own words; None when it can.

    ``env`` is the environment of the runtime calls (``CONTAINERS_CONF``,
    ``DOCKER_HOST`` …), as for the runs.
    """
    if not runtime.is_podman:
        failure = _call([runtime.path, "info"], env)
        return None if failure is None else (
            f"{runtime.kind} ({runtime.path}): '{runtime.kind} info' failed: {failure}")
    name = f"flwd-preflight-{os.getpid()}-{secrets.token_hex(4)}"
    # Named as the container: a dead process's folder is found with its probe.
    rootfs = probe_folder(name)
    rootfs.mkdir(mode=0o700)
    try:
        probe = rootfs / _PROBE_COMMAND.lstrip("/")
        probe.write_text(f"#!{_PROBE_COMMAND}\n")  # never run
        probe.chmod(0o755)
        create = [runtime.path, "create", "--name", name, "--label", f"{PROBE_LABEL}=1",
                  "--label", f"{OWNER_LABEL}={owner_label()}",
                  "--init", "--cap-drop=ALL", "--security-opt=no-new-privileges",
                  "--read-only", "--network", "none", f"--pids-limit={PIDS_LIMIT}",
                  "--rootfs", str(rootfs), _PROBE_COMMAND]
        listing = list_probes(runtime.path, env)  # alongside the probe (``_leftovers``)
        try:
            failure = _call(create, env) or _call([runtime.path, "init", name], env)
        finally:  # also after a create that timed out: it may have made the container
            leftovers = dead_probes(listing)
            _call([runtime.path, "rm", "--force", "--ignore", name, *leftovers], env)
            remove_folders(leftovers)
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)
    return None if failure is None else (
        f"{runtime.kind} ({runtime.path}) cannot create a container: {failure}")


def _call(argv: list[str], env: Mapping[str, str]) -> str | None:
    """None when ``argv`` succeeds; else what went wrong, in the runtime's words."""
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              errors="replace", timeout=CHECK_TIMEOUT, env=dict(env),
                              check=False)
    except subprocess.TimeoutExpired:
        return f"'{argv[1]}' did not answer within {CHECK_TIMEOUT:g} s"
    except OSError as exc:
        return f"cannot be started: {exc.strerror or exc}"
    if done.returncode == 0:
        return None
    lines = [line.strip() for line in (done.stderr or done.stdout).splitlines() if line.strip()]
    errors = [line for line in lines if line.lower().startswith("error")]
    said = (errors or lines or [f"'{argv[1]}' exited with status {done.returncode}"])[-1]
    return said if len(said) <= _REASON_CHARS else said[:_REASON_CHARS - 1] + "…"
