"""Why a step could not start, in one line that names the cause (sans-IO but for look-ups).

A step that cannot start (a missing interpreter, arguments beyond the kernel's
limit, a missing working directory) is a failed step with that line as its
error, never a crashed run.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path


class StepError(Exception):
    """A host step could not be run; ``str()`` is the one-line cause."""


def _shebang(path: str) -> list[str]:
    try:
        with open(path, "rb") as f:
            head = f.readline(256)
    except OSError:
        return []
    if not head.startswith(b"#!"):
        return []
    return head[2:].decode("utf-8", "replace").split()


def resolve_program(argv: Sequence[str], env: Mapping[str, str], cwd: Path) -> str:
    """The path the step's ``argv[0]`` runs, looked up on the step's own ``PATH``.

    Raises:
        StepError: nothing to run, or no such program.
    """
    if not argv:
        raise StepError("the step has no command to run")
    first = argv[0]
    if "\0" in first:
        raise StepError("the step's command contains a NUL character")
    if "/" in first:
        return first if os.path.isabs(first) else str(cwd / first)
    found = shutil.which(first, path=env.get("PATH", os.defpath))
    if found is None:
        raise StepError(f"interpreter '{first}' not found on PATH")
    return found


#: The kernel's limit for one argument or ``NAME=value`` (MAX_ARG_STRLEN, 32 pages).
MAX_ARG_STRLEN = 32 * 4096


def _too_big(argv: Sequence[str], env: Mapping[str, str]) -> str:
    """What made an exec fail with E2BIG, in words."""
    sizes = [(len(os.fsencode(word)) + 1, f"argument {index}")
             for index, word in enumerate(argv)]
    sizes += [(len(os.fsencode(f"{key}={value}")) + 1, f"the environment variable {key}")
              for key, value in env.items()]
    largest, what = max(sizes)
    if largest > MAX_ARG_STRLEN:
        return (f"{what} is {largest:,} bytes, over the kernel's limit of {MAX_ARG_STRLEN:,} "
                "for one argument or variable (E2BIG)")
    return (f"its arguments and environment ({sum(size for size, _ in sizes):,} bytes) "
            "exceed the system's limit for a new program (E2BIG)")


def explain(code: int, *, stage: str, argv: Sequence[str], env: Mapping[str, str],
            program: str, cwd: Path) -> str:
    """The one line for a start that failed with ``code`` (an errno) at ``stage``.

    ``stage`` is ``cwd`` (entering the working directory), ``cgroup`` (joining the
    step's cgroup), ``exec`` or ``other``.
    """
    name = argv[0] if argv else program
    reason = os.strerror(code) if code else "unknown error"
    if stage == "cwd":
        if code == errno.ENOENT:
            return f"cannot start {name}: the working directory {cwd} does not exist"
        return f"cannot start {name}: cannot enter the working directory {cwd}: {reason}"
    if stage == "cgroup":
        return f"cannot start {name}: cannot join the step's cgroup: {reason}"
    if stage != "exec":
        return f"cannot start {name}: {reason}"
    if code == errno.E2BIG:
        return f"cannot start {name}: {_too_big(argv, env)}; pass large values in a file"
    if code == errno.ENOENT:
        interpreter = _shebang(program)
        if interpreter and os.path.exists(program):
            return (f"interpreter '{interpreter[0]}' (the #! line of {name}) not found")
        return f"cannot start {name}: {program} does not exist"
    if code == errno.EACCES:
        return f"cannot start {name}: permission denied (is {program} executable?)"
    if code == errno.ENOEXEC:
        return (f"cannot start {name}: {program} is not a program this system can run "
                "(add a #! line, or set 'interpreter:' in config.yaml)")
    return f"cannot start {name}: {reason}"
