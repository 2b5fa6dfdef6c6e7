"""Fixtures of the completion tests: the reference's contract workspace, and running the
real ``flwd __complete`` (the console script the shells call) as a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import flwd_env, write_job

#: The console script of this environment: what the shell scripts run as ``flwd``.
FLWD_SCRIPT = Path(sys.executable).parent / "flwd"
#: Modules the completion fast path must never import.
HEAVY = ("trio", "pydantic", "pydantic_core", "yaml", "cyclopts", "httpx")

BUILD = """\
job: {summary: Build the thing}
argspec:
  args:
    - {name: target, type: string, enum: [debug, release], description: Build flavour}
"""
DEPLOY = """\
job: {summary: Deploy it}
argspec:
  args:
    - {name: env, type: string, required: true, enum: [prod, staging]}
    - {name: strategy, type: string, enum: [rolling, blue-green]}
"""
ALIASES = """\
aliases:
  - {from: alpha/deploy, to: ship, description: Ship it}
"""


def make_contract_workspace(root: Path) -> Path:
    """Reference §14.1's TEST workspace: alpha/build, alpha/deploy and the alias ship."""
    write_job(root, "alpha/build", BUILD, {"100_main.sh": "echo build\n"})
    write_job(root, "alpha/deploy", DEPLOY, {"100_main.sh": "echo deploy\n"})
    (root / "scripts" / "flwd.yaml").write_text(ALIASES)
    return root


@pytest.fixture
def contract_ws(tmp_path: Path) -> Path:
    return make_contract_workspace(tmp_path / "contract")


class Completer:
    """Runs ``flwd __complete`` for one workspace and data dir, like a shell does."""

    def __init__(self, cwd: Path, data_dir: Path) -> None:
        self.cwd = cwd
        self.data_dir = data_dir

    def run(self, *args: str, before: tuple[str, ...] = (), profile: bool = False,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        extra = {"PYTHONPROFILEIMPORTTIME": "1"} if profile else {}
        return subprocess.run([str(FLWD_SCRIPT), *before, "__complete", *args], cwd=self.cwd,
                              env=flwd_env(self.data_dir, **extra, **(env or {})),
                              capture_output=True, text=True, timeout=60, check=False)

    def candidates(self, *args: str, env: dict[str, str] | None = None) -> list[dict[str, Any]]:
        done = self.run(*args, env=env)
        assert done.returncode == 0, done.stderr
        return [json.loads(line) for line in done.stdout.splitlines()]

    def inserts(self, *args: str, env: dict[str, str] | None = None) -> list[str]:
        return [c["insert"] for c in self.candidates(*args, env=env)]


def imported(stderr: str) -> set[str]:
    """Module names in ``-X importtime`` output."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip())
    return names


@pytest.fixture
def completer(contract_ws: Path, tmp_path: Path) -> Completer:
    return Completer(contract_ws, tmp_path / "data")
