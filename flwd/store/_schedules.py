"""Schedule state in the Core DB: each schedule's watermark, pause and last fire.

One row per (workspace, schedule name). The scheduler moves the **watermark** (the
last fire time it handled) forward only — ``MAX`` in SQL, so a late or repeated
write never moves it back — and records the last fire; ``paused`` is written only by
a pause or a resume, so neither kind of write can undo the other.

Which scheduled fires already have a run is read from ``runs.trigger_key``
(``schedule:<name>@<RFC 3339 UTC>``, fixed width: keys of one schedule sort by
time): a run committed by a server that died before it moved the watermark is
found there, and is never started again.

Blocking: call from a worker thread inside trio.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from flwd.events import schedule_key_prefix

from ._db import Connection
from ._dialect import Db, dialect_of
from ._kv import _write
from ._schema import AUTOMATION_SCHEMA

__all__ = ["ScheduleState"]

_FIRE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True, slots=True)
class ScheduleState:
    """What the Core DB keeps of one schedule (times in Unix seconds)."""

    name: str
    watermark: float | None = None
    paused: bool = False
    last_fire_at: float | None = None
    #: ``started``, ``skipped:<reason>``, ``refused``… (the scheduler's words).
    last_outcome: str | None = None
    last_run_id: str | None = None
    updated_at: float | None = None


def _has_table(conn: Db) -> bool:
    # A reader of a Core DB left by an older flwd does not migrate it.
    return not isinstance(conn, Connection) or conn.schema_version >= AUTOMATION_SCHEMA


def states(conn: Db, workspace: str) -> dict[str, ScheduleState]:
    if not _has_table(conn):
        return {}
    rows = conn.execute("SELECT name, watermark, paused, last_fire_at, last_outcome, "
                        "last_run_id, updated_at FROM schedule_state WHERE workspace = ? "
                        "ORDER BY name", (workspace,)).fetchall()
    return {row[0]: ScheduleState(row[0], row[1], bool(row[2]), row[3], row[4], row[5], row[6])
            for row in rows}


def record(conn: Db, workspace: str, name: str, *, watermark: float,
           fire_at: float | None, outcome: str | None, run_id: str | None,
           now: float) -> None:
    """Move the watermark (never back) and, given ``outcome``, record the last fire."""
    later = dialect_of(conn).greatest(
        "coalesce(schedule_state.watermark, excluded.watermark)", "excluded.watermark")
    with _write(conn):
        conn.execute(
            "INSERT INTO schedule_state(workspace, name, watermark, last_fire_at, "
            "last_outcome, last_run_id, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
            f"ON CONFLICT(workspace, name) DO UPDATE SET watermark = {later}, "
            "last_fire_at = coalesce(excluded.last_fire_at, schedule_state.last_fire_at), "
            "last_outcome = coalesce(excluded.last_outcome, schedule_state.last_outcome), "
            "last_run_id = CASE WHEN excluded.last_outcome IS NULL THEN "
            "schedule_state.last_run_id ELSE excluded.last_run_id END, "
            "updated_at = excluded.updated_at",
            (workspace, name, watermark, fire_at, outcome, run_id, now))


def set_paused(conn: Db, workspace: str, name: str, paused: bool,
               now: float) -> bool:
    """Pause or resume; True when that changed anything."""
    with _write(conn):
        row = conn.execute("SELECT paused FROM schedule_state WHERE workspace = ? AND name = ?",
                           (workspace, name)).fetchone()
        if row is not None and bool(row[0]) == paused:
            return False
        conn.execute(
            "INSERT INTO schedule_state(workspace, name, paused, updated_at) "
            "VALUES (?, ?, ?, ?) ON CONFLICT(workspace, name) DO UPDATE SET "
            "paused = excluded.paused, updated_at = excluded.updated_at",
            (workspace, name, int(paused), now))
    return True


def fired_through(conn: Db, workspace: str, name: str, after: float,
                  until: float) -> float | None:
    """The newest scheduled fire time of ``name`` in ``(after, until]`` that has a run."""
    if not _has_table(conn):
        return None
    prefix = schedule_key_prefix(workspace, name)
    row = conn.execute(
        "SELECT max(trigger_key) FROM runs WHERE trigger_key > ? AND trigger_key <= ? "
        "AND workspace = ?", (prefix + _text(after), prefix + _text(until), workspace)
    ).fetchone()
    if row is None or row[0] is None:
        return None
    return datetime.strptime(row[0][len(prefix):], _FIRE_FORMAT).replace(
        tzinfo=UTC).timestamp()


def _text(instant: float) -> str:
    return datetime.fromtimestamp(int(instant // 1), UTC).strftime(_FIRE_FORMAT)
