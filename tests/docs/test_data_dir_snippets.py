"""The docs' snippets that open the data dir work when ``FLWD_DATA_DIR`` is not set, finding
it as flwd does (``$XDG_DATA_HOME/flwd``, ``~/.local/share/flwd``); the user unit orders on
nothing that exists only for system units (issue 12, item 20)."""

from __future__ import annotations

import configparser
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FLWD, copy_bundled_scripts
from tests.docs.test_doc_examples import DOCS, Block, parse_blocks, run_bash


def block_with(page: str, needle: str) -> Block:
    [block] = [b for b in parse_blocks(DOCS / page) if needle in b.text]
    return block


@pytest.fixture(params=["xdg", "home"])
def unset_env(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[dict[str, str], Path]:
    """An environment without FLWD_DATA_DIR/DATA_DIR, and the data dir flwd uses in it
    (with a Core DB: one run of the demo)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("FLWD_") and k not in ("DATA_DIR", "XDG_DATA_HOME")}
    env["HOME"] = str(tmp_path / "home")
    if request.param == "xdg":
        env["XDG_DATA_HOME"] = str(tmp_path / "xdg")
        data = tmp_path / "xdg" / "flwd"
    else:
        data = tmp_path / "home" / ".local" / "share" / "flwd"
    workspace = copy_bundled_scripts(tmp_path / "ws")
    done = subprocess.run([*FLWD, "demo", "--name", "alice"], cwd=workspace, env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert (data / "flwd.db").is_file()
    return env, data


def test_the_python_backup_finds_the_data_dir(unset_env: tuple[dict[str, str], Path],
                                              tmp_path: Path) -> None:
    env, _data = unset_env
    block = block_with("operations.md", "source.backup(target)")
    done = subprocess.run([sys.executable, "-c", block.text], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr  # was: KeyError: 'FLWD_DATA_DIR'
    with sqlite3.connect(tmp_path / "flwd-backup.db") as backup:
        assert backup.execute("SELECT job_id FROM runs").fetchall() == [("demo",)]


@pytest.mark.skipif(shutil.which("sqlite3") is None, reason="needs the sqlite3 shell")
def test_the_sqlite3_backup_finds_the_data_dir(unset_env: tuple[dict[str, str], Path],
                                               tmp_path: Path) -> None:
    env, _data = unset_env
    block = block_with("operations.md", ".backup flwd-backup-cli.db")
    status, output = run_bash(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c",
                               block.text], tmp_path, env)
    assert status == 0, output
    assert output.strip() == "ok"  # PRAGMA integrity_check


def test_the_reserve_listing_finds_the_data_dir(unset_env: tuple[dict[str, str], Path],
                                                tmp_path: Path) -> None:
    env, data = unset_env
    block = block_with("reliability.md", "flwd.db.reserve")
    workspace = copy_bundled_scripts(tmp_path / "ws2")
    env = {**env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"}
    status, output = run_bash(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c",
                               block.text], workspace, env)
    assert status == 0, output  # was: ls: cannot access '/flwd.db.reserve'
    assert output.strip() == f"{data}/flwd.db.reserve"


def test_the_user_unit_orders_on_no_system_target() -> None:
    """network.target is a system unit: a user manager has none, so `After=network.target`
    in a user unit orders on nothing (and misleads)."""
    block = block_with("operations.md", "ExecStart=")
    unit = configparser.ConfigParser(strict=True, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string(block.text)
    for key in ("After", "Wants", "Requires"):
        assert "network" not in unit["Unit"].get(key, ""), key
