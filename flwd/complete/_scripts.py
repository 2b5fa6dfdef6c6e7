"""``flwd completion SHELL``: the completion script of a shell.

Each script calls ``flwd __complete CURSOR WORDS...`` on TAB and turns its NDJSON
into the shell's completions; none needs jq. The scripts name the command
``flwd``: install flwd on PATH under that name.
"""

from __future__ import annotations

from . import _bash, _fish, _powershell, _zsh

SCRIPTS = {
    "bash": _bash.SCRIPT,
    "zsh": _zsh.SCRIPT,
    "fish": _fish.SCRIPT,
    "powershell": _powershell.SCRIPT,
}
SHELLS = tuple(SCRIPTS)


class UnknownShell(ValueError):
    """The shell named is not one flwd has a script for."""


def completion_script(shell: str) -> str:
    """The script for ``shell`` (``bash``, ``zsh``, ``fish`` or ``powershell``).

    Raises:
        UnknownShell: any other name.
    """
    try:
        return SCRIPTS[shell]
    except KeyError:
        raise UnknownShell(shell) from None
