"""Opening the Core DB: location, pragmas, migrations.

Blocking (sqlite3). Call from a worker thread when inside trio.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

from flwd.errors import StorageError

from . import _write_lock
from ._bus import SENDER, bus_dir
from ._checkpoint import CHECKPOINTER
from ._schema import MIGRATIONS, SCHEMA_VERSION

DB_NAME = "flwd.db"

#: What opening a WAL reader fails with when its -shm file cannot be made.
_NO_SHM = frozenset({sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_READONLY})


def db_path(data_dir: Path) -> Path:
    return data_dir / DB_NAME


class Connection(sqlite3.Connection):
    """A Core DB connection that knows the schema version it found.

    A writer migrates on opening, so it sees the current schema. A reader never
    writes (a reading command must work on a full disk or a read-only data dir),
    so on a Core DB left by an older flwd it sees that older schema: its readers
    ask ``columns`` and read what is missing as NULL.
    """

    schema_version: int = SCHEMA_VERSION
    _columns: dict[str, frozenset[str]]
    #: A writer's host write lock (``_write_lock``, None for a reader): taken by ``BEGIN
    #: IMMEDIATE``, let go once the transaction is over however it ended (COMMIT,
    #: ROLLBACK, the rollback SQLite makes itself on a full disk, or closing).
    write_lock: Path | None = None
    #: A writer's database file, whose WAL it has checkpointed (``_checkpoint``).
    db: str = ""
    #: A writer's notes for the other processes (``Dialect.notify``), sent to the bus's
    #: directory at COMMIT (``_bus``); None for a reader.
    notes: list[tuple[str, str]] | None = None
    bus: str = ""
    _held: int | None = None

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        if self.write_lock is None:
            return super().execute(sql, parameters)
        if sql == "BEGIN IMMEDIATE" and self._held is None:
            self._held = _write_lock.acquire(self.write_lock)
            try:
                return super().execute(sql, parameters)
            except BaseException:
                self._ended(committed=False)
                raise
        if self._held is None and not self.notes and sql != "COMMIT":
            return super().execute(sql, parameters)
        committed = False
        try:
            cursor = super().execute(sql, parameters)
            committed = sql == "COMMIT"
        finally:
            if not self.in_transaction:
                self._ended(committed=committed)
        if committed:
            CHECKPOINTER.committed(self.db)
        return cursor

    def close(self) -> None:
        self._ended(committed=False)
        super().close()

    def _ended(self, *, committed: bool) -> None:
        """The write transaction is over: let the lock go; once committed, tell the
        other processes what it notified (``_bus``), else forget it."""
        held, self._held = self._held, None
        if held is not None:
            _write_lock.release(held)
        notes, self.notes = self.notes, []
        if committed and notes:
            SENDER.send(self.bus, notes)

    def columns(self, table: str) -> frozenset[str]:
        """The columns ``table`` has (asked once per connection)."""
        if not hasattr(self, "_columns"):
            self._columns = {}
        if table not in self._columns:
            self._columns[table] = frozenset(
                row[1] for row in self.execute("SELECT * FROM pragma_table_info(?)", (table,)))
        return self._columns[table]


def connect(path: Path, *, readonly: bool = False) -> Connection:
    """Open a connection with flwd's pragmas; migrate the schema when writable.

    A read-only connection writes nothing, not even a migration: on an older
    schema it reports its version (``Connection.schema_version``) instead.

    Raises:
        StorageError: the file cannot be opened, is not a database, or is newer
            than this flwd understands.
    """
    conn: Connection | None = None
    try:
        if readonly:
            try:
                conn = _open_reader(path, "mode=ro")
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode & 0xFF not in _NO_SHM or _wal_size(path):
                    raise
                # A WAL reader needs the shared-memory index (the -shm file): on a
                # read-only or full data dir it cannot be made. With an empty or no
                # -wal file the main file holds every commit, so it is read as it stands;
                # the writer that could change it meanwhile would need that index too.
                conn = _open_reader(path, "mode=ro&immutable=1")
        else:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            conn = sqlite3.connect(path, timeout=10.0, isolation_level=None,
                                   factory=Connection)
            os.chmod(path, 0o600)
            conn.execute("PRAGMA wal_autocheckpoint = 0")  # see flwd/store/_checkpoint.py
            conn.write_lock, conn.db = _write_lock.lock_path(path), str(path)
            conn.notes, conn.bus = [], str(bus_dir(path))
        conn.execute("PRAGMA busy_timeout = 10000")
        if not readonly:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            _migrate(conn, path)
        else:
            conn.schema_version = _check_version(conn, path)
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


def _wal_size(path: Path) -> int:
    try:
        return os.path.getsize(f"{path}-wal")
    except FileNotFoundError:
        return 0


def _open_reader(path: Path, parameters: str) -> Connection:
    conn = sqlite3.connect(f"file:{path}?{parameters}", uri=True, timeout=10.0,
                           isolation_level=None, check_same_thread=True, factory=Connection)
    try:
        conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()  # opens the file
    except BaseException:
        conn.close()
        raise
    return conn


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
            step = MIGRATIONS[index]
            if callable(step):
                step(conn)
                continue
            for statement in step.split(";"):
                if statement.strip():
                    conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        # SQLite may have rolled back already (a full disk does that).
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    # Copy the migrated pages into the file now, not at some later checkpoint:
    # a migration may have overwritten what must not stay (the plain hashes of
    # 4 -> 5). PASSIVE: never waits for readers; what they pin follows later.
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
