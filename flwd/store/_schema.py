"""Core DB schema and its migrations (``PRAGMA user_version`` is the version)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import Any

#: A migration: SQL statements (separated by ``;``), or a function for what SQL
#: alone cannot do portably. It runs inside the migration's transaction.
Migration = str | Callable[[sqlite3.Connection], None]


def _executor_of_plan(plan: Any) -> tuple[str | None, str | None]:
    """(executor, runtime) of a stored plan: its ``executor_preview``, as a run of
    schema 8 records them. A plan of a container job names its runtime (an
    ``interpreter: container:`` job's preview said ``proc`` before schema 8)."""
    preview = plan.get("executor_preview") if isinstance(plan, dict) else None
    if not isinstance(preview, dict):
        return None, None
    runtime = preview.get("runtime")
    if isinstance(runtime, str) and runtime:
        return "container", runtime
    executor = preview.get("executor")
    return (executor if executor in ("proc", "container") else None), None


def _runs_executor(conn: sqlite3.Connection) -> None:
    """7 -> 8: the executor and runtime of each run, kept on its row (``GET /runs``
    and ``run.start`` say them). Older runs get them from their stored plan
    (in Python: SQLite's JSON functions are optional before 3.38); a run
    without a plan keeps NULL (unknown)."""
    conn.execute("ALTER TABLE runs ADD COLUMN executor TEXT")
    conn.execute("ALTER TABLE runs ADD COLUMN runtime TEXT")
    found: list[tuple[str | None, str | None, str]] = []
    # Row by row (a plan can be large); only the small answers are kept.
    for run_id, text in conn.execute("SELECT id, plan FROM runs WHERE plan IS NOT NULL"):
        try:
            plan = json.loads(text)
        except (TypeError, ValueError):
            continue
        executor, runtime = _executor_of_plan(plan)
        if executor is not None:
            found.append((executor, runtime, run_id))
    conn.executemany("UPDATE runs SET executor = ?, runtime = ? WHERE id = ?", found)


_CLUSTER_COLUMNS = (("queue", "TEXT"), ("runs_on", "TEXT"), ("concurrency", "INTEGER"),
                    ("job_source", "TEXT"), ("replica_id", "TEXT"),
                    ("lease_epoch", "INTEGER NOT NULL DEFAULT 0"), ("lease_until", "REAL"))


def _cluster(conn: sqlite3.Connection) -> None:
    """11 -> 12: the cluster's replicas and the queue's and leases' columns of runs. Only
    what is missing is added: a Core DB moved back to an older version number (by hand,
    or by the tests that rebuild an older schema) keeps what it has."""
    conn.execute("""
        CREATE TABLE IF NOT EXISTS replicas (
            id           TEXT PRIMARY KEY,
            host         TEXT NOT NULL,
            pid          INTEGER NOT NULL,
            labels       TEXT NOT NULL DEFAULT '[]',
            capacity     INTEGER,
            running      INTEGER NOT NULL DEFAULT 0,
            queued       INTEGER NOT NULL DEFAULT 0,
            started_at   REAL NOT NULL,
            heartbeat_at REAL NOT NULL,
            stopped_at   REAL
        )""")
    present = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
    for name, kind in _CLUSTER_COLUMNS:
        if name not in present:
            conn.execute(f"ALTER TABLE runs ADD COLUMN {name} {kind}")


_AUTOMATION_TABLES = """
    CREATE UNIQUE INDEX IF NOT EXISTS runs_by_trigger_key ON runs(trigger_key)
        WHERE trigger_key IS NOT NULL;
    CREATE TABLE IF NOT EXISTS schedule_state (
        workspace    TEXT NOT NULL,
        name         TEXT NOT NULL,
        watermark    REAL,
        paused       INTEGER NOT NULL DEFAULT 0,
        last_fire_at REAL,
        last_outcome TEXT,
        last_run_id  TEXT,
        updated_at   REAL NOT NULL,
        PRIMARY KEY (workspace, name)
    );
    CREATE TABLE IF NOT EXISTS hook_deliveries (
        hook        TEXT NOT NULL,
        delivery    TEXT NOT NULL,
        seen_at     REAL NOT NULL,
        run_id      TEXT,
        PRIMARY KEY (hook, delivery)
    );
    CREATE INDEX IF NOT EXISTS hook_deliveries_by_seen ON hook_deliveries(seen_at);
    CREATE TABLE IF NOT EXISTS notify_deliveries (
        id          INTEGER PRIMARY KEY,
        run_id      TEXT NOT NULL,
        job_id      TEXT NOT NULL,
        sink        TEXT NOT NULL,
        event       TEXT NOT NULL,
        attempt     INTEGER NOT NULL,
        outcome     TEXT NOT NULL,
        detail      TEXT,
        at          REAL NOT NULL
    );
    CREATE INDEX IF NOT EXISTS notify_deliveries_by_at ON notify_deliveries(at);
    CREATE INDEX IF NOT EXISTS notify_deliveries_by_run ON notify_deliveries(run_id);
"""


def _automation(conn: sqlite3.Connection) -> None:
    """9 -> 10: ``runs.trigger``/``runs.trigger_key`` and the automation tables. The
    columns are added only when missing (like the tables' IF NOT EXISTS: a Core DB moved
    back to an older version number keeps what it holds)."""
    present = {row[1] for row in conn.execute("SELECT * FROM pragma_table_info('runs')")}
    for column in ("trigger", "trigger_key"):
        if column not in present:
            conn.execute(f"ALTER TABLE runs ADD COLUMN {column} TEXT")
    for statement in _AUTOMATION_TABLES.split(";"):
        if statement.strip():
            conn.execute(statement)


# Each entry migrates from version i to i + 1. Never edit a released entry:
# append a new one.
MIGRATIONS: list[Migration] = [
    # 0 -> 1: runs and the event journal.
    """
    CREATE TABLE runs (
        id          TEXT PRIMARY KEY,
        job_id      TEXT NOT NULL,
        status      TEXT NOT NULL,
        created_at  REAL NOT NULL,
        started_at  REAL,
        finished_at REAL,
        exit_code   INTEGER,
        error       TEXT,
        profile     TEXT,
        args        TEXT NOT NULL DEFAULT '{}',
        plan        TEXT,
        provenance  TEXT,
        owner_pid   INTEGER,
        owner_start INTEGER,
        owner_host  TEXT
    );
    CREATE INDEX runs_by_created ON runs(created_at);
    CREATE INDEX runs_by_job ON runs(job_id, created_at);
    CREATE INDEX runs_by_status ON runs(status);
    -- One row is one event, or a chunk of n = last_seq - seq + 1 output lines
    -- (DESIGN §5: a row per line cannot reach the throughput target).
    CREATE TABLE events (
        seq      INTEGER PRIMARY KEY,
        last_seq INTEGER NOT NULL,
        run_id   TEXT NOT NULL,
        job_id   TEXT NOT NULL,
        type     TEXT NOT NULL,
        ts       REAL NOT NULL,
        data     TEXT NOT NULL,
        lines    BLOB
    );
    CREATE INDEX events_by_run ON events(run_id, seq);
    """,
    # 1 -> 2: who owns a run (cli | serve), and idempotent POST /runs.
    """
    ALTER TABLE runs ADD COLUMN owner_kind TEXT;
    CREATE TABLE idempotency (
        key         TEXT PRIMARY KEY,
        body_sha256 TEXT NOT NULL,
        run_id      TEXT NOT NULL,
        created_at  REAL NOT NULL
    );
    CREATE INDEX idempotency_by_created ON idempotency(created_at);
    """,
    # 2 -> 3: job sources (registered folders and git repositories), re-materialised on start.
    """
    CREATE TABLE sources (
        name        TEXT PRIMARY KEY COLLATE NOCASE,
        type        TEXT NOT NULL,
        spec        TEXT NOT NULL,
        state       TEXT NOT NULL,
        created_at  REAL NOT NULL,
        updated_at  REAL NOT NULL
    );
    """,
    # 3 -> 4: retention — tombstones of evicted runs and small key/value facts
    # (``evicted_through_seq``: the highest event sequence number evicted).
    """
    CREATE TABLE evicted_runs (
        run_id      TEXT PRIMARY KEY,
        evicted_at  REAL NOT NULL
    );
    CREATE TABLE meta (
        key         TEXT PRIMARY KEY,
        value       TEXT NOT NULL
    );
    CREATE INDEX runs_by_finished ON runs(finished_at);
    """,
    # 4 -> 5: an idempotency row keeps an HMAC of the request body under the
    # install's key ("hmac-sha256:<hex>", see _idempotency.py), no longer a plain
    # SHA-256 that would let a reader of the file confirm a guessed secret. Older
    # rows are overwritten with a value no digest equals: a retry of such a request
    # answers 409 rather than start its run twice. secure_delete zeroes the bytes
    # the update frees, so the old hashes do not linger in the file.
    """
    PRAGMA secure_delete = ON;
    UPDATE idempotency SET body_sha256 = 'unkeyed (before schema 5)'
        WHERE body_sha256 NOT LIKE 'hmac-sha256:%';
    """,
    # 5 -> 6: the workspace a run belongs to (the absolute path of the folder
    # holding its scripts/), so one data dir can keep the history of several
    # workspaces apart. Runs of older versions have none (NULL).
    """
    ALTER TABLE runs ADD COLUMN workspace TEXT;
    CREATE INDEX runs_by_workspace ON runs(workspace, created_at);
    """,
    # 6 -> 7: Rule-Y key/value (flwd/store/_kv.py): byte keys in byte order per
    # namespace, and the bytes each namespace holds (its quota is checked
    # against one row, in the transaction of the write). IF NOT EXISTS: a Core DB
    # that was moved back to an older version number (by hand, or by the tests that
    # rebuild an older schema) still has them, and keeps what they hold.
    """
    CREATE TABLE IF NOT EXISTS kv (
        namespace   TEXT NOT NULL,
        key         BLOB NOT NULL,
        value       BLOB NOT NULL,
        updated_ms  INTEGER NOT NULL,
        PRIMARY KEY (namespace, key)
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS kv_usage (
        namespace   TEXT PRIMARY KEY,
        bytes       INTEGER NOT NULL
    );
    """,
    # 7 -> 8: runs.executor and runs.runtime.
    _runs_executor,
    # 8 -> 9: browser sessions (flwd/store/_sessions.py): the digest of each session's
    # id, never the id; its token's id, never the token. IF NOT EXISTS: as for 6 -> 7.
    """
    CREATE TABLE IF NOT EXISTS sessions (
        id_hash     TEXT PRIMARY KEY,
        token_id    TEXT NOT NULL,
        created_at  REAL NOT NULL,
        expires_at  REAL NOT NULL
    );
    CREATE INDEX IF NOT EXISTS sessions_by_token ON sessions(token_id, created_at);
    CREATE INDEX IF NOT EXISTS sessions_by_expiry ON sessions(expires_at);
    """,
    # 9 -> 10: automation (schedules, inbound webhooks, notifications).
    # runs.trigger: what started a run, as JSON ({"kind": "schedule", "name", "fire_at"},
    # {"kind": "hook", "name", "delivery"}); NULL for the API and the CLI.
    # runs.trigger_key: the unique identity of a fire or a delivery: a second run for the
    # same (schedule, fire_at) is refused by the index, in the transaction that would
    # create it (what makes a crash between fire and journal, or several replicas, safe).
    # schedule_state: one row per schedule (workspace, name): the watermark (the latest
    # fire time handled, fired or skipped), pause, and the last outcome.
    # hook_deliveries: delivery ids seen (replay protection), dropped after their window.
    # notify_deliveries: one row per delivery attempt of a notification (the UI lists
    # them; each is also a journaled event of its run).
    _automation,
    # 10 -> 11: a run's job is looked up without regard to case (job ids are
    # case-insensitive: Catalog.resolve), which runs_by_job (BINARY) cannot serve — a
    # filtered history or a job's streak scanned every run. IF NOT EXISTS: as for 6 -> 7.
    """
    CREATE INDEX IF NOT EXISTS runs_by_job_nocase ON runs(job_id COLLATE NOCASE, created_at);
    """,
    # 11 -> 12: cluster-wide singletons (issue 18). leases: a named lease held by one
    # holder until expires_at (the database's clock), its epoch counting the hand-overs
    # (flwd/store/_leases.py: the scheduler's leader on PostgreSQL). api_tokens: the API
    # tokens of a Core DB shared by several servers (flwd/store/_tokens.py), as the
    # tokens file keeps them: the SHA-256 of each token, never the token. Unused on
    # SQLite, where one server owns the data dir and its tokens file; present so both
    # backends stay at one version. IF NOT EXISTS: as for 6 -> 7.
    """
    CREATE TABLE IF NOT EXISTS leases (
        name        TEXT PRIMARY KEY,
        holder      TEXT NOT NULL,
        epoch       INTEGER NOT NULL,
        expires_at  REAL NOT NULL
    );
    CREATE TABLE IF NOT EXISTS api_tokens (
        name        TEXT PRIMARY KEY,
        sha256      TEXT NOT NULL UNIQUE,
        scopes      TEXT NOT NULL,
        created_at  TEXT,
        expires_at  REAL
    );
    """,
    # 12 -> 13: cancel requests for a run live in another process of the Core DB (a
    # cluster's replica takes them: flwd/store/_cancels.py). Unused by a lone SQLite
    # process, kept at PostgreSQL's version. IF NOT EXISTS: as for 6 -> 7.
    """
    CREATE TABLE IF NOT EXISTS cancel_requests (
        run_id       TEXT PRIMARY KEY,
        reason       TEXT NOT NULL,
        requested_by TEXT NOT NULL,
        force        INTEGER NOT NULL,
        requested_at REAL NOT NULL
    );
    """,
    # 13 -> 14: a cluster of servers on one PostgreSQL Core DB (flwd/engine/_cluster.py):
    # the replicas and their heartbeats; a run queued for any replica (its plan request,
    # the labels and concurrency it needs) and the lease of the replica executing it.
    # Unused on SQLite (a cluster needs PostgreSQL); kept so both schemas are one.
    _cluster,
]

SCHEMA_VERSION = len(MIGRATIONS)
#: The version whose migration made the Rule-Y key/value tables (a reader of an
#: older Core DB finds none).
KV_SCHEMA = 7
#: The version whose migration made the automation tables and ``runs.trigger``.
AUTOMATION_SCHEMA = 10
#: The version whose migration made the leases and API tokens tables.
CLUSTER_SCHEMA = 12
#: The version whose migration made ``cancel_requests`` (flwd/store/_cancels.py).
CANCELS_SCHEMA = 13
