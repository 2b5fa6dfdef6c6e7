"""Remembering across flwd processes that a container runtime passed its check (blocking).

A CLI container run checks the runtime before anything of the run exists
(``_probe``): 0.3–0.5 s with podman, as long as the container run itself. So the
answer "it works" is kept for :data:`REMEMBER_SECONDS` in a small file of the data
dir, under a fingerprint of what decides it: the runtimes found on PATH and their
binaries, the user, the environment variables and the configuration files that
runtimes read. A change to any of these, or the time running out, checks again. A
refusal is never kept (the next run sees a fix at once); a runtime that breaks while
remembered fails the run itself, in its own words, as it would without any check.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # _runtime asks this module; the type alone comes back
    from ._runtime import Runtime

REMEMBER_SECONDS = 300.0
#: Environment variables runtimes read (podman: CONTAINERS_*, CONTAINER_HOST, XDG_*;
#: docker: DOCKER_*), and those that change which files and binaries they find.
_ENV_PREFIXES = ("CONTAINER", "DOCKER_", "PODMAN", "XDG_")
_ENV_NAMES = ("PATH", "HOME", "TMPDIR")


def _config_files(env: Mapping[str, str]) -> list[Path]:
    home = Path(env.get("HOME", "~")).expanduser()
    config = Path(env.get("XDG_CONFIG_HOME") or home / ".config")
    files = [Path(folder) / name
             for folder in ("/etc/containers", "/usr/share/containers", config / "containers")
             for name in ("containers.conf", "storage.conf")]
    files.append(Path(env.get("DOCKER_CONFIG") or home / ".docker") / "config.json")
    files += [Path(env[name]) for name in ("CONTAINERS_CONF", "CONTAINERS_STORAGE_CONF")
              if env.get(name)]
    return files


def _stat(path: Path | str) -> list[int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return [info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns]


def fingerprint(found: Sequence[Runtime], env: Mapping[str, str]) -> str:
    """What decides whether the runtimes ``found`` on PATH work, as one digest."""
    decisive: dict[str, Any] = {
        "runtimes": [[runtime.kind, runtime.path, _stat(runtime.path)] for runtime in found],
        "uid": os.getuid(),
        "env": {name: value for name, value in sorted(env.items())
                if name.startswith(_ENV_PREFIXES) or name in _ENV_NAMES},
        "files": [[str(path), _stat(path)] for path in _config_files(env)],
    }
    return hashlib.sha256(json.dumps(decisive, sort_keys=True).encode()).hexdigest()


def recall(memory: Path, digest: str) -> tuple[str, str] | None:
    """``(kind, path)`` of the runtime that passed under ``digest`` within the last
    :data:`REMEMBER_SECONDS`, else None (also when the file is unreadable)."""
    try:
        kept = json.loads(memory.read_text())
        age = time.time() - float(kept["checked_at"])
        if kept["fingerprint"] == digest and 0 <= age < REMEMBER_SECONDS:
            return str(kept["kind"]), str(kept["path"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def remember(memory: Path, digest: str, runtime: Runtime) -> None:
    """Keep that ``runtime`` passed (0600, replaced atomically). Nothing is written
    when the data dir does not exist yet: a check does not create it."""
    if not memory.parent.is_dir():
        return
    text = json.dumps({"fingerprint": digest, "kind": runtime.kind, "path": runtime.path,
                       "checked_at": time.time()})
    try:
        handle, temporary = tempfile.mkstemp(dir=memory.parent, prefix=f".{memory.name}.")
        try:
            with os.fdopen(handle, "w") as file:
                file.write(text)
            os.replace(temporary, memory)
        except BaseException:
            os.unlink(temporary)
            raise
    except OSError:
        pass  # only a cache: the next run checks again
