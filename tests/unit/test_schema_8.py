"""Core DB schema 7 -> 8: runs keep their executor and runtime (issue 14 item 7).

A Core DB file as schema 7 left it (built from the migrations of that time,
with runs of every kind its flwd stored) opens, migrates, and its older runs
get the executor and runtime their stored plan says — NULL when it says
nothing. A reader of the unmigrated file writes nothing and reads NULL.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from flwd.store import SCHEMA_VERSION, SqliteStore, db_path
from flwd.store._schema import MIGRATIONS

T0 = 1_700_000_000.0
#: Run id -> the plan a schema 7 flwd stored (None: none).
PLANS: dict[str, object] = {
    "run-host": {"executor_preview": {"executor": "proc"}},
    "run-podman": {"executor_preview": {"executor": "container", "runtime": "podman",
                                        "container_image": "alpine:3.20"}},
    # An `interpreter: container:IMAGE` job: its preview said proc, but named a runtime.
    "run-interp": {"executor_preview": {"executor": "proc", "interpreter": "container:alpine",
                                        "runtime": "docker"}},
    "run-addon": {"executor_preview": {"executor": "container", "runtime": "podman",
                                       "runnable": True}},
    "run-noprev": {"job_id": "demo"},
    "run-odd": {"executor_preview": {"executor": "teleport"}},
    "run-noplan": None,
}
EXPECTED = {
    "run-host": ("proc", None), "run-podman": ("container", "podman"),
    "run-interp": ("container", "docker"), "run-addon": ("container", "podman"),
    "run-noprev": (None, None), "run-odd": (None, None), "run-noplan": (None, None),
}


def schema_7_file(tmp_path: Path) -> Path:
    path = db_path(tmp_path / "data")
    path.parent.mkdir(mode=0o700)
    legacy = sqlite3.connect(path, isolation_level=None)
    legacy.execute("PRAGMA journal_mode = WAL")
    for script in MIGRATIONS[:7]:
        assert isinstance(script, str)
        legacy.executescript(script)
    legacy.execute("PRAGMA user_version = 7")
    for index, (run_id, plan) in enumerate(PLANS.items()):
        text = None if plan is None else json.dumps(plan)
        legacy.execute("INSERT INTO runs(id, job_id, status, created_at, plan, workspace) "
                       "VALUES (?, 'demo', 'completed', ?, ?, '/w')", (run_id, T0 + index, text))
    legacy.close()
    return path


def user_version(path: Path) -> int:
    return int.from_bytes(path.read_bytes()[60:64], "big")


def test_a_schema_7_file_migrates_and_old_runs_get_their_executor(tmp_path: Path) -> None:
    path = schema_7_file(tmp_path)
    store = SqliteStore(path)
    # A reader first: it migrates nothing, and reads the missing columns as NULL.
    assert {run.id: (run.executor, run.runtime) for run in store.list_runs()} == {
        run_id: (None, None) for run_id in PLANS}
    assert store.storage_usage()["schema_version"] == 7
    assert user_version(path) == 7

    store.migrate()
    assert user_version(path) == SCHEMA_VERSION
    assert store.storage_usage()["schema_version"] == SCHEMA_VERSION
    assert {run.id: (run.executor, run.runtime) for run in store.list_runs()} == EXPECTED
    # Nothing else of the runs changed.
    run = store.get_run("run-podman")
    assert (run.status, run.workspace, run.plan) == ("completed", "/w", PLANS["run-podman"])


def test_migrating_again_changes_nothing(tmp_path: Path) -> None:
    path = schema_7_file(tmp_path)
    SqliteStore(path).migrate()
    SqliteStore(path).migrate()
    assert {run.id: (run.executor, run.runtime)
            for run in SqliteStore(path).list_runs()} == EXPECTED
