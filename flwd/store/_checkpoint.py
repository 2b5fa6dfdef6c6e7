"""Checkpointing a SQLite Core DB's WAL away from its writers.

SQLite checkpoints by itself inside the COMMIT that takes the WAL past 1,000 pages:
that COMMIT then takes 10–20 ms on this machine's disk (the copy and an fsync of the
database file), and with the host write lock (``_write_lock``) held over it, every
other writer waits that long too. So a writer's connection turns those automatic
checkpoints off (``connect``), counts its process's COMMITs, and every
:data:`CHECKPOINT_EVERY` asks this module's thread to make a ``PASSIVE`` checkpoint
(one that never waits for readers or writers) on a connection of its own.

One thread per process, started when first needed; a daemon (a checkpoint left
undone at exit is done by the next one, or by SQLite when the last connection to
the file closes).
"""

from __future__ import annotations

import itertools
import os
import sqlite3
import threading

#: Every so many COMMITs of a process, its WALs are checkpointed. A journal commit
#: writes a few pages: about SQLite's own threshold of 1,000 pages.
CHECKPOINT_EVERY = 200


class Checkpointer:
    """The thread that checkpoints the WALs this process's writers fill."""

    def __init__(self) -> None:
        self._commits = itertools.count(1)
        self._due: set[str] = set()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        #: Checkpoint passes made (tests wait on it with :meth:`wait_passes`).
        self.passes = 0

    def committed(self, path: str) -> None:
        """A writer of the database at ``path`` committed (``next`` is atomic under the GIL)."""
        if next(self._commits) % CHECKPOINT_EVERY == 0:
            self.request(path)

    def request(self, path: str) -> None:
        """Checkpoint ``path``'s WAL soon; never blocks."""
        with self._changed:
            self._due.add(path)
            if self._thread is None:
                self._thread = threading.Thread(target=self._main, name="flwd-checkpoint",
                                                daemon=True)
                self._thread.start()
            self._changed.notify_all()

    def wait_passes(self, count: int, timeout: float) -> bool:
        """Wait until ``count`` passes were made; whether they were within ``timeout``."""
        with self._changed:
            return self._changed.wait_for(lambda: self.passes >= count, timeout)

    def _main(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: bool(self._due))
                paths, self._due = self._due, set()
            for path in paths:
                _checkpoint(path)
            with self._changed:
                self.passes += 1
                self._changed.notify_all()

    def _forked(self) -> None:
        # A forked child has no such thread: it starts its own when needed.
        self._changed = threading.Condition()
        self._thread = None
        self._due = set()


def _checkpoint(path: str) -> None:
    try:
        conn = sqlite3.connect(path, timeout=1.0, isolation_level=None)
    except sqlite3.Error:
        return
    try:
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    except sqlite3.Error:
        pass  # busy (another process checkpoints), gone…: a later pass tries again
    finally:
        conn.close()


#: The process's checkpointer.
CHECKPOINTER = Checkpointer()
os.register_at_fork(after_in_child=CHECKPOINTER._forked)
