"""Delivery ids a hook has seen, for a while (replay protection of inbound webhooks).

A delivery is *claimed* before its run is started and *settled* with the run's id
after, or *released* when nothing started (its arguments were refused…), so that
the sender may deliver it again. A claim whose run never came (the server stopped
between claim and start) is taken over after ``stale`` seconds: the run's trigger
key (unique in ``runs``) still refuses a second run if the first did start.

Bounded: a claim first deletes the hook's rows older than its window (and every
row older than :data:`MAX_AGE`, a removed hook's included), and a hook keeps at
most ``keep`` rows, its oldest dropped. Only requests that passed the hook's
authentication claim anything, so an anonymous flood cannot grow the table nor
push a real delivery out.

Blocking: call from a worker thread inside trio.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ._db import Connection
from ._dialect import Db
from ._kv import _write
from ._schema import AUTOMATION_SCHEMA

#: No delivery is remembered longer than this, whatever its hook said (30 days).
MAX_AGE: Final = 30 * 86400.0


@dataclass(frozen=True, slots=True)
class DeliveryClaim:
    """What claiming a delivery found: ``claimed`` (it is new: go on), or the earlier
    delivery's run (``run_id``; None while it is being started, or if it never was)."""

    claimed: bool
    run_id: str | None = None


def claim(conn: Db, hook: str, delivery: str, *, now: float, window: float,
          keep: int, stale: float) -> DeliveryClaim:
    """Record that ``hook`` received ``delivery`` at ``now``, unless it did already.

    Raises:
        StorageError: the Core DB cannot be written.
    """
    if keep < 1:
        raise ValueError("a hook keeps at least one delivery")
    with _write(conn):
        conn.execute("DELETE FROM hook_deliveries WHERE seen_at < ?", (now - MAX_AGE,))
        conn.execute("DELETE FROM hook_deliveries WHERE hook = ? AND seen_at < ?",
                     (hook, now - window))
        row = conn.execute("SELECT seen_at, run_id FROM hook_deliveries WHERE hook = ? "
                           "AND delivery = ?", (hook, delivery)).fetchone()
        if row is not None:
            seen_at, run_id = row
            if run_id is not None or seen_at >= now - stale:
                return DeliveryClaim(False, run_id)
            conn.execute("UPDATE hook_deliveries SET seen_at = ? WHERE hook = ? AND "
                         "delivery = ?", (now, hook, delivery))
            return DeliveryClaim(True)
        conn.execute("INSERT INTO hook_deliveries(hook, delivery, seen_at) VALUES (?, ?, ?)",
                     (hook, delivery, now))
        count = conn.execute("SELECT COUNT(*) FROM hook_deliveries WHERE hook = ?",
                             (hook,)).fetchone()[0]
        if count > keep:
            conn.execute("DELETE FROM hook_deliveries WHERE rowid IN (SELECT rowid FROM "
                         "hook_deliveries WHERE hook = ? ORDER BY seen_at, rowid LIMIT ?)",
                         (hook, count - keep))
    return DeliveryClaim(True)


def settle(conn: Db, hook: str, delivery: str, run_id: str) -> None:
    """The claimed delivery started ``run_id``.

    Raises:
        StorageError: the Core DB cannot be written.
    """
    with _write(conn):
        conn.execute("UPDATE hook_deliveries SET run_id = ? WHERE hook = ? AND delivery = ?",
                     (run_id, hook, delivery))


def release(conn: Db, hook: str, delivery: str) -> None:
    """Forget a claimed delivery that started nothing (it may be delivered again).

    Raises:
        StorageError: the Core DB cannot be written.
    """
    with _write(conn):
        conn.execute("DELETE FROM hook_deliveries WHERE hook = ? AND delivery = ? AND "
                     "run_id IS NULL", (hook, delivery))


def count(conn: Db, hook: str | None = None) -> int:
    """Deliveries remembered (of ``hook``, or of every hook)."""
    if isinstance(conn, Connection) and conn.schema_version < AUTOMATION_SCHEMA:
        return 0  # a reader of a Core DB left by an older flwd (it does not migrate)
    if hook is None:
        return int(conn.execute("SELECT COUNT(*) FROM hook_deliveries").fetchone()[0])
    return int(conn.execute("SELECT COUNT(*) FROM hook_deliveries WHERE hook = ?",
                            (hook,)).fetchone()[0])
