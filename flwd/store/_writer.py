"""The journal writer: one connection owned by one dedicated OS thread.

SQLite objects are thread-affine (and a psycopg connection must not be used by two
threads at once), and a trio ``CapacityLimiter(1)`` does not pin a thread (trio hands
the job to any idle worker), so the connection lives in a plain ``threading.Thread``
fed through a ``queue.SimpleQueue``. :class:`ThreadedJournal` is that thread;
:class:`JournalWriter` is SQLite's (with its ballast file), the PostgreSQL store's
opens its connection to the server instead.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol, cast

import outcome

from ._db import connect
from ._dialect import Db
from ._journal import Fence, GroupResult, JournalItem, append_groups

Done = Callable[[outcome.Outcome[list[GroupResult]]], None]

_STOP = object()

#: Size of the ballast file kept beside the Core DB (``flwd.db.reserve``). When
#: the disk fills up, the journal deletes it so that the few records that
#: finish the runs it then stops (``run.finish`` with the storage error) still
#: fit; it is re-created by the next writer that finds room for it.
RESERVE_BYTES = 256 * 1024


class ClosingDb(Db, Protocol):
    def close(self) -> None: ...


class ThreadedJournal:
    """Commits batches in order, one transaction each, in its own thread.

    A batch is a list of groups; a group whose records cannot be stored is
    answered with its :class:`~flwd.errors.RecordUnstorable` and the others
    are committed (see :func:`flwd.store.append_groups`).

    ``submit`` never blocks; ``done`` is called *in the writer thread* with the
    outcome, so trio callers hand it to ``TrioToken.run_sync_soon``.
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._ready = threading.Event()
        self._open_error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="flwd-journal", daemon=True)
        #: The thread's connection (set, used and closed in the thread only).
        self._conn: ClosingDb
        #: The leases of a cluster replica's runs, checked by every batch (None: no cluster).
        self.fence: Fence | None = None

    def start(self) -> None:
        """Start the thread and wait until the connection is open (blocking, short)."""
        self._thread.start()
        self._ready.wait()
        if self._open_error is not None:
            self._thread.join()
            raise self._open_error

    def _connect(self) -> ClosingDb:
        """Open the thread's connection, the schema migrated (in the thread)."""
        raise NotImplementedError

    def _prepare(self) -> None:
        """Once connected, before the first batch (in the thread)."""

    def _usable(self, conn: ClosingDb) -> ClosingDb:
        """The connection for the next batch: ``conn``, or a new one if it was lost (in the
        thread). SQLite's file cannot be lost; a server's connection can."""
        return conn

    def release_reserve(self) -> bool:
        """Free the space kept for finishing runs on a full disk; True if some was freed."""
        return False

    def submit(self, groups: Sequence[Sequence[JournalItem]], done: Done) -> None:
        """Queue ``groups`` for one transaction (see :func:`flwd.store.append_groups`)."""
        self._queue.put((groups, done))

    def close(self) -> None:
        """Commit everything submitted so far, then stop the thread (blocking)."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()

    def _main(self) -> None:
        try:
            self._conn = self._connect()
        except BaseException as exc:
            self._open_error = exc
            self._ready.set()
            return
        self._prepare()
        self._ready.set()
        try:
            while True:
                job = self._queue.get()
                if job is _STOP:
                    break
                groups, done = cast(tuple[Sequence[Sequence[JournalItem]], Done], job)
                done(outcome.capture(self._append, groups))
        finally:
            self._conn.close()

    def _append(self, groups: Sequence[Sequence[JournalItem]]) -> list[GroupResult]:
        # The connection is only ever touched here, in the thread.
        self._conn = self._usable(self._conn)
        return append_groups(self._conn, groups, self.fence)


class JournalWriter(ThreadedJournal):
    """The journal of a SQLite Core DB, and its ballast file (see :data:`RESERVE_BYTES`)."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def _connect(self) -> ClosingDb:
        return connect(self.path)

    def _prepare(self) -> None:
        self._make_reserve()

    @property
    def reserve_path(self) -> Path:
        return self.path.with_name(self.path.name + ".reserve")

    def release_reserve(self) -> bool:
        """Delete the ballast file to free room on a full disk; True if there was one.

        Thread-safe (a file removal); the space is usable at once by the writer.
        """
        try:
            os.unlink(self.reserve_path)
        except FileNotFoundError:
            return False
        return True

    def _make_reserve(self) -> None:
        # Best effort: no room for the ballast is not a reason to refuse to start.
        path = self.reserve_path
        try:
            if path.exists() and path.stat().st_size >= RESERVE_BYTES:
                return
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                os.posix_fallocate(fd, 0, RESERVE_BYTES)
            finally:
                os.close(fd)
        except OSError:
            try:
                os.unlink(path)
            except OSError:
                pass
