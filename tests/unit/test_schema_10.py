"""Schema 10: what started a run (``runs.trigger``), the unique identity of a fire or a
delivery (``runs.trigger_key``), and the automation tables. A migration over a Core DB
moved back to version 9 with the columns already there keeps them and what they hold."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from flwd.store import SCHEMA_VERSION, SqliteStore, db_path


def _tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as db:
        names = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    db.close()
    return names


def test_the_automation_tables_exist_after_migration(tmp_path: Path) -> None:
    path = db_path(tmp_path)
    SqliteStore(path).migrate()
    assert {"schedule_state", "hook_deliveries", "notify_deliveries"} <= _tables(path)
    assert SCHEMA_VERSION >= 10


def test_a_trigger_key_is_unique_among_runs(tmp_path: Path) -> None:
    path = db_path(tmp_path)
    SqliteStore(path).migrate()
    with sqlite3.connect(path) as db:
        insert = ("INSERT INTO runs (id, job_id, status, created_at, trigger_key) "
                  "VALUES (?, 'j', 'queued', 0, ?)")
        db.execute(insert, ("r1", "schedule:nightly@1"))
        db.execute(insert, ("r2", None))
        db.execute(insert, ("r3", None))  # NULL keys never collide: API and CLI runs
        with pytest.raises(sqlite3.IntegrityError):
            db.execute(insert, ("r4", "schedule:nightly@1"))
    db.close()


def test_migrating_again_from_9_keeps_the_columns_and_rows(tmp_path: Path) -> None:
    path = db_path(tmp_path)
    SqliteStore(path).migrate()
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO runs (id, job_id, status, created_at, trigger, trigger_key) "
                   "VALUES ('r1', 'j', 'queued', 0, '{\"kind\": \"schedule\"}', 'k')")
        db.execute("PRAGMA user_version = 9")
    db.close()
    SqliteStore(path).migrate()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert db.execute("SELECT trigger, trigger_key FROM runs").fetchall() == [
            ('{"kind": "schedule"}', "k")]
    db.close()
