"""Cancel requests for runs live in another process of the Core DB (a cluster's replica).

``POST /runs/{id}:cancel`` on replica A for a run executing on replica B cannot reach
B's run actor: A records the request here (who, why, whether forced) and notifies
:data:`~flwd.store._signals.CANCELS_CHANNEL` in the same transaction; B takes it
(:func:`take`: read and deleted at once, so it is acted on once) when told, or when
its polling fallback looks, and cancels its run as a local cancel would.

One row per run: a second request before the first was taken keeps the first's
reason and author, and is forced if either was (a second Ctrl-C).

Blocking: call from a worker thread inside trio.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from ._db import Connection
from ._dialect import Db, dialect_of
from ._kv import _write
from ._schema import CANCELS_SCHEMA
from ._signals import CANCELS_CHANNEL, cancel_payload

__all__ = ["CancelRequest"]


@dataclass(frozen=True, slots=True)
class CancelRequest:
    """A cancel asked for through another process."""

    run_id: str
    reason: str
    by: str
    force: bool
    requested_at: float


def _has_table(conn: Db) -> bool:
    # A reader of a Core DB left by an older flwd does not migrate it.
    return not isinstance(conn, Connection) or conn.schema_version >= CANCELS_SCHEMA


def request(conn: Db, run_id: str, *, reason: str, by: str, force: bool, now: float) -> None:
    """Record the request and notify the run's owner (at commit)."""
    with _write(conn):
        conn.execute(
            "INSERT INTO cancel_requests(run_id, reason, requested_by, force, requested_at)"
            " VALUES (?,?,?,?,?) ON CONFLICT(run_id) DO UPDATE SET"
            " force = CASE WHEN excluded.force = 1 THEN 1 ELSE cancel_requests.force END",
            (run_id, reason, by, int(force), now))
        dialect_of(conn).notify(conn, CANCELS_CHANNEL, [cancel_payload(run_id)])


def take(conn: Db, run_ids: Collection[str]) -> list[CancelRequest]:
    """The requests for ``run_ids``, deleted in the same transaction (each is taken once)."""
    if not run_ids or not _has_table(conn):
        return []
    ids = sorted(set(run_ids))
    marks = ",".join("?" * len(ids))
    with _write(conn):
        rows = conn.execute(
            "SELECT run_id, reason, requested_by, force, requested_at FROM cancel_requests"
            f" WHERE run_id IN ({marks}) ORDER BY requested_at", ids).fetchall()
        if rows:
            conn.execute(f"DELETE FROM cancel_requests WHERE run_id IN ({marks})", ids)
    return [CancelRequest(row[0], row[1], row[2], bool(row[3]), row[4]) for row in rows]


def pending(conn: Db, run_ids: Collection[str]) -> bool:
    """Whether any of ``run_ids`` has a request waiting (a read: no write lock)."""
    if not run_ids or not _has_table(conn):
        return False
    ids = sorted(set(run_ids))
    marks = ",".join("?" * len(ids))
    return conn.execute(f"SELECT 1 FROM cancel_requests WHERE run_id IN ({marks}) LIMIT 1",
                        ids).fetchone() is not None
