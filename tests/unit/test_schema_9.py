"""Schema 9: the sessions table. A schema-8 Core DB reads as having no session (a reader
never migrates) and gains the table on the next write."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from flwd.store import SCHEMA_VERSION, SessionRecord, SqliteStore, db_path

T0 = 1_700_000_000.0


def test_a_schema_8_file_reads_no_session_then_migrates(tmp_path: Path) -> None:
    path = db_path(tmp_path)
    store = SqliteStore(path)
    store.migrate()
    with sqlite3.connect(path) as legacy:
        legacy.execute("DROP TABLE sessions")
        legacy.execute("PRAGMA user_version = 8")
    legacy.close()
    assert store.session_get("digest") is None  # a reader: no table, no write
    assert store.storage_usage()["schema_version"] == 8

    record = SessionRecord("digest", "tok-1", T0, T0 + 60)
    assert store.session_create(record, keep=2, now=T0) == []
    assert store.storage_usage()["schema_version"] == SCHEMA_VERSION >= 9
    assert store.session_get("digest") == record
    with sqlite3.connect(path) as db:
        columns = [row[1] for row in db.execute("PRAGMA table_info(sessions)")]
    db.close()
    # Digests and ids only: no column could hold a session id or a token.
    assert columns == ["id_hash", "token_id", "created_at", "expires_at"]
