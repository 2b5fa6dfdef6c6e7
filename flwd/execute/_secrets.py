"""Where a run's secret files live, writing them and removing them (blocking, small).

A secret argument reaches a step only as a file (``ARG_<NAME>_FILE``). The
file is plaintext, so it should not outlive the run, nor reach a disk at all
when that can be avoided: it goes to ``$XDG_RUNTIME_DIR/flwd/<run id>/secrets/``
(a per-user tmpfs, emptied at logout and boot) when that directory is usable,
else to ``<data dir>/runs/<run id>/secrets/``. Directories are 0700, files 0600.

The run removes its files before it journals ``run.finish``, so a run that is
terminal in the Core DB has none left; start-up recovery removes those of the
runs it marks ``interrupted`` (in both places), and sweeps the runtime
directory for any of a terminal run.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path

#: flwd's directory under ``$XDG_RUNTIME_DIR``.
RUNTIME_SUBDIR = "flwd"


def runtime_root(env: Mapping[str, str] | None = None) -> Path | None:
    """``$XDG_RUNTIME_DIR/flwd`` when ``XDG_RUNTIME_DIR`` is usable, else None.

    Usable: an absolute path to a directory owned by this user with mode 0700,
    as the XDG base directory specification promises (anything else may be
    readable by others, or be no tmpfs at all).
    """
    value = (os.environ if env is None else env).get("XDG_RUNTIME_DIR")
    if not value or not os.path.isabs(value):
        return None
    try:
        info = os.stat(value)
    except OSError:
        return None
    if (not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid()
            or stat.S_IMODE(info.st_mode) != 0o700):
        return None
    return Path(value) / RUNTIME_SUBDIR


def secrets_dir(runs_dir: Path, run_id: str, env: Mapping[str, str] | None = None) -> Path:
    """The directory that holds the secret files of run ``run_id`` (see the module docstring)."""
    root = runtime_root(env)
    if root is not None:
        return root / run_id / "secrets"
    return runs_dir / run_id / "secrets"


def write_secret_files(folder: Path, secrets: Mapping[str, str]) -> dict[str, str]:
    """Write each secret to ``folder/<name>`` (0600, folders 0700); name → path.

    Raises:
        OSError: the folder or a file cannot be written.
    """
    # Each level is created 0700: under $XDG_RUNTIME_DIR the run's own folder
    # is created here too, and no level may be more open than the files.
    for level in (folder.parent.parent, folder.parent, folder):
        try:
            level.mkdir(mode=0o700)
        except FileExistsError:
            pass
    paths: dict[str, str] = {}
    for name, value in secrets.items():
        path = folder / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(value.encode())
        paths[name] = str(path)
    return paths


def remove_secret_files(runs_dir: Path, run_ids: Iterable[str],
                        env: Mapping[str, str] | None = None) -> None:
    """Remove the secret files of ``run_ids`` wherever they may be (never raises)."""
    root = runtime_root(env)
    for run_id in run_ids:
        shutil.rmtree(runs_dir / run_id / "secrets", ignore_errors=True)
        if root is not None:
            shutil.rmtree(root / run_id, ignore_errors=True)


def runs_with_runtime_secrets(env: Mapping[str, str] | None = None) -> list[str]:
    """Ids of the runs (of any data dir) that have a folder under the runtime root."""
    root = runtime_root(env)
    if root is None:
        return []
    try:
        with os.scandir(root) as entries:
            return [entry.name for entry in entries if entry.name.startswith("run-")]
    except OSError:
        return []
