"""Opening the Core DB: location, pragmas, migrations.

Blocking (sqlite3). Call from a worker thread when inside trio.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from flwd.errors import StorageError

from ._schema import MIGRATIONS, SCHEMA_VERSION

DB_NAME = "flwd.db"


def db_path(data_dir: Path) -> Path:
    return data_dir / DB_NAME


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """Open a connection with flwd's pragmas; migrate the schema when writable.

    Raises:
        StorageError: the file cannot be opened, is not a database, or is newer
            than this flwd understands.
    """
    conn: sqlite3.Connection | None = None
    try:
        if readonly:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10.0,
                                   isolation_level=None, check_same_thread=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            conn = sqlite3.connect(path, timeout=10.0, isolation_level=None)
            os.chmod(path, 0o600)
        conn.execute("PRAGMA busy_timeout = 10000")
        if not readonly:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            _migrate(conn, path)
        elif _check_version(conn, path) < SCHEMA_VERSION:
            # Left by an older flwd: a reader expects the current columns, so the
            # schema is brought up to date first (as any writer would).
            conn.close()
            conn = None
            connect(path).close()
            return connect(path, readonly=True)
        return conn
    except StorageError:
        if conn is not None:
            conn.close()
        raise
    except (sqlite3.DatabaseError, OSError) as exc:
        if conn is not None:
            conn.close()
        raise StorageError(
            f"cannot open the Core DB {path}: {exc}",
            hint="check the file and the free space of the data dir (--data-dir)",
        ) from exc


def _check_version(conn: sqlite3.Connection, path: Path) -> int:
    version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise StorageError(
            f"the Core DB {path} has schema version {version}, newer than this flwd "
            f"understands ({SCHEMA_VERSION})",
            hint="upgrade flwd, or point --data-dir at another directory",
        )
    return version


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    version = _check_version(conn, path)
    if version == SCHEMA_VERSION:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Re-read under the write lock: another process may have migrated meanwhile.
        version = _check_version(conn, path)
        for index in range(version, SCHEMA_VERSION):
            for statement in MIGRATIONS[index].split(";"):
                if statement.strip():
                    conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    # Copy the migrated pages into the file now, not at some later checkpoint:
    # a migration may have overwritten what must not stay (the plain hashes of
    # 4 -> 5). PASSIVE: never waits for readers; what they pin follows later.
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
