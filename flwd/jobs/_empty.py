"""A job with nothing to run, and the warning that says why and how to fix it.

A job directory with no ``NNN_*`` file and no ``composition: steps`` (with steps) is
still a job, as in the reference implementation: it is listed, planned and run, and
its runs complete with zero steps. That is almost never what its author meant — a
script named ``run.sh``, ``10_build.sh`` or ``100-build.sh``, ``steps:`` written
without ``composition: steps``, or that key without steps — so discovery warns about
it, plans repeat the warning as a finding and runs in ``run.start``
(:data:`NOTHING_TO_RUN`). The warning names the files that look like scripts but do
not run, and the rename that makes the first one run.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Final

from ._config import JobConfig
from ._text import printable
from ._yaml import clip

__all__ = ["NOTHING_TO_RUN", "SCRIPT_NAME", "nothing_to_run"]

#: The code of the discovery warning and of the plan finding.
NOTHING_TO_RUN: Final = "job.nothing.to.run"
#: A file of the job directory runs when its name starts with three digits and ``_``.
SCRIPT_NAME: Final = re.compile(r"\d{3}_")
#: Suffixes flwd knows an interpreter for (``flwd.plan``): such a file was surely
#: meant to run. So was an executable file, or one whose name starts with a number.
_SCRIPT_SUFFIXES: Final = frozenset(
    {".sh", ".bash", ".py", ".ps1", ".js", ".mjs", ".rb", ".pl"})
#: A leading number and what separates it from the rest (``10_``, ``100-``); not a
#: ``.``, which starts the suffix of ``20.py``.
_NUMBER_PREFIX: Final = re.compile(r"\d+[-_ ]*")
#: At most this many misnamed files are named in the warning.
_SHOWN: Final = 5


def nothing_to_run(job_id: str, job_dir: Path, config: JobConfig) -> str:
    """The warning for a job that runs no step: what is missing, and the fix.

    ``job_dir`` is listed (blocking) for files that look like scripts but are not
    named ``NNN_*``; the first of them gets a concrete rename. Declared ``steps``
    without ``composition: steps`` point at that key, ``composition: steps`` without
    steps at ``steps:``.
    """
    misnamed = _misnamed(job_dir)
    shown = [_shown(name) for name in misnamed[:_SHOWN]]
    if len(misnamed) > _SHOWN:
        shown.append(f"{len(misnamed) - _SHOWN} more")
    if len(misnamed) == 1:
        cause = f"{shown[0]} is not named NNN_* (three digits and '_'), so it never runs"
    elif misnamed:
        cause = f"{_listed(shown)} are not named NNN_* (three digits and '_'), so they never run"
    else:
        cause = "no file next to config.d/ is named NNN_* (three digits and '_')"
    fixes = []
    if config.steps:
        count = len(config.steps)
        cause += (f", and its {count} step{'s' if count != 1 else ''} in 'steps:' "
                  f"{'are' if count != 1 else 'is'} ignored without 'composition: steps'")
        fixes.append("add 'composition: steps' to run the steps")
    elif config.composition == "steps":
        cause += ", and 'composition: steps' lists no steps"
        fixes.append("list the steps under 'steps:'")
    if misnamed:
        others = " (and the others alike)" if len(misnamed) > 1 else ""
        fixes.append(f"rename {shown[0]} to {_renamed(misnamed[0])}{others}")
    elif not fixes:
        fixes += ["add a script such as 100_main.sh next to config.d/",
                  "set 'composition: steps' and list the steps"]
    return (f"job '{clip(job_id)}' has nothing to run (its runs complete with zero steps): "
            f"{cause}; {', or '.join(fixes)}")


def _misnamed(job_dir: Path) -> list[str]:
    """Regular files of ``job_dir`` that look like scripts but are not ``NNN_*``, sorted."""
    names = []
    try:
        with os.scandir(job_dir) as entries:
            for entry in entries:
                name = entry.name
                if name.startswith(".") or SCRIPT_NAME.match(name):
                    continue
                try:
                    info = entry.stat()
                except OSError:
                    continue  # vanished or a dangling link: nothing that could run
                if not stat.S_ISREG(info.st_mode):
                    continue
                executable = bool(info.st_mode & 0o111)
                if (executable or name[:1].isdigit()
                        or os.path.splitext(name)[1].lower() in _SCRIPT_SUFFIXES):
                    names.append(name)
    except OSError:
        return []
    return sorted(names)


def _renamed(name: str) -> str:
    """The ``NNN_`` name a misnamed script probably meant, keeping its number when it
    has one of up to three digits: ``10_build.sh`` → ``010_build.sh``, ``200-deploy.sh``
    → ``200_deploy.sh``, ``run.sh`` → ``100_run.sh``."""
    number, rest = "100", name
    prefix = _NUMBER_PREFIX.match(name)
    if prefix is not None:
        digits = prefix.group().rstrip("-_ ")
        number = digits.zfill(3) if len(digits) <= 3 else number
        rest = name[prefix.end():]
    if not rest or rest.startswith("."):
        rest = f"main{rest}"
    return _shown(f"{number}_{rest}")


def _shown(name: str) -> str:
    """A file name as a message may show it: bytes that are not UTF-8 escaped, clipped."""
    return clip(printable(name, argv=True), 80)


def _listed(items: list[str]) -> str:
    if len(items) <= 2:
        return " and ".join(items)
    return f"{', '.join(items[:-1])} and {items[-1]}"
