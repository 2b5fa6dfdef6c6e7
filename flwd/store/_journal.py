"""Appending to the journal: one transaction per batch, sequence numbers assigned inside it.

Blocking. Used by the journal writer thread and, on a short-lived connection,
by start-up recovery.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

from flwd.errors import StorageError
from flwd.events import (
    RUN_FINISH,
    RUN_START,
    TERMINAL_STATUSES,
    EventRecord,
    IdempotencyRecord,
    RunRow,
)

JournalItem = EventRecord | RunRow | IdempotencyRecord

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def append_batch(conn: sqlite3.Connection, items: Sequence[JournalItem]) -> list[EventRecord]:
    """Write ``items`` in one transaction; return the events with their ``seq`` set.

    ``seq`` is global and increasing across runs *and processes*: it is read
    from the table under the write lock (``BEGIN IMMEDIATE``), so a CLI run and a
    server sharing one data dir never hand out the same number.

    Raises:
        StorageError: the write failed (disk full, I/O error); nothing of the
            batch is kept.
    """
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        raise StorageError(f"cannot write the Core DB: {exc}") from exc
    try:
        row = conn.execute("SELECT last_seq FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        next_seq = (row[0] if row else 0) + 1
        committed: list[EventRecord] = []
        event_rows: list[tuple[object, ...]] = []
        for item in items:
            if isinstance(item, RunRow):
                _flush(conn, event_rows)
                _insert_run(conn, item)
                continue
            if isinstance(item, IdempotencyRecord):
                conn.execute("INSERT OR REPLACE INTO idempotency(key, body_sha256, run_id, created_at)"
                             " VALUES (?,?,?,?)",
                             (item.key, item.body_sha256, item.run_id, item.created_at))
                continue
            item.seq = next_seq
            next_seq += item.n
            committed.append(item)
            event_rows.append((item.seq, item.last_seq, item.run_id, item.job_id, item.type,
                               item.ts, _dumps(item.data), item.lines))
            if item.type in (RUN_START, RUN_FINISH):
                _flush(conn, event_rows)
                _apply_status(conn, item)
        _flush(conn, event_rows)
        conn.execute("COMMIT")
    except BaseException as exc:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass
        for item in items:
            if isinstance(item, EventRecord):
                item.seq = 0
        if isinstance(exc, sqlite3.Error):
            raise StorageError(
                f"cannot write the Core DB: {exc}",
                hint="free space in the data dir; the journal keeps everything committed so far",
            ) from exc
        raise
    return committed


def _flush(conn: sqlite3.Connection, rows: list[tuple[object, ...]]) -> None:
    if rows:
        conn.executemany(
            "INSERT INTO events(seq, last_seq, run_id, job_id, type, ts, data, lines)"
            " VALUES (?,?,?,?,?,?,?,?)",
            rows,
        )
        rows.clear()


def _insert_run(conn: sqlite3.Connection, run: RunRow) -> None:
    conn.execute(
        "INSERT INTO runs(id, job_id, status, created_at, started_at, finished_at, exit_code,"
        " error, profile, args, plan, provenance, owner_pid, owner_start, owner_host, owner_kind)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (run.id, run.job_id, run.status, run.created_at, run.started_at, run.finished_at,
         run.exit_code, run.error, run.profile, _dumps(run.args),
         None if run.plan is None else _dumps(run.plan),
         None if run.provenance is None else _dumps(run.provenance),
         run.owner_pid, run.owner_start, run.owner_host, run.owner_kind),
    )


_TERMINAL_SQL = ",".join(f"'{s}'" for s in sorted(TERMINAL_STATUSES))


def _apply_status(conn: sqlite3.Connection, event: EventRecord) -> None:
    # Terminal statuses are sticky: a late event never rewrites a finished run.
    if event.type == RUN_START:
        conn.execute(
            f"UPDATE runs SET status = 'running', started_at = ? WHERE id = ?"
            f" AND status NOT IN ({_TERMINAL_SQL})",
            (event.ts, event.run_id),
        )
    else:
        data = event.data
        # A run may finish knowing more about where it came from (an add-on's
        # digest resolved by the run): its provenance is replaced then.
        provenance = data.get("provenance")
        conn.execute(
            f"UPDATE runs SET status = ?, finished_at = ?, exit_code = ?, error = ?,"
            f" provenance = COALESCE(?, provenance)"
            f" WHERE id = ? AND status NOT IN ({_TERMINAL_SQL})",
            (data.get("status"), event.ts, data.get("exit_code"), data.get("error"),
             None if provenance is None else _dumps(provenance), event.run_id),
        )
