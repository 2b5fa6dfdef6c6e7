"""Finding the container runtime, podman (preferred) or docker, and requiring one that works.

:func:`detect_runtime` only looks on PATH (cheap; reaping and recovery use it).
:func:`require_runtime` is the preflight of ``flwd :serve`` and of a CLI container
run: the runtime must also work (``_probe``), so that a broken one is refused before
anything runs instead of failing every run. Both are blocking (trio callers hop to
a thread, or accept the wait, as the CLI's planning does).
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from flwd.errors import ContainerRuntimeUnavailable

from ._probe import unusable
from ._remember import fingerprint, recall, remember

RUNTIMES = ("podman", "docker")
#: The data dir's file where CLI runs remember a runtime that passed (``_remember``).
RUNTIME_MEMORY = "container-runtime.json"


@dataclass(frozen=True, slots=True)
class Runtime:
    """A container runtime CLI: ``kind`` is ``podman`` or ``docker``, ``path`` its binary."""

    kind: str
    path: str

    @property
    def is_podman(self) -> bool:
        return self.kind == "podman"


def _candidates(env: Mapping[str, str]) -> list[str]:
    wanted = env.get("FLWD_CONTAINER_RUNTIME", "").strip()
    return [wanted] if wanted else list(RUNTIMES)


def _found(name: str, env: Mapping[str, str]) -> Runtime | None:
    path = shutil.which(name, path=env.get("PATH", os.defpath))
    if path is None:
        return None
    return Runtime("docker" if "docker" in os.path.basename(path) else "podman", path)


def detect_runtime(env: Mapping[str, str] | None = None) -> Runtime | None:
    """``FLWD_CONTAINER_RUNTIME`` (podman, docker or a path) if set, else podman, else docker.

    None when nothing is on PATH. Whether it works is :func:`require_runtime`'s question.
    """
    env = os.environ if env is None else env
    for name in _candidates(env):
        runtime = _found(name, env)
        if runtime is not None:
            return runtime
    return None


def installed_runtimes(env: Mapping[str, str] | None = None) -> list[Runtime]:
    """Every runtime on PATH — ``FLWD_CONTAINER_RUNTIME``'s, podman and docker — once each.

    For cleaning up after a dead process: it may have used another runtime than this
    process would (its own ``FLWD_CONTAINER_RUNTIME``, or docker because its podman did
    not work), so its containers are looked for in each.
    """
    env = os.environ if env is None else env
    wanted = env.get("FLWD_CONTAINER_RUNTIME", "").strip()
    found: dict[str, Runtime] = {}
    for name in ([wanted] if wanted else []) + list(RUNTIMES):
        runtime = _found(name, env)
        if runtime is not None:
            found.setdefault(os.path.realpath(runtime.path), runtime)
    return list(found.values())


#: Runtimes found usable by this process, per environment: a server checks once at
#: start-up, a CLI run once. A refusal is not kept: the next check sees a fix.
_usable: dict[tuple[tuple[str, str], ...], Runtime] = {}
_usable_lock = threading.Lock()


def require_runtime(env: Mapping[str, str] | None = None, *, memory: Path | None = None
                    ) -> Runtime:
    """The first runtime of :func:`detect_runtime`'s order that is on PATH *and* works.

    A podman that cannot create a container, or a docker whose daemon does not
    answer, is skipped for the next candidate (docker after podman); with
    ``FLWD_CONTAINER_RUNTIME`` only that one is tried. ``env`` is the environment
    of the runtime calls too (``CONTAINERS_CONF``, ``DOCKER_HOST`` …). A runtime
    that worked is not checked again in this process, nor — with ``memory``, a
    file of the data dir — by the next processes for a while (``_remember``).

    Raises:
        ContainerRuntimeUnavailable: none is on PATH, or none of those found works
            (the detail names each, with the runtime's own words).
    """
    env = os.environ if env is None else env
    key = tuple(sorted(env.items()))
    with _usable_lock:
        known = _usable.get(key)
    if known is not None:
        return known
    runtime = _check(env, memory)
    with _usable_lock:
        _usable[key] = runtime
    return runtime


def _check(env: Mapping[str, str], memory: Path | None) -> Runtime:
    names = _candidates(env)
    found = [runtime for runtime in (_found(name, env) for name in names) if runtime]
    if not found:
        looked = (f"FLWD_CONTAINER_RUNTIME={names[0]} is not on PATH"
                  if env.get("FLWD_CONTAINER_RUNTIME", "").strip()
                  else "neither podman nor docker is on PATH")
        raise ContainerRuntimeUnavailable(
            f"no container runtime found: {looked}",
            hint="install podman (preferred) or docker" + (
                ", or set FLWD_CONTAINER_RUNTIME to one that is" if len(names) == 1 else ""))
    digest = fingerprint(found, env) if memory is not None else ""
    kept = recall(memory, digest) if memory is not None else None
    if kept is not None and Runtime(*kept) in found:
        return Runtime(*kept)
    reasons = []
    for runtime in found:
        reason = unusable(runtime, env)
        if reason is None:
            if memory is not None:
                remember(memory, digest, runtime)
            return runtime
        reasons.append(reason)
    raise ContainerRuntimeUnavailable(
        "no usable container runtime: " + "; ".join(reasons),
        hint="; ".join(dict.fromkeys(_fix(runtime) for runtime in found)))


def _fix(runtime: Runtime) -> str:
    if runtime.is_podman:
        return ("check that 'podman run --rm IMAGE true' works; docs/containers.md#troubleshooting "
                "says how")
    return "start the Docker daemon (e.g. 'sudo systemctl start docker') or set DOCKER_HOST"
