"""How a script is run: the interpreter argv for a script file (sans-IO but for a peek at #!)."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from flwd.errors import ConfigInvalid, ExecutorUnavailable

_BY_SUFFIX: dict[str, list[str]] = {
    ".sh": ["bash"],
    ".bash": ["bash"],
    ".py": ["python3"],
    ".ps1": ["pwsh", "-NoProfile", "-NonInteractive", "-File"],
    ".js": ["node"],
    ".mjs": ["node"],
    ".rb": ["ruby"],
    ".pl": ["perl"],
}


def is_bash(argv_prefix: list[str]) -> bool:
    """True when the command runs bash (``bash``, ``/bin/bash``, ``/usr/bin/env bash``)."""
    if not argv_prefix:
        return False
    first = os.path.basename(argv_prefix[0])
    if first == "env":
        words = [w for w in argv_prefix[1:] if not w.startswith("-")]
        first = os.path.basename(words[0]) if words else ""
    return first == "bash"


def _shebang(script: Path) -> list[str] | None:
    try:
        with script.open("rb") as f:
            head = f.readline(256)
    except OSError:
        return None
    if not head.startswith(b"#!"):
        return None
    return head[2:].decode("utf-8", "replace").split()


def script_command(interpreter: str | None, script: Path, *, config_path: str) -> list[str]:
    """The argv that runs ``script``.

    ``interpreter`` from config.yaml wins; otherwise the file suffix decides
    (``.sh`` → bash, ``.py`` → python3, ``.ps1`` → pwsh …); otherwise an
    executable file with a ``#!`` line runs directly.

    Raises:
        ExecutorUnavailable: ``container:`` interpreters (container executor).
        ConfigInvalid: nothing says how to run the script.
    """
    if interpreter:
        if interpreter.strip().lower().startswith("container:"):
            raise ExecutorUnavailable(
                f"{config_path}: interpreter '{interpreter}' needs the container executor, "
                "which this flwd build cannot run yet",
                hint="use a host interpreter such as 'bash' for now",
            )
        words = shlex.split(interpreter)
        if not words:
            raise ConfigInvalid(f"{config_path}: interpreter is empty")
        return [*words, str(script)]
    prefix = _BY_SUFFIX.get(script.suffix.lower())
    if prefix is not None:
        return [*prefix, str(script)]
    shebang = _shebang(script)
    if shebang and os.access(script, os.X_OK):
        return [str(script)]
    if shebang:
        return [*shebang, str(script)]
    raise ConfigInvalid(
        f"{config_path}: cannot tell how to run {script.name}",
        hint="set 'interpreter:' in config.yaml, give the file a known suffix "
             "(.sh, .py, .ps1 …) or a #! line",
    )


def command_is_bash(argv: list[str]) -> bool:
    """Whether a full argv (from :func:`script_command`) runs bash, including via ``#!``."""
    if len(argv) == 1:
        shebang = _shebang(Path(argv[0]))
        return bool(shebang) and is_bash(shebang or [])
    return is_bash(argv[:-1])


def display_command(argv: list[str], cwd: Path) -> str:
    """Argv for humans: paths under ``cwd`` shown relative to it."""
    shown = []
    for word in argv:
        path = Path(word)
        if path.is_absolute():
            try:
                word = str(path.relative_to(cwd))
            except ValueError:
                pass
        shown.append(word)
    return shlex.join(shown)
