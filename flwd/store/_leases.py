"""Named leases in the Core DB: one holder at a time, until an expiry on the database's clock.

What a cluster-wide singleton (the scheduler's leader, on a PostgreSQL Core DB shared by
several servers) takes before it acts, and renews while it acts. A lease is a row
``(name, holder, epoch, expires_at)``; :func:`take` is one upsert that succeeds when the
row is missing, expired, or already the caller's — so of two servers taking at once one
gets it, the other sees the row the first committed. The expiry is computed by the
database (``Dialect.clock``): the servers' own clocks never have to agree. The
``epoch`` grows by one each time the lease changes hands (or is taken again after it
lapsed), so a holder can tell that it was not holding it all along.

One statement in autocommit, outside the store's write lock: a renewal must not wait
behind a burst of journal batches for longer than the lease lasts.

Blocking: call from a worker thread inside trio.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._db import Connection
from ._dialect import Db, dialect_of
from ._schema import CLUSTER_SCHEMA

__all__ = ["Lease"]


@dataclass(frozen=True, slots=True)
class Lease:
    """A lease as the Core DB holds it: its holder, epoch and seconds left (≤ 0: lapsed)."""

    name: str
    holder: str
    epoch: int
    remaining: float


def _has_table(conn: Db) -> bool:
    return not isinstance(conn, Connection) or conn.schema_version >= CLUSTER_SCHEMA


def take(conn: Db, name: str, holder: str, ttl: float) -> int | None:
    """Take or renew lease ``name`` for ``ttl`` seconds from now (the database's now);
    its epoch if ``holder`` holds it now, None if another holder's lease is running."""
    clock = dialect_of(conn).clock()
    row = conn.execute(
        "INSERT INTO leases(name, holder, epoch, expires_at) "
        f"VALUES (?, ?, 1, {clock} + ?) ON CONFLICT(name) DO UPDATE SET "
        "epoch = CASE WHEN leases.holder = excluded.holder "
        f"AND leases.expires_at > {clock} THEN leases.epoch ELSE leases.epoch + 1 END, "
        "holder = excluded.holder, expires_at = excluded.expires_at "
        f"WHERE leases.holder = excluded.holder OR leases.expires_at <= {clock} "
        "RETURNING epoch", (name, holder, float(ttl))).fetchone()
    return None if row is None else int(row[0])


def release(conn: Db, name: str, holder: str) -> bool:
    """Let lease ``name`` lapse now if ``holder`` holds it (a server stopping: another
    takes it at once rather than after the expiry); True if it did."""
    clock = dialect_of(conn).clock()
    cursor = conn.execute(f"UPDATE leases SET expires_at = {clock} - 1 "
                          f"WHERE name = ? AND holder = ? AND expires_at > {clock}",
                          (name, holder))
    return bool(cursor.rowcount > 0)


def read(conn: Db, name: str) -> Lease | None:
    """Lease ``name`` as the Core DB holds it, lapsed or not; None if never taken."""
    if not _has_table(conn):
        return None
    clock = dialect_of(conn).clock()
    row = conn.execute(f"SELECT holder, epoch, expires_at - {clock} FROM leases WHERE name = ?",
                       (name,)).fetchone()
    return None if row is None else Lease(name, row[0], int(row[1]), float(row[2]))
