"""Reading runs and events on short-lived connections (history, replay, follow).

Blocking: call through ``trio.to_thread.run_sync`` inside trio. Readers never
share the writer's connection (WAL lets them run beside it).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flwd.errors import RunNotFound
from flwd.events import EventRecord, IdempotencyRecord, RunRow

from ._db import Connection, connect
from ._dialect import Db, dialect_of
from ._filter import EVERY_RUN, RunFilter, where_clause
from ._schema import SCHEMA_VERSION

_RUN_FIELDS = ("id", "job_id", "status", "created_at", "started_at", "finished_at", "exit_code",
               "error", "profile", "args", "plan", "provenance", "owner_pid", "owner_start",
               "owner_host", "owner_kind", "workspace", "executor", "runtime", "trigger",
               "trigger_key")
_RUN_COLUMNS = ", ".join(_RUN_FIELDS)


def _run_columns(conn: Db) -> tuple[str, bool]:
    """(the SELECT list of a run row, whether runs record their workspace) on ``conn``.

    A reader does not migrate (it must not write), so on a Core DB left by an
    older flwd the columns that version lacked are read as NULL, as a migration
    would have filled them.
    """
    if not isinstance(conn, Connection) or conn.schema_version >= SCHEMA_VERSION:
        return _RUN_COLUMNS, True
    present = conn.columns("runs")
    return (", ".join(name if name in present else f"NULL AS {name}" for name in _RUN_FIELDS),
            "workspace" in present)


def _where(conn: Db, query: RunFilter) -> tuple[str, str, dict[str, Any]]:
    """(the SELECT list of a run row, and ``query``'s WHERE clause and parameters) on
    ``conn``, whose runs may lack the columns a later schema added (see _run_columns)."""
    columns, has_workspace = _run_columns(conn)
    has_trigger = not (isinstance(conn, Connection) and conn.schema_version < SCHEMA_VERSION
                       and "trigger" not in conn.columns("runs"))
    clause, params = where_clause(query, has_workspace=has_workspace, has_trigger=has_trigger,
                                  dialect=dialect_of(conn))
    return columns, clause, params


@contextmanager
def open_reader(path: Path) -> Iterator[sqlite3.Connection]:
    conn = connect(path, readonly=True)
    try:
        yield conn
    finally:
        conn.close()


def _run_from_row(row: tuple[Any, ...]) -> RunRow:
    return RunRow(
        id=row[0], job_id=row[1], status=row[2], created_at=row[3], started_at=row[4],
        finished_at=row[5], exit_code=row[6], error=row[7], profile=row[8],
        args=json.loads(row[9]) if row[9] else {},
        plan=json.loads(row[10]) if row[10] else None,
        provenance=json.loads(row[11]) if row[11] else None,
        owner_pid=row[12], owner_start=row[13], owner_host=row[14], owner_kind=row[15],
        workspace=row[16], executor=row[17], runtime=row[18],
        trigger=json.loads(row[19]) if row[19] else None, trigger_key=row[20],
    )


def _event_from_row(row: tuple[Any, ...]) -> EventRecord:
    seq, last_seq, run_id, job_id, type_, ts, data, lines = row
    return EventRecord(run_id=run_id, job_id=job_id, type=type_, ts=ts, data=json.loads(data),
                       lines=lines, n=last_seq - seq + 1, seq=seq)


def get_run(conn: Db, run_ref: str, *, workspace: str | None = None) -> RunRow:
    """The run with id ``run_ref``, or the only one whose id starts with it.

    ``last`` names the most recently created run (of ``workspace``, when given).

    Raises:
        RunNotFound: no run, or an ambiguous prefix.
    """
    if run_ref == "last":
        latest = list_runs(conn, RunFilter(workspace=workspace), limit=1)
        if latest:
            return latest[0]
        if workspace is not None:
            raise RunNotFound(f"no run in the workspace {workspace} yet",
                              hint="'flwd :runs --all' lists the runs of every workspace")
        raise RunNotFound(f"no run '{run_ref}'", hint="'flwd :runs' lists runs")
    columns, _ = _run_columns(conn)
    rows = conn.execute(f"SELECT {columns} FROM runs WHERE id = ?", (run_ref,)).fetchall()
    if not rows and len(run_ref) >= 4:
        like = run_ref.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = conn.execute(f"SELECT {columns} FROM runs WHERE id LIKE ? ESCAPE '\\'"
                            " LIMIT 2", (like,)).fetchall()
    if len(rows) == 1:
        return _run_from_row(rows[0])
    if len(rows) > 1:
        raise RunNotFound(f"run id prefix '{run_ref}' is ambiguous",
                          hint="give more characters of the run id")
    raise RunNotFound(f"no run '{run_ref}'", hint="'flwd :runs' lists runs")


def count_runs(conn: Db, query: RunFilter = EVERY_RUN) -> int:
    _, clause, params = _where(conn, query)
    return int(conn.execute(f"SELECT COUNT(*) FROM runs {clause}", params).fetchone()[0])


def list_runs(conn: Db, query: RunFilter = EVERY_RUN, *, limit: int = 50,
              offset: int = 0) -> list[RunRow]:
    """The runs ``query`` selects, newest first."""
    columns, clause, params = _where(conn, query)
    rows = conn.execute(
        f"SELECT {columns} FROM runs {clause} ORDER BY created_at DESC, id DESC"
        " LIMIT :limit OFFSET :offset", {**params, "limit": limit, "offset": offset}).fetchall()
    return [_run_from_row(r) for r in rows]


def unfinished_runs(conn: Db) -> list[RunRow]:
    rows = conn.execute(f"SELECT {_run_columns(conn)[0]} FROM runs WHERE status IN ('queued','running')"
                        ).fetchall()
    return [_run_from_row(r) for r in rows]


def read_events(conn: Db, run_id: str | None, *, after: int = 0,
                limit: int = 500, max_bytes: int | None = None) -> list[EventRecord]:
    """Journal rows holding events with seq > ``after`` (of one run, or of all runs).

    At most ``limit`` rows; with ``max_bytes``, the read stops at the row that
    brings the payload read (output lines and data) to that many bytes, so a
    read holds at most ``max_bytes`` plus one row, however many lines a row
    holds. At least one row is returned when there is one.

    A chunk row that straddles ``after`` is returned whole; callers skip the
    lines at or below their cursor (``EventRecord.iter_events(after)``).
    """
    # Row ranges [seq, last_seq] never overlap, so the only row below the
    # cursor that can hold events after it is the last one starting at or
    # before it: seek there through the index (a plain ``last_seq > ?`` would
    # walk every earlier row of the run, or of the whole journal, per read).
    if run_id is None:
        cursor = conn.execute(
            "SELECT seq, last_seq, run_id, job_id, type, ts, data, lines FROM events"
            " WHERE seq >= COALESCE((SELECT MAX(seq) FROM events WHERE seq <= :after), 0)"
            " AND last_seq > :after ORDER BY seq LIMIT :limit",
            {"after": after, "limit": limit})
    else:
        cursor = conn.execute(
            "SELECT seq, last_seq, run_id, job_id, type, ts, data, lines FROM events"
            " WHERE run_id = :run AND seq >= COALESCE((SELECT MAX(seq) FROM events"
            " WHERE run_id = :run AND seq <= :after), 0)"
            " AND last_seq > :after ORDER BY seq LIMIT :limit",
            {"run": run_id, "after": after, "limit": limit})
    records: list[EventRecord] = []
    size = 0
    try:
        for row in cursor:  # fetched one at a time: stopping early reads no more
            records.append(_event_from_row(row))
            size += len(row[6]) + (len(row[7]) if row[7] is not None else 0)
            if max_bytes is not None and size >= max_bytes:
                break
    finally:
        cursor.close()
    return records


def event_bounds(conn: Db, run_id: str) -> tuple[int, int]:
    """(first seq, last seq) retained for the run; (0, 0) when it has none."""
    row = conn.execute("SELECT MIN(seq), MAX(last_seq) FROM events WHERE run_id = ?",
                       (run_id,)).fetchone()
    return (row[0] or 0, row[1] or 0)


def find_idempotent(conn: Db, key: str) -> IdempotencyRecord | None:
    """The record stored for a scoped idempotency key, however old."""
    row = conn.execute("SELECT body_sha256, run_id, created_at FROM idempotency WHERE key = ?",
                       (key,)).fetchone()
    return IdempotencyRecord(key, row[0], row[1], row[2]) if row else None
