"""``flwd init KIND PATH``: scaffold a runnable job under ``scripts/``."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from flwd.errors import UsageError
from flwd.plan import script_command

_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")

_CONFIG = """\
# Job definition: see docs/jobs.md. Arguments become typed flags:
#   flwd {words} --who Alice
job:
  name: "{name}"
  summary: Describe what this job does
{interpreter}argspec:
  args:
    - name: who
      type: string
      default: world
      description: Whom to greet
error_handling:
  policy: abort
"""

_SCRIPTS = {
    "bash": ("100_main.sh", "bash", """\
#!/usr/bin/env bash
# $who comes from the flwd profile; config.d/vars/*.sh and config.d/libs/*.sh
# are sourced first, so say_hello (libs/common.sh) is available.
set -euo pipefail
say_hello "${who}"
"""),
    "sh": ("100_main.sh", "sh", """\
#!/bin/sh
# POSIX sh gets arguments as ARG_* environment variables (the bash profile
# with config.d/vars and libs is for bash scripts only).
set -eu
echo "Hello, ${ARG_WHO}!"
"""),
    "python": ("100_main.py", None, """\
\"\"\"Arguments arrive in FLWD_ARGS_JSON (secrets as files: ARG_<NAME>_FILE).\"\"\"
import json
import os

args = json.loads(os.environ["FLWD_ARGS_JSON"])
print(f"Hello, {args['who']}!")
"""),
    "pwsh": ("100_main.ps1", None, """\
# Arguments arrive as environment variables: $env:ARG_WHO
Write-Output "Hello, $($env:ARG_WHO)!"
"""),
}

KINDS = tuple(_SCRIPTS)
#: Other names of a kind: flowd's ``init`` knows ``bash`` and ``ps`` (PowerShell).
_ALIASES = {"ps": "pwsh"}


def kind_named(kind: str) -> str:
    """The kind ``kind`` names (any case; ``ps`` is ``pwsh``).

    Raises:
        UsageError: no such kind.
    """
    name = kind.lower()
    name = _ALIASES.get(name, name)
    if name not in _SCRIPTS:
        raise UsageError(f"unknown job kind '{kind}'",
                         hint=f"use one of: {', '.join(KINDS)} (ps is pwsh)")
    return name


def job_parts(scripts_root: Path, path: str) -> list[str]:
    """The words of the job ``path`` names under ``scripts_root``.

    ``path`` is the job's path below the scripts root (``tools/backup`` or
    ``tools.backup``); the same path starting with the scripts root's own
    directory (``scripts/tools/backup``, as the shell completes it from the
    workspace) and an absolute path inside the scripts root name the same job.

    Raises:
        UsageError: a path outside the scripts root, one that climbs out of it,
            or one with odd characters.
    """
    hint = ("use words separated by '/' or '.', e.g. 'tools/backup' "
            "(letters, digits, '-' and '_')")
    text = path.replace("\\", "/")
    if path.startswith("/"):
        root = os.path.realpath(scripts_root)
        inside = os.path.relpath(os.path.realpath(path), root)
        if inside == "." or inside.split("/")[0] == "..":
            raise UsageError(f"invalid job path '{path}': it is outside the scripts root {root}",
                             hint=f"give a path under {root}, or one relative to it, "
                                  "e.g. 'tools/backup'")
        text = inside
    else:
        while text.startswith("./"):
            text = text[2:]
        first, slash, rest = text.partition("/")
        if slash and first == scripts_root.name:
            text = rest  # the workspace's view: scripts/tools/backup
    raw_parts = text.split("/")
    parts = [p for p in text.replace(".", "/").split("/") if p]
    climbs = any(p in (".", "..") for p in raw_parts)
    if not parts or climbs or any(not _SEGMENT.match(p) for p in parts):
        raise UsageError(f"invalid job path '{path}'", hint=hint)
    return parts


def missing_interpreter(kind: str) -> str | None:
    """The command a job scaffolded as ``kind`` runs its script with, when it is not on PATH
    (runs inherit only PATH from the environment, so this is what they will look up)."""
    script_name, interpreter, _body = _SCRIPTS[kind_named(kind)]
    command = script_command(interpreter, Path(script_name), config_path="config.yaml")[0]
    return None if shutil.which(command) else command


def scaffold(scripts_root: Path, kind: str, path: str, *, force: bool = False) -> list[Path]:
    """Create the job; returns the files written.

    Raises:
        UsageError: unknown kind, a path that is outside the scripts root, climbs
            out of it or has odd characters (see :func:`job_parts`), or a job that
            already exists.
    """
    kind = kind_named(kind)
    parts = job_parts(scripts_root, path)
    job_dir = scripts_root.joinpath(*parts)
    config = job_dir / "config.d" / "config.yaml"
    if config.exists() and not force:
        raise UsageError(f"{config} already exists", hint="pass --force to overwrite it")
    script_name, interpreter, body = _SCRIPTS[kind]
    (job_dir / "config.d" / "vars").mkdir(parents=True, exist_ok=True)
    (job_dir / "config.d" / "libs").mkdir(parents=True, exist_ok=True)
    written = []
    config.write_text(_CONFIG.format(
        words=" ".join(parts), name=" ".join(parts).title(),
        interpreter=f"interpreter: {interpreter}\n" if interpreter else "",
    ))
    written.append(config)
    if kind == "bash":
        variables = job_dir / "config.d" / "vars" / "10-defaults.sh"
        variables.write_text('# Sourced by bash before each script (outer levels first).\n'
                             'GREETING="Hello"\nexport GREETING\n')
        written.append(variables)
        library = job_dir / "config.d" / "libs" / "common.sh"
        library.write_text('# Functions shared by this job\'s bash scripts.\n'
                           'say_hello() {\n  echo "${GREETING}, $1!"\n}\n')
        written.append(library)
    script = job_dir / script_name
    script.write_text(body)
    script.chmod(0o755)
    written.append(script)
    return written
