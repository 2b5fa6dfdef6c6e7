"""End to end: a command-line value that is not UTF-8 is one line naming the flag, exit 2
(issue 11 item 1: it was "internal error" after crashing the journal)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import FLWD, flwd_env, run_cli


@pytest.mark.parametrize(("argv", "line"), [
    # flwd demo --name $'caf\xe9'
    ([b"demo", b"--name", b"caf\xe9"],
     "flwd: error: invalid arguments for job demo: --name: is not valid UTF-8 (byte 0xE9); "
     "pass the text in UTF-8 (run 'flwd demo --help' for its flags)"),
    ([b"demo", b"--name", b"x", b"--tags", b"ok", b"--tags", b"\xff\xfe"],
     "flwd: error: invalid arguments for job demo: --tags: item 2: is not valid UTF-8 "
     "(byte 0xFF); pass the text in UTF-8 (run 'flwd demo --help' for its flags)"),
    ([b"demo", b"--name", b"x", b"--secret_token", b"s\xe9cret"],
     "flwd: error: invalid arguments for job demo: --secret_token: is not valid UTF-8; "
     "pass the text in UTF-8 (run 'flwd demo --help' for its flags)"),
])
def test_non_utf8_argv_is_refused_in_one_line(workspace: Path, data_dir: Path,
                                              argv: list[bytes], line: str) -> None:
    done = run_cli(argv, cwd=workspace, data_dir=data_dir)  # type: ignore[arg-type]
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [line]
    assert done.stdout == ""
    # Refused before anything was journaled: no run, and the Core DB is fine.
    listed = run_cli([":runs", "--json"], cwd=workspace, data_dir=data_dir)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == []


@pytest.mark.parametrize("args", [
    [":logs", "caf\udce9"], [":cancel", "caf\udce9"], [":runs", "--job", "caf\udce9"],
    [":sources", "remove", "caf\udce9"], [":plan", "caf\udce9"], ["completion", "caf\udce9"],
])
def test_a_verb_argument_that_is_not_utf8_is_one_line(
        workspace: Path, data_dir: Path, args: list[str]) -> None:
    """Not only job flags: every verb's words are checked at the edge (issue 11 item 1)."""
    done = subprocess.run([*FLWD, *[os.fsencode(a) for a in args]], cwd=workspace,
                          env=flwd_env(data_dir), capture_output=True, check=False)
    stderr = done.stderr.decode()
    assert done.returncode == 2, stderr
    assert len(stderr.splitlines()) == 1, stderr
    assert "caf\\xe9" in stderr and "is not valid UTF-8 (byte 0xE9)" in stderr
    assert "internal error" not in stderr


def test_an_unknown_job_word_shows_its_bytes(workspace: Path, data_dir: Path) -> None:
    done = subprocess.run([*FLWD, os.fsencode("de\udce9mo")], cwd=workspace,
                          env=flwd_env(data_dir), capture_output=True, check=False)
    assert done.returncode == 2
    assert "unknown job 'de\\xe9mo'" in done.stderr.decode()
