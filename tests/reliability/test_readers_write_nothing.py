"""Reading commands write nothing, not even a schema migration (issue 11 review).

A Core DB left by an older flwd (schema 5: no ``runs.workspace``) on a data dir
that cannot take a write — a full 2 MiB tmpfs, or a read-only mount — still
answers ``flwd :runs`` and ``flwd :logs last``: the readers read the missing
column as NULL and leave migrating to the next writer that can.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from flwd.store import SCHEMA_VERSION
from tests.conftest import run_cli

from .conftest import fill

pytestmark = pytest.mark.crash


def downgrade_to_schema_5(data_dir: Path) -> None:
    """The Core DB as schema 5 left it (as tests/e2e/test_runs_workspaces.py builds it)."""
    with sqlite3.connect(data_dir / "flwd.db") as db:
        db.execute("DROP INDEX runs_by_workspace")
        db.execute("ALTER TABLE runs DROP COLUMN workspace")
        # and what schema 8 added (a real schema 5 file has neither)
        db.execute("ALTER TABLE runs DROP COLUMN executor")
        db.execute("ALTER TABLE runs DROP COLUMN runtime")
        db.execute("PRAGMA user_version = 5")
    db.close()


def schema_version(data_dir: Path) -> int:
    """``PRAGMA user_version`` from the file header (bytes 60-63): no SQLite, no -shm."""
    with open(data_dir / "flwd.db", "rb") as db:
        return int.from_bytes(db.read(64)[60:64], "big")


def assert_readers_answer(workspace: Path, data_dir: Path, run_id: str) -> None:
    listed = run_cli([":runs", "--all", "--json"], cwd=workspace, data_dir=data_dir)
    assert listed.returncode == 0, listed.stderr
    assert [(run["id"], run["status"], run["workspace"]) for run in json.loads(listed.stdout)] \
        == [(run_id, "completed", None)]
    # The run is no workspace's (it has none): not this one's `last` either.
    mine = run_cli([":runs", "--json"], cwd=workspace, data_dir=data_dir)
    assert mine.returncode == 0, mine.stderr
    assert json.loads(mine.stdout) == []
    logs = run_cli([":logs", run_id], cwd=workspace, data_dir=data_dir)
    assert logs.returncode == 0, logs.stderr
    assert logs.stdout.splitlines()[0] == "demo: Hello, old!"
    # `last` reads the DB too: no run of this workspace, one clear line (not a storage error).
    last = run_cli([":logs", "last"], cwd=workspace, data_dir=data_dir)
    assert last.returncode == 2, last.stderr
    assert last.stderr.splitlines()[-1].startswith("flwd: error: no run in the workspace ")


def a_schema_5_run(workspace: Path, data_dir: Path) -> str:
    done = run_cli(["demo", "--name", "old", "--json"], cwd=workspace, data_dir=data_dir)
    assert done.returncode == 0, done.stderr
    run_id = str(json.loads(done.stdout.splitlines()[0])["run_id"])
    downgrade_to_schema_5(data_dir)
    return run_id


def test_a_schema_5_db_on_a_full_disk_is_read_without_migrating(
        workspace: Path, data_dir: Path, small_tmpfs: Path) -> None:
    run_id = a_schema_5_run(workspace, data_dir)
    fill(small_tmpfs)
    assert_readers_answer(workspace, data_dir, run_id)
    assert schema_version(data_dir) == 5
    # Once there is room, the next writer migrates, and the old run keeps no workspace.
    (small_tmpfs / "ballast").unlink()
    listed = run_cli([":runs", "--all", "--json"], cwd=workspace, data_dir=data_dir)
    assert listed.returncode == 0, listed.stderr
    assert schema_version(data_dir) == SCHEMA_VERSION  # the current one


@pytest.fixture
def read_only_later(data_dir: Path) -> Iterator[Path]:
    """The data dir; ``make_read_only(data_dir)`` turns it into a read-only bind mount."""
    yield data_dir
    subprocess.run(["umount", "--lazy", str(data_dir)], capture_output=True, check=False)


def make_read_only(folder: Path) -> None:
    for command in (["mount", "--bind", str(folder), str(folder)],
                    ["mount", "-o", "remount,bind,ro", str(folder)]):
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"cannot make a read-only bind mount (needs root): {done.stderr.strip()}")


def test_a_schema_5_db_on_a_read_only_data_dir_is_read(workspace: Path,
                                                      read_only_later: Path) -> None:
    data_dir = read_only_later
    run_id = a_schema_5_run(workspace, data_dir)
    make_read_only(data_dir)
    # Every write fails here (EROFS, root or not): the readers answer all the same.
    assert_readers_answer(workspace, data_dir, run_id)
    assert schema_version(data_dir) == 5
