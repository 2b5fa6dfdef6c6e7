"""Notification deliveries and the run history their rules read (blocking).

A delivery attempt is journaled as a ``notify.delivery`` event of its run, and the
same transaction writes its row in ``notify_deliveries`` (:func:`record_delivery`,
called by the journal's writer): the row is a projection of the event, so the two
never disagree and a reader lists a run's deliveries without scanning its events.

What ``after_failures`` and ``recovery`` count is read from the runs themselves
(:func:`recent_outcomes`), so it survives restarts and needs no state of its own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from flwd.events import RUN_FINISH, EventRecord, format_ts

from ._db import Connection
from ._dialect import Db

#: The version whose migration made ``notify_deliveries`` (an older Core DB has none).
NOTIFY_SCHEMA = 10
#: The columns of a row; the rest of the event's data is kept as ``detail`` (JSON).
_COLUMNS = ("sink", "event", "attempt", "outcome")
#: What a finished run counts as in a streak: canceled runs are in none.
FAILED_STATUSES = ("failed", "interrupted")
STREAK_STATUSES = ("completed", *FAILED_STATUSES)

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """One delivery attempt of a notification (a row of ``notify_deliveries``)."""

    id: int
    run_id: str
    job_id: str
    sink: str
    event: str
    attempt: int
    outcome: str
    detail: dict[str, Any]
    at: float

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "run_id": self.run_id, "job_id": self.job_id,
                "sink": self.sink, "event": self.event, "attempt": self.attempt,
                "outcome": self.outcome, **self.detail, "at": format_ts(self.at)}


def _has_table(conn: Db) -> bool:
    # A reader of a Core DB left by an older flwd does not migrate it.
    return not isinstance(conn, Connection) or conn.schema_version >= NOTIFY_SCHEMA


def record_delivery(conn: Db, event: EventRecord) -> None:
    """Write the row of a ``notify.delivery`` event, inside the journal's open transaction."""
    data = event.data
    detail = {key: value for key, value in data.items() if key not in _COLUMNS}
    conn.execute(
        "INSERT INTO notify_deliveries(run_id, job_id, sink, event, attempt, outcome, detail, at)"
        " VALUES (?,?,?,?,?,?,?,?)",
        (event.run_id, event.job_id, str(data.get("sink", "")), str(data.get("event", "")),
         int(data.get("attempt") or 0), str(data.get("outcome", "")), _dumps(detail), event.ts))


def list_deliveries(conn: Db, run_id: str, *, limit: int) -> list[DeliveryRecord]:
    """The run's delivery attempts, oldest first, at most ``limit``."""
    if not _has_table(conn):
        return []
    rows = conn.execute(
        "SELECT id, run_id, job_id, sink, event, attempt, outcome, detail, at "
        "FROM notify_deliveries WHERE run_id = ? ORDER BY id LIMIT ?", (run_id, limit))
    return [DeliveryRecord(row[0], row[1], row[2], row[3], row[4], row[5], row[6],
                           json.loads(row[7]) if row[7] else {}, row[8]) for row in rows]


def recent_outcomes(conn: Db, job_id: str, *, workspace: str | None,
                    until: float, limit: int) -> list[str]:
    """The statuses of the job's last ``limit`` runs finished at or before ``until``
    (``completed``, ``failed`` or ``interrupted``; canceled runs are skipped), newest
    first. ``workspace``: that workspace's runs only (None: runs that record none)."""
    marks = ",".join("?" * len(STREAK_STATUSES))
    same_workspace = "workspace IS NULL" if workspace is None else "workspace = ?"
    rows = conn.execute(
        f"SELECT status FROM runs WHERE job_id = ? AND {same_workspace} "
        f"AND status IN ({marks}) AND finished_at <= ? "
        f"ORDER BY finished_at DESC, id DESC LIMIT ?",
        (job_id, *(() if workspace is None else (workspace,)), *STREAK_STATUSES, until, limit))
    return [row[0] for row in rows]


def finish_seq(conn: Db, run_id: str) -> int | None:
    """The seq of the run's ``run.finish`` (where its stream ends), if it has one."""
    row = conn.execute("SELECT seq FROM events WHERE run_id = ? AND type = ? "
                       "ORDER BY seq DESC LIMIT 1", (run_id, RUN_FINISH)).fetchone()
    return None if row is None else int(row[0])
