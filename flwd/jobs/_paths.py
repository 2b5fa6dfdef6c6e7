"""``format: file`` and ``format: directory``: the bound value must name one that exists.

This is the one argument check that reads the filesystem, so it is not part of
binding (sans-IO, and done by a remote CLI too, on a host that is not the one
running the job): the plan builder calls it, on the host that runs the job, with
the directory the job's scripts start in. A relative value is taken from there,
as the scripts will take it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ._argspec import Arg, show
from ._problems import ArgProblem, args_invalid

__all__ = ["check_paths", "path_problems"]

_KIND = {"file": ("a file", os.path.isfile), "directory": ("a directory", os.path.isdir)}


def path_problems(args: Sequence[Arg], values: Mapping[str, Any], base: Path
                  ) -> list[ArgProblem]:
    """A problem for every ``file``/``directory`` argument whose value is not one.

    Arguments that were not given (and have no default) are not checked.
    """
    problems: list[ArgProblem] = []
    for arg in args:
        value = values.get(arg.name)
        if arg.format not in _KIND or not isinstance(value, str) or not value:
            continue
        what, test = _KIND[arg.format]
        path = os.path.join(base, value)
        if test(path):
            continue
        found = ("does not exist" if not os.path.lexists(path)
                 else f"is not {what}" if os.path.exists(path) else "is a broken symlink")
        message = f"{show(value)} {found} (format: {arg.format})"
        problems.append(ArgProblem(arg.name, message, f"{arg.name}: {message}"))
    return problems


def check_paths(args: Sequence[Arg], values: Mapping[str, Any], base: Path, *,
                job_id: str) -> None:
    """Raise :class:`~flwd.errors.ArgsInvalid` naming every argument :func:`path_problems`
    finds (exit status 2 on the CLI, 422 over HTTP)."""
    problems = path_problems(args, values, base)
    if problems:
        raise args_invalid(problems, job_id=job_id,
                           hint=f"give an existing path; a relative one starts at {base}, "
                                "where the job runs")
