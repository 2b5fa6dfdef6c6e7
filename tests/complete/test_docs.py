"""docs/completion.md's examples, executed: the protocol session and the install commands."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

from tests.complete.conftest import FLWD_SCRIPT
from tests.conftest import REPO, flwd_env

DOC = (REPO / "docs" / "completion.md").read_text()


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC, flags=re.S)


def test_the_protocol_session_is_what_flwd_prints(workspace: Path, data_dir: Path) -> None:
    [session] = blocks("console")
    commands = re.split(r"^\$ ", session, flags=re.M)[1:]
    assert len(commands) >= 3
    for command in commands:
        typed, _, expected = command.partition("\n")
        argv = shlex.split(typed)
        assert argv[0] == "flwd"
        done = subprocess.run([str(FLWD_SCRIPT), *argv[1:]], cwd=workspace,
                              env=flwd_env(data_dir), capture_output=True, text=True,
                              check=False, timeout=60)
        assert done.returncode == 0, done.stderr
        assert done.stdout == expected, typed


def test_the_install_commands_name_real_shells(tmp_path: Path, data_dir: Path) -> None:
    lines = [line for block in blocks("bash") + blocks("powershell")
             for line in block.splitlines() if line.startswith("flwd completion")]
    assert len(lines) == 4
    for line in lines:
        shell = line.split()[2]
        done = subprocess.run([str(FLWD_SCRIPT), "completion", shell], cwd=tmp_path,
                              env=flwd_env(data_dir), capture_output=True, text=True,
                              check=False, timeout=60)
        assert done.returncode == 0 and "__complete" in done.stdout, line
