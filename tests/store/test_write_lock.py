"""The host's Core DB write lock (flwd/store/_write_lock.py): held exactly for the length
of a SQLite write transaction, waited for by the kernel rather than SQLite's sleeping
busy handler, and never a reason for a write to fail or hang."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from flwd.events import EventRecord
from flwd.store import SqliteStore, connect
from flwd.store._checkpoint import CHECKPOINT_EVERY, CHECKPOINTER
from flwd.store._write_lock import acquire, lock_path, release
from tests.conftest import wait_until


def _free(path: Path) -> bool:
    """Whether another open file could take the lock now."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


@contextmanager
def _held(path: Path) -> Iterator[int]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield fd
    finally:
        os.close(fd)


def _waiters(path: Path) -> int:
    """Blocked flock waiters on ``path`` (the ``->`` lines of /proc/locks)."""
    inode = os.stat(path).st_ino
    return sum(1 for line in Path("/proc/locks").read_text().splitlines()
               if "->" in line and line.split()[-3].endswith(f":{inode}"))


def test_a_write_transaction_holds_the_lock_until_it_ends(tmp_path: Path) -> None:
    db = tmp_path / "flwd.db"
    conn = connect(db)
    lock = lock_path(db)
    try:
        assert _free(lock)
        conn.execute("BEGIN IMMEDIATE")
        assert not _free(lock), "held while the transaction is open"
        conn.execute("SELECT 1").fetchall()
        assert not _free(lock), "a statement inside the transaction keeps it"
        conn.execute("COMMIT")
        assert _free(lock), "let go at COMMIT"
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        assert _free(lock), "let go at ROLLBACK"
        conn.execute("BEGIN IMMEDIATE")
    finally:
        conn.close()
    assert _free(lock), "let go when the connection closes mid-transaction"


def test_reads_and_autocommit_statements_do_not_take_it(tmp_path: Path) -> None:
    db = tmp_path / "flwd.db"
    conn = connect(db)
    try:
        with _held(lock_path(db)):  # would block for LOCK_WAIT if they did
            conn.execute("CREATE TABLE IF NOT EXISTS t(x)")
            conn.execute("INSERT INTO t VALUES (1)")
            assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 1
    finally:
        conn.close()


def test_the_journal_and_store_writes_let_it_go(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "flwd.db")
    store.append([EventRecord(run_id="r1", job_id="j", type="run.log", ts=1.0,
                              data={"message": "x"})])
    assert _free(lock_path(store.path))
    journal = store.open_journal()
    journal.start()
    try:
        done = threading.Event()
        journal.submit([[EventRecord(run_id="r1", job_id="j", type="run.log", ts=2.0,
                                     data={"message": "y"})]], lambda _outcome: done.set())
        assert done.wait(10)
        assert _free(lock_path(store.path)), "the journal's long-lived connection let it go"
    finally:
        journal.close()


def test_a_writer_waits_for_the_holder_and_goes_on_when_it_lets_go(tmp_path: Path) -> None:
    db = tmp_path / "flwd.db"
    connect(db).close()
    lock = lock_path(db)
    committed = threading.Event()

    def write() -> None:
        conn = connect(db)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("PRAGMA user_version")
            conn.execute("COMMIT")
        finally:
            conn.close()
        committed.set()

    with _held(lock):
        writer = threading.Thread(target=write)
        writer.start()
        wait_until(lambda: _waiters(lock) == 1, "the writer to block on the lock")
        assert not committed.is_set()
    writer.join(10)
    assert committed.is_set() and _free(lock)


def test_a_holder_that_never_lets_go_leaves_the_writer_to_sqlite(tmp_path: Path) -> None:
    lock = tmp_path / "flwd.db.lock"
    with _held(lock):
        assert acquire(lock, wait=0.05) is None, "not held: the writer goes on without it"
        wait_until(lambda: _waiters(lock) == 1, "the abandoned waiter to block")
    # The abandoned waiter gets the lock once it is let go, and lets it go at once.
    wait_until(lambda: _waiters(lock) == 0 and _free(lock), "the abandoned waiter to let go")


def test_no_lock_file_no_lock_and_the_write_still_happens(tmp_path: Path) -> None:
    db = tmp_path / "flwd.db"
    lock_path(db).mkdir()  # cannot be opened as a file
    assert acquire(lock_path(db)) is None
    store = SqliteStore(db)
    store.append([EventRecord(run_id="r1", job_id="j", type="run.log", ts=1.0,
                              data={"message": "x"})])
    assert [record.run_id for record in store.read_events("r1")] == ["r1"]


def test_acquire_and_release(tmp_path: Path) -> None:
    lock = tmp_path / "x.lock"
    fd = acquire(lock)
    assert fd is not None and not _free(lock)
    release(fd)
    assert _free(lock)
    assert os.stat(lock).st_mode & 0o777 == 0o600


@pytest.mark.parametrize("name", ["flwd.db", "other.sqlite"])
def test_lock_path_sits_beside_the_database(tmp_path: Path, name: str) -> None:
    assert lock_path(tmp_path / name) == tmp_path / f"{name}.lock"


def test_writers_leave_checkpoints_to_the_checkpointer_thread(tmp_path: Path) -> None:
    """SQLite's automatic checkpoint would run inside a COMMIT, under the lock: writers
    turn it off, and every CHECKPOINT_EVERY commits the process's checkpointer makes one."""
    db = tmp_path / "flwd.db"
    conn = connect(db)
    try:
        assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        conn.execute("CREATE TABLE t(x)")
        passes = CHECKPOINTER.passes
        for index in range(CHECKPOINT_EVERY):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO t VALUES (?)", ("x" * 1000 + str(index),))
            conn.execute("COMMIT")
        assert CHECKPOINTER.wait_passes(passes + 1, timeout=30)
        _busy, frames, copied = sqlite3.connect(db).execute(
            "PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        assert frames > CHECKPOINT_EVERY // 2 and copied == frames, "the WAL was copied"
    finally:
        conn.close()
