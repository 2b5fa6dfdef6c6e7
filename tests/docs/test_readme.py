"""The README's commands, executed as written: its Quick start and completion examples, in a
workspace of the bundled scripts/ (what a fresh clone has), with ``flwd`` on PATH and a
data dir of its own (issue 12: "the README's quick start … pass as written")."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, copy_bundled_scripts, flwd_env
from tests.docs.test_doc_examples import run_bash

README = (REPO / "README.md").read_text()
BIN = Path(sys.executable).parent


def section_blocks(heading: str, language: str = "bash") -> list[str]:
    """The ``language`` blocks of the README's ``## heading`` section."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", README, re.S | re.M)
    assert match, f"the README has no '## {heading}' section"
    return re.findall(rf"^```{language}\n(.*?)^```", match[1], re.S | re.M)


def run_as_written(script: str, tmp_path: Path) -> str:
    """``script`` under ``set -eo pipefail`` in a fresh clone's workspace; its output."""
    workspace = copy_bundled_scripts(tmp_path / "clone")
    home = tmp_path / "home"
    home.mkdir()
    env = flwd_env(tmp_path / "data", HOME=str(home))
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', os.defpath)}"
    status, output = run_bash(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
                              workspace, env)
    assert status == 0, f"exited {status}:\n{output}"
    return output


def test_the_quick_start_runs_as_written(tmp_path: Path) -> None:
    [block] = section_blocks("Quick start")
    output = run_as_written(block, tmp_path)
    assert "examples.pipeline" in output  # :jobs
    assert "Hello, alice!" in output  # the runs
    assert '"type":"run.finish"' in output  # --json
    assert "xyz" not in output  # the secret: masked everywhere
    assert output.count("completed") >= 2  # :runs lists both runs


@pytest.mark.skipif(shutil.which("jq") is None, reason="the examples pipe into jq")
def test_the_completion_protocol_examples_run_as_written(tmp_path: Path) -> None:
    protocol = [block for block in section_blocks("Shell completion")
                if "__complete" in block]
    assert protocol
    output = run_as_written("\n".join(protocol), tmp_path)
    inserts = [json.loads(document)["insert"]
               for document in re.findall(r"^\{.*?^\}", output, re.S | re.M)]
    assert {"demo", "examples", "hello-demo", "--loud", "true", "false"} <= set(inserts)
