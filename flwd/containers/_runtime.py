"""Finding the container runtime: podman (preferred) or docker (sans-trio, cheap)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass

from flwd.errors import ContainerRuntimeUnavailable

RUNTIMES = ("podman", "docker")


@dataclass(frozen=True, slots=True)
class Runtime:
    """A container runtime CLI: ``kind`` is ``podman`` or ``docker``, ``path`` its binary."""

    kind: str
    path: str

    @property
    def is_podman(self) -> bool:
        return self.kind == "podman"


def detect_runtime(env: Mapping[str, str] | None = None) -> Runtime | None:
    """``FLWD_CONTAINER_RUNTIME`` (podman, docker or a path) if set, else podman, else docker.

    None when nothing usable is on PATH.
    """
    env = os.environ if env is None else env
    search = env.get("PATH", os.defpath)
    wanted = env.get("FLWD_CONTAINER_RUNTIME", "").strip()
    candidates = [wanted] if wanted else list(RUNTIMES)
    for name in candidates:
        path = shutil.which(name, path=search)
        if path is not None:
            base = os.path.basename(path)
            kind = "docker" if "docker" in base else "podman"
            return Runtime(kind, path)
    return None


def require_runtime(env: Mapping[str, str] | None = None) -> Runtime:
    """The runtime, or :class:`ContainerRuntimeUnavailable` saying what was looked for."""
    runtime = detect_runtime(env)
    if runtime is None:
        env = os.environ if env is None else env
        wanted = env.get("FLWD_CONTAINER_RUNTIME")
        looked = f"FLWD_CONTAINER_RUNTIME={wanted}" if wanted else "podman or docker"
        raise ContainerRuntimeUnavailable(
            f"no container runtime found: {looked} is not on PATH",
            hint="install podman (preferred) or docker, or run the job where one is present")
    return runtime
