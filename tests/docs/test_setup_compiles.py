"""Issue 17: an editable install writes no ``.pyc`` of flwd's own modules (a normal ``pip
install`` compiles them), so both ways of setting a clone up — ``just setup`` and CI's
``.ci/run`` — compile them right after the install, with the venv's Python, and the docs
show that same command."""

from __future__ import annotations

import importlib.util
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

COMMAND = "-m compileall -q flwd actors"


def _recipe(name: str) -> list[str]:
    """The command lines of the justfile's recipe ``name``."""
    text = (REPO / "justfile").read_text()
    match = re.search(rf"^{name}:\n((?:[ \t]+\S.*\n)+)", text, re.M)
    assert match, f"the justfile has no '{name}' recipe"
    return [line.strip() for line in match[1].splitlines()]


def test_just_setup_compiles_after_the_editable_install() -> None:
    lines = _recipe("setup")
    install = next(i for i, line in enumerate(lines) if "pip install -e" in line)
    compiles = [i for i, line in enumerate(lines) if line.endswith(COMMAND)]
    assert compiles and compiles[0] > install, lines
    assert lines[compiles[0]].startswith("{{python}} "), "the venv's Python compiles"


def test_ci_compiles_after_the_editable_install() -> None:
    lines = [line.strip() for line in (REPO / ".ci/run").read_text().splitlines()]
    install = next(i for i, line in enumerate(lines) if "pip install" in line and " -e " in line)
    compiles = [i for i, line in enumerate(lines) if line == f".venv/bin/python {COMMAND}"]
    assert compiles and compiles[0] > install, "no compileall after .ci/run's install"
    tests = next(i for i, line in enumerate(lines) if "-m pytest" in line)
    assert compiles[0] < tests


def test_the_docs_show_the_command_that_runs() -> None:
    for page in (REPO / "docs/cli.md", REPO / "README.md"):
        assert f".venv/bin/python {COMMAND}" in " ".join(page.read_text().split()), page


def test_the_command_compiles_every_module(tmp_path: Path) -> None:
    """Run as written on a copy of the packages: every module gets its current ``.pyc``
    (what an editable install lacks), so no later start compiles one."""
    for package in ("flwd", "actors"):
        shutil.copytree(REPO / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, *shlex.split(COMMAND)], cwd=tmp_path, check=True)
    sources = list(tmp_path.rglob("*.py"))
    assert sources
    missing = [path for path in sources
               if not Path(importlib.util.cache_from_source(str(path))).is_file()]
    assert missing == []
