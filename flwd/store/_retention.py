"""Keeping the Core DB bounded: evict whole old runs (blocking; call from a thread in trio).

Only *finished* runs are evicted, oldest first, and always whole: the run row,
every event of it, its idempotency keys and its run directory go together, so
a run that is still listed is always complete. A tombstone remembers each
evicted run (and the highest sequence number evicted), so a client resuming a
stream from an evicted cursor is told ``410 Gone`` instead of getting a gap.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flwd.errors import UsageError

from ._dialect import Db, dialect_of

#: Finished runs are evicted in batches of this many (one transaction each), so
#: the journal writer never waits long for the write lock.
BATCH = 200
_TERMINAL = ("completed", "failed", "canceled", "interrupted")


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    retain_runs: int | None = None
    retain_days: float | None = None
    max_db_mb: float | None = None

    def __post_init__(self) -> None:
        for name, value in (("--retain-runs", self.retain_runs),
                            ("--retain-days", self.retain_days),
                            ("--max-db-mb", self.max_db_mb)):
            if value is not None and value <= 0:
                raise UsageError(f"{name} must be positive (got {value})",
                                 hint=f"leave {name} out to keep everything")

    @property
    def active(self) -> bool:
        return any(v is not None for v in (self.retain_runs, self.retain_days, self.max_db_mb))

    def to_json(self) -> dict[str, Any]:
        return {"retain_runs": self.retain_runs, "retain_days": self.retain_days,
                "max_db_mb": self.max_db_mb}


@dataclass(slots=True)
class GcResult:
    evicted: list[str] = field(default_factory=list)
    events_deleted: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    dry_run: bool = False
    #: What the evicted rows held (the eviction metrics): the bytes of the events'
    #: data and output lines, and the idempotency keys with their bytes.
    event_bytes_deleted: int = 0
    keys_deleted: int = 0
    key_bytes_deleted: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"evicted_runs": len(self.evicted), "evicted": self.evicted,
                "events_deleted": self.events_deleted, "used_bytes_before": self.bytes_before,
                "used_bytes_after": self.bytes_after, "dry_run": self.dry_run}


def used_bytes(conn: Db) -> int:
    """What ``--max-db-mb`` is checked against (see the connection's dialect)."""
    return dialect_of(conn).used_bytes(conn)


def storage_usage(conn: sqlite3.Connection, db_path: Path) -> dict[str, Any]:
    """What ``GET /health/storage`` reports of the database (see ``Store.storage_usage``)."""
    def size(path: Path) -> int:
        try:
            return path.stat().st_size
        except OSError:
            return 0

    page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
    pages = int(conn.execute("PRAGMA page_count").fetchone()[0])
    page_limit = int(conn.execute("PRAGMA max_page_count").fetchone()[0])
    return {"driver": "sqlite",
            "bytes_used": pages * page_size,
            "max_bytes": _max_bytes(db_path, pages, page_size, page_limit),
            # Read from the file (a reader does not migrate): what it really is.
            "schema_version": int(conn.execute("PRAGMA user_version").fetchone()[0]),
            "db_bytes": size(db_path), "wal_bytes": size(db_path.with_name(db_path.name + "-wal")),
            **journal_usage(conn)}


def journal_usage(conn: Db) -> dict[str, Any]:
    """What ``GET /health/storage`` reports of the rows, on any backend: ``journal_bytes``,
    ``used_bytes``, ``runs``, ``events``, ``oldest_run_created_at``, ``evicted_runs``
    and ``evicted_through_seq``."""
    runs, oldest = conn.execute("SELECT count(*), min(created_at) FROM runs").fetchone()
    # One pass over the journal. The blob's length comes from the row header; the
    # data's (small JSON) is counted in bytes, not characters.
    events, journal = conn.execute(
        "SELECT coalesce(sum(last_seq - seq + 1), 0), coalesce(sum("
        f"{dialect_of(conn).octets('data')} + coalesce(length(lines), 0)), 0) FROM events"
    ).fetchone()
    evicted = conn.execute("SELECT count(*) FROM evicted_runs").fetchone()[0]
    return {"journal_bytes": int(journal), "used_bytes": used_bytes(conn), "runs": int(runs),
            "events": int(events), "oldest_run_created_at": oldest, "evicted_runs": int(evicted),
            "evicted_through_seq": evicted_through(conn)}


def _max_bytes(db_path: Path, pages: int, page_size: int, page_limit: int) -> int:
    """The size the database file can reach: its pages now plus what its file system
    still gives an unprivileged writer, within SQLite's own page limit.

    flwd sets no hard cap of its own: ``--max-db-mb`` is retention's target (it
    evicts old runs), not a size at which writes fail; a full disk is.
    """
    ceiling = page_limit * page_size
    try:
        stats = os.statvfs(db_path.parent)
    except OSError:
        return ceiling  # unknown room: not a reason to call the store degraded
    return min(ceiling, pages * page_size + stats.f_bavail * stats.f_frsize)


def evicted_through(conn: Db) -> int:
    """The highest event sequence number ever evicted (0: none)."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'evicted_through_seq'").fetchone()
    return int(row[0]) if row else 0


def was_evicted(conn: Db, run_id: str) -> bool:
    return conn.execute("SELECT 1 FROM evicted_runs WHERE run_id = ?",
                        (run_id,)).fetchone() is not None


def _candidates(conn: Db, policy: RetentionPolicy, now: float) -> list[str]:
    """Finished runs the count and age limits evict, oldest first."""
    chosen: dict[str, None] = {}
    marks = ",".join("?" * len(_TERMINAL))
    if policy.retain_days is not None:
        horizon = now - policy.retain_days * 86400
        for (run_id,) in conn.execute(
                f"SELECT id FROM runs WHERE status IN ({marks}) AND "
                "coalesce(finished_at, created_at) < ? ORDER BY created_at, id",
                (*_TERMINAL, horizon)):
            chosen[run_id] = None
    if policy.retain_runs is not None:
        # Keep the newest N runs of all; only finished ones beyond them go.
        for (run_id,) in conn.execute(
                f"SELECT id FROM runs WHERE status IN ({marks}) AND id NOT IN "
                "(SELECT id FROM runs ORDER BY created_at DESC, id DESC LIMIT ?) "
                "ORDER BY created_at, id", (*_TERMINAL, policy.retain_runs)):
            chosen[run_id] = None
    return list(chosen)


def _evict(conn: Db, run_ids: list[str], runs_dir: Path | None,
           result: GcResult) -> None:
    """Delete whole runs in one transaction; add them and what they held to ``result``."""
    if not run_ids:
        return
    dialect = dialect_of(conn)
    marks = ",".join("?" * len(run_ids))
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Re-checked under the write lock: a run is only evicted once finished.
        run_ids = [row[0] for row in conn.execute(
            f"SELECT id FROM runs WHERE id IN ({marks}) AND status IN "
            f"({','.join('?' * len(_TERMINAL))})", (*run_ids, *_TERMINAL))]
        if not run_ids:
            conn.execute("COMMIT")
            return
        marks = ",".join("?" * len(run_ids))
        # length() of a BLOB reads its size, not its pages: the output lines are not loaded.
        top, count, size = conn.execute(
            f"SELECT coalesce(max(last_seq), 0), coalesce(sum(last_seq - seq + 1), 0), "
            f"coalesce(sum({dialect.octets('data')} + coalesce(length(lines), 0)), 0) "
            f"FROM events WHERE run_id IN ({marks})", run_ids).fetchone()
        keys, key_size = conn.execute(
            f"SELECT count(*), coalesce(sum({dialect.octets('key')} "
            f"+ {dialect.octets('body_sha256')} + {dialect.octets('run_id')}), 0) "
            f"FROM idempotency WHERE run_id IN ({marks})", run_ids).fetchone()
        stamp = time.time()
        conn.executemany("INSERT INTO evicted_runs(run_id, evicted_at) VALUES (?, ?) "
                         "ON CONFLICT(run_id) DO UPDATE SET evicted_at = excluded.evicted_at",
                         [(run_id, stamp) for run_id in run_ids])
        _raise_evicted_through(conn, top)
        conn.execute(f"DELETE FROM events WHERE run_id IN ({marks})", run_ids)
        conn.execute(f"DELETE FROM idempotency WHERE run_id IN ({marks})", run_ids)
        conn.execute(f"DELETE FROM notify_deliveries WHERE run_id IN ({marks})", run_ids)
        # A cancel asked through another replica that the run's end left untaken.
        conn.execute(f"DELETE FROM cancel_requests WHERE run_id IN ({marks})", run_ids)
        conn.execute(f"DELETE FROM runs WHERE id IN ({marks})", run_ids)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    result.evicted += run_ids
    result.events_deleted += int(count)
    result.event_bytes_deleted += int(size)
    result.keys_deleted += int(keys)
    result.key_bytes_deleted += int(key_size)
    if runs_dir is not None:
        for run_id in run_ids:
            shutil.rmtree(runs_dir / run_id, ignore_errors=True)


def _raise_evicted_through(conn: Db, top: int) -> None:
    """``evicted_through_seq`` becomes ``top`` unless it is higher already."""
    later = dialect_of(conn).greatest("CAST(meta.value AS BIGINT)",
                                      "CAST(excluded.value AS BIGINT)")
    conn.execute("INSERT INTO meta(key, value) VALUES ('evicted_through_seq', ?) "
                 f"ON CONFLICT(key) DO UPDATE SET value = {later}", (str(top),))


def _evict_runless(conn: Db, policy: RetentionPolicy, now: float,
                   result: GcResult) -> None:
    """Delete the events of no run (refused requests, schedule skips, refused webhooks)
    older than the oldest run kept: they go with the runs of their time, so they are
    bounded by the same limits (without this they would be kept for ever)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        oldest = conn.execute("SELECT min(created_at) FROM runs").fetchone()[0]
        if oldest is None:
            oldest = now - policy.retain_days * 86400 if policy.retain_days is not None else now
        top, count, size = conn.execute(
            "SELECT coalesce(max(last_seq), 0), count(*), "
            f"coalesce(sum({dialect_of(conn).octets('data')}), 0) "
            "FROM events WHERE run_id = '' AND ts < ?", (oldest,)).fetchone()
        if count:
            conn.execute("DELETE FROM events WHERE run_id = '' AND ts < ?", (oldest,))
            # A stream resumed from before them is told 410, as for evicted runs.
            _raise_evicted_through(conn, top)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    result.events_deleted += int(count)
    result.event_bytes_deleted += int(size)


def collect(conn: Db, policy: RetentionPolicy, *, runs_dir: Path | None,
            now: float | None = None, dry_run: bool = False) -> GcResult:
    """Apply ``policy``: the count and age limits, then the size limit, oldest runs first."""
    now = time.time() if now is None else now
    result = GcResult(bytes_before=used_bytes(conn), dry_run=dry_run)
    doomed = _candidates(conn, policy, now)
    if dry_run:
        result.evicted = doomed
        result.bytes_after = result.bytes_before
        return result
    for start in range(0, len(doomed), BATCH):
        _evict(conn, doomed[start:start + BATCH], runs_dir, result)
    if policy.max_db_mb is not None:
        limit = int(policy.max_db_mb * 1024 * 1024)
        while (used := used_bytes(conn)) > limit:
            # Evict about as many runs as the excess needs (by the average run's
            # size), so the DB ends just under the limit, not far below it.
            runs = conn.execute("SELECT count(*) FROM runs").fetchone()[0] or 1
            need = -(-(used - limit) * runs // used)
            marks = ",".join("?" * len(_TERMINAL))
            oldest = [row[0] for row in conn.execute(
                f"SELECT id FROM runs WHERE status IN ({marks}) ORDER BY created_at, id "
                "LIMIT ?", (*_TERMINAL, max(1, min(BATCH, need))))]
            if not oldest:
                break  # only live runs left: they are never evicted
            _evict(conn, oldest, runs_dir, result)
    if result.evicted:
        _evict_runless(conn, policy, now, result)
        dialect_of(conn).after_eviction(conn)
    result.bytes_after = used_bytes(conn)
    return result
