"""The Core DB side of a cluster: replicas, the run queue, leases and reaping.

Blocking; each function is one transaction on a connection of a
:class:`~flwd.store.postgres.PostgresStore`, or of a :class:`~flwd.store.SqliteStore`
(the same transactions in SQLite's words: what the processes sharing one SQLite Core DB
on one host need to share its queue; its ``BEGIN IMMEDIATE`` locks the whole database,
so no row locks). The SQL builders
(:func:`claim_sql`, :func:`reap_sql`) are plain functions so their text is testable
without a server. Times of leases and heartbeats are the *database's* clock
(``Dialect.clock``): the replicas' own clocks may differ.

A claim and a reaping take the Core DB's write lock (``BEGIN IMMEDIATE``), as the
journal does: a job's ``concurrency`` is counted across the cluster without two
claimers both seeing room for one more, and a journal batch that checks a run's
lease epoch (``flwd.store.Fence``) cannot interleave with the reaping that bumps it.
The candidate rows are still locked ``FOR UPDATE SKIP LOCKED`` in a materialized CTE
(the optimisation fence keeps the planner from re-running the locking scan per row).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flwd.events import RUN_FINISH, EventRecord, format_ts

from ._dialect import Db, dialect_of
from ._journal import QUEUE_CHANNEL, _write

#: At most this many queued runs are looked at per claim (the oldest first): enough
#: for a job at its limit not to starve the jobs behind it in one pass.
CLAIM_SCAN = 256
#: At most this many lapsed leases are reaped per transaction (the next pass takes more).
REAP_BATCH = 100


@dataclass(frozen=True, slots=True)
class Replica:
    """A replica as ``GET /cluster`` shows it."""

    id: str
    host: str
    pid: int
    labels: list[str]
    capacity: int | None
    running: int
    queued: int
    started_at: float
    heartbeat_at: float
    stopped_at: float | None
    #: Seconds since its last heartbeat, on the database's clock.
    heartbeat_age: float

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "host": self.host, "pid": self.pid, "labels": self.labels,
                "max_concurrent_runs": self.capacity, "running": self.running,
                "queued": self.queued, "started_at": format_ts(self.started_at),
                "heartbeat_at": format_ts(self.heartbeat_at),
                "heartbeat_age_seconds": round(self.heartbeat_age, 3),
                "stopped_at": None if self.stopped_at is None else format_ts(self.stopped_at)}


@dataclass(frozen=True, slots=True)
class Claimed:
    """A run this replica now holds: re-plan it from ``queue`` and execute it."""

    run_id: str
    job_id: str
    queue: dict[str, Any]
    epoch: int


@dataclass(frozen=True, slots=True)
class Reaped:
    """A run whose lease lapsed, finished ``interrupted`` by the reaper."""

    run_id: str
    job_id: str
    owner_host: str | None
    owner_pid: int | None
    owner_start: int | None
    #: The run queued again in its place (the job's ``error_handling: retry``), if any.
    retry_id: str | None


def now(conn: Db) -> float:
    """The database's clock."""
    return float(conn.execute(f"SELECT {dialect_of(conn).clock()}").fetchone()[0])


def register(conn: Db, *, replica_id: str, host: str, pid: int, labels: Sequence[str],
             capacity: int | None) -> None:
    """Add this replica (or bring its row back, after a restart with the same id)."""
    clock = dialect_of(conn).clock()
    conn.execute(
        "INSERT INTO replicas(id, host, pid, labels, capacity, started_at, heartbeat_at)"
        f" VALUES (?, ?, ?, ?, ?, {clock}, {clock}) ON CONFLICT(id) DO UPDATE SET"
        " host = excluded.host, pid = excluded.pid, labels = excluded.labels,"
        " capacity = excluded.capacity, running = 0, queued = 0,"
        " started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at,"
        " stopped_at = NULL",
        (replica_id, host, pid, json.dumps(list(labels)), capacity))


def heartbeat(conn: Db, *, replica_id: str, running: int, queued: int, lease: float,
              run_ids: Sequence[str]) -> dict[str, int]:
    """Say this replica is alive and renew the leases of ``run_ids`` (its live runs), in
    one transaction; those it still holds (id → epoch).

    A run missing from the answer was reaped (its lease had lapsed) or finished: a
    live run of this replica missing from it must be stopped. A run this replica
    holds but no longer executes (its ``run.finish`` could not be journaled) is not
    renewed: its lease lapses and a reaper finishes it.
    """
    dialect = dialect_of(conn)
    clock = dialect.clock()
    sqlite = dialect.name == "sqlite"
    conn.execute("BEGIN IMMEDIATE" if sqlite else "BEGIN")
    try:
        conn.execute(f"UPDATE replicas SET heartbeat_at = {clock}, running = ?, queued = ?,"
                     " stopped_at = NULL WHERE id = ?", (running, queued, replica_id))
        held: dict[str, int] = {}
        if run_ids:
            among = "IN (SELECT value FROM json_each(?))" if sqlite else "= ANY(?)"
            ids: object = json.dumps(list(run_ids)) if sqlite else list(run_ids)
            held = {run_id: int(epoch) for run_id, epoch in conn.execute(
                f"UPDATE runs SET lease_until = {clock} + ? WHERE replica_id = ?"
                f" AND status IN ('queued', 'running') AND id {among}"
                " RETURNING id, lease_epoch", (lease, replica_id, ids))}
        conn.execute("COMMIT")
    except BaseException:
        _rollback(conn)
        raise
    return held


def stopped(conn: Db, replica_id: str) -> None:
    """This replica stops (its runs are finished or stopped already)."""
    conn.execute(f"UPDATE replicas SET stopped_at = {dialect_of(conn).clock()}, running = 0,"
                 " queued = 0 WHERE id = ?", (replica_id,))


def replicas(conn: Db, *, forget_after: float) -> list[Replica]:
    """Every replica that heartbeated within ``forget_after`` seconds, oldest first."""
    clock = dialect_of(conn).clock()
    rows = conn.execute(
        "SELECT id, host, pid, labels, capacity, running, queued, started_at, heartbeat_at,"
        f" stopped_at, {clock} - heartbeat_at FROM replicas"
        f" WHERE heartbeat_at >= {clock} - ? ORDER BY started_at, id", (forget_after,)
    ).fetchall()
    return [Replica(row[0], row[1], int(row[2]), list(json.loads(row[3] or "[]")),
                    None if row[4] is None else int(row[4]), int(row[5]), int(row[6]),
                    float(row[7]), float(row[8]), None if row[9] is None else float(row[9]),
                    max(0.0, float(row[10])))
            for row in rows]


def claim_sql(clock: str, *, sqlite: bool = False) -> str:
    """The claim: the oldest queued runs this replica may execute, locked ``SKIP LOCKED``
    in a materialized CTE, within its free slots and each job's ``concurrency`` across
    the cluster (the runs of the job already held by a replica, plus those ranked
    before it in this claim). Parameters: ``labels`` (JSON array), ``sources`` (JSON
    array of lower-cased source names this replica has), ``scan``, ``free``,
    ``replica``, ``lease``, ``pid``, ``start``, ``host``.

    With ``sqlite``, SQLite's words: its JSON functions, and no row locks (its
    ``BEGIN IMMEDIATE`` has the whole database to itself already)."""
    if sqlite:
        labels = ("NOT EXISTS (SELECT 1 FROM json_each(runs_on) AS wanted WHERE wanted.value"
                  " NOT IN (SELECT value FROM json_each(:labels)))")
        sources = "SELECT value FROM json_each(:sources)"
        lock = ""
    else:
        labels = "runs_on::jsonb <@ :labels::jsonb"
        sources = "SELECT jsonb_array_elements_text(:sources::jsonb)"
        lock = "FOR UPDATE SKIP LOCKED"
    return f"""
WITH candidates AS MATERIALIZED (
    SELECT id, job_id, created_at, concurrency FROM runs
    WHERE status = 'queued' AND queue IS NOT NULL AND replica_id IS NULL
      AND (runs_on IS NULL OR {labels})
      AND (job_source IS NULL OR lower(job_source) IN ({sources}))
    ORDER BY created_at, id
    LIMIT :scan
    {lock}
), ranked AS (
    SELECT c.id, c.created_at, c.concurrency,
           row_number() OVER (PARTITION BY lower(c.job_id) ORDER BY c.created_at, c.id)
               AS rank,
           (SELECT count(*) FROM runs held WHERE lower(held.job_id) = lower(c.job_id)
                AND held.replica_id IS NOT NULL
                AND held.status IN ('queued', 'running')) AS busy
    FROM candidates c
), chosen AS (
    SELECT id FROM ranked
    WHERE concurrency IS NULL OR busy + rank <= concurrency
    ORDER BY created_at, id
    LIMIT :free
)
UPDATE runs SET replica_id = :replica, lease_epoch = runs.lease_epoch + 1,
    lease_until = {clock} + :lease, owner_pid = :pid, owner_start = :start,
    owner_host = :host
FROM chosen WHERE runs.id = chosen.id
RETURNING runs.id, runs.job_id, runs.queue, runs.lease_epoch, runs.created_at
"""


def claim(conn: Db, *, replica_id: str, labels: Sequence[str], sources: Sequence[str],
          free: int, lease: float, pid: int, start: int | None, host: str
          ) -> list[Claimed]:
    """Claim up to ``free`` queued runs for this replica (oldest first); what it got.

    An empty queue (the usual answer to a poll, or to a freed slot) is seen with one read,
    without the write lock every other writer would then wait for; a run queued just after
    that look announces itself (the queue channel), and the claimer looks again.
    """
    if free <= 0:
        return []
    if conn.execute("SELECT 1 FROM runs WHERE status = 'queued' AND queue IS NOT NULL"
                    " AND replica_id IS NULL LIMIT 1").fetchone() is None:
        return []
    conn.execute("BEGIN IMMEDIATE")
    try:
        dialect = dialect_of(conn)
        rows = conn.execute(claim_sql(dialect.clock(), sqlite=dialect.name == "sqlite"), {
            "labels": json.dumps(sorted(labels)),
            "sources": json.dumps(sorted(source.lower() for source in sources)),
            "scan": CLAIM_SCAN, "free": free, "replica": replica_id, "lease": lease,
            "pid": pid, "start": start, "host": host}).fetchall()
        conn.execute("COMMIT")
    except BaseException:
        _rollback(conn)
        raise
    rows.sort(key=lambda row: (row[4], row[0]))
    return [Claimed(row[0], row[1], json.loads(row[2]), int(row[3])) for row in rows]


def take_queued(conn: Db, *, run_id: str, replica_id: str, lease: float, pid: int,
                start: int | None, host: str) -> int | None:
    """Claim one run still queued for any replica (to cancel it); its lease epoch, or None
    when a replica claimed it first (or it is not queued)."""
    row = conn.execute(
        f"UPDATE runs SET replica_id = ?, lease_epoch = lease_epoch + 1,"
        f" lease_until = {dialect_of(conn).clock()} + ?, owner_pid = ?, owner_start = ?,"
        " owner_host = ? WHERE id = ? AND status = 'queued' AND queue IS NOT NULL"
        " AND replica_id IS NULL RETURNING lease_epoch",
        (replica_id, lease, pid, start, host, run_id)).fetchone()
    return None if row is None else int(row[0])


def reap_sql(clock: str, *, dead: bool = False, sqlite: bool = False) -> str:
    """The runs whose lease lapsed (their replica stopped heartbeating), locked; they
    get a new epoch at once, so their old holder's writes are refused from now on. With
    ``dead``: the one run ``:run_id`` of a replica known dead (its process is gone from
    this host: ``:host``, ``:pid``), whatever its lease says. ``sqlite``: as
    :func:`claim_sql`'s."""
    which = ("id = :run_id AND owner_host = :host AND owner_pid = :pid" if dead
             else f"lease_until < {clock}")
    return f"""
WITH lapsed AS MATERIALIZED (
    SELECT id FROM runs
    WHERE replica_id IS NOT NULL AND status IN ('queued', 'running')
      AND {which}
    ORDER BY lease_until
    LIMIT :limit
    {"" if sqlite else "FOR UPDATE SKIP LOCKED"}
)
UPDATE runs SET lease_epoch = runs.lease_epoch + 1, replica_id = NULL, lease_until = NULL
FROM lapsed WHERE runs.id = lapsed.id
RETURNING runs.id, runs.job_id, runs.owner_host, runs.owner_pid, runs.owner_start,
    runs.queue
"""


def reap(conn: Db, *, new_id: Any, dead: tuple[str, str, int] | None = None) -> list[Reaped]:
    """Finish ``interrupted`` every run whose lease lapsed, in one transaction with their
    ``run.finish`` (so it is journaled once: a second reaper finds nothing left); a run
    of a job with ``error_handling: retry`` and attempts left is queued again as a new
    run (``trigger: {kind: retry, of: …}``). ``new_id`` makes run ids.

    The run's old holder is gone, or cut off from the database: it stopped its own runs
    before the lease lapsed (flwd/engine/_lease.py), so nothing of them runs any more.
    """
    dialect = dialect_of(conn)
    conn.execute("BEGIN IMMEDIATE")
    try:
        params: dict[str, Any] = {"limit": REAP_BATCH}
        if dead is not None:
            params.update(run_id=dead[0], host=dead[1], pid=dead[2])
        rows = conn.execute(reap_sql(dialect.clock(), dead=dead is not None,
                                     sqlite=dialect.name == "sqlite"), params).fetchall()
        if not rows:
            conn.execute("ROLLBACK")
            return []
        found = conn.execute(f"SELECT {dialect.clock()}").fetchone()
        ts = float(found[0])
        reaped: list[Reaped] = []
        records: list[EventRecord] = []
        for run_id, job_id, host, pid, start, queue_text in rows:
            retry_id = _retry(conn, run_id, queue_text, new_id())
            records.append(EventRecord(run_id=run_id, job_id=job_id, type=RUN_FINISH, ts=ts,
                                       data={"status": "interrupted",
                                             "finished_at": format_ts(ts),
                                             "error": _lapsed(host, pid, retry_id)}))
            reaped.append(Reaped(run_id, job_id, host, pid, start, retry_id))
        seq_row = conn.execute("SELECT last_seq FROM events ORDER BY seq DESC LIMIT 1"
                               ).fetchone()
        _write(conn, records, (seq_row[0] if seq_row else 0) + 1)
        if any(item.retry_id for item in reaped):
            dialect.notify(conn, QUEUE_CHANNEL, [""])
        conn.execute("COMMIT")
    except BaseException:
        _rollback(conn)
        raise
    return reaped


def _lapsed(host: str | None, pid: int | None, retry_id: str | None) -> str:
    text = (f"the replica executing this run (pid {pid} on {host}) stopped renewing its "
            "lease (it died, or lost the Core DB)")
    return text if retry_id is None else f"{text}; retried as run {retry_id}"


def _retry(conn: Db, run_id: str, queue_text: str | None, retry_id: str) -> str | None:
    """Queue a new run in place of ``run_id`` if its job retries and it has attempts left."""
    if not queue_text:
        return None  # only this replica could execute it (secret arguments)
    queue = json.loads(queue_text)
    attempt = int(queue.get("attempt", 0))
    if attempt >= int(queue.get("retries", 0)):
        return None
    retried = {**queue, "attempt": attempt + 1}
    conn.execute(
        "INSERT INTO runs(id, job_id, status, created_at, profile, args, plan, provenance,"
        " owner_kind, workspace, executor, runtime, trigger, trigger_key, queue, runs_on,"
        " concurrency, job_source, lease_epoch)"
        f" SELECT ?, job_id, 'queued', {dialect_of(conn).clock()}, profile, args, plan,"
        " provenance, owner_kind, workspace, executor, runtime, ?, ?, ?, runs_on,"
        " concurrency, job_source, 0 FROM runs WHERE id = ?",
        (retry_id, json.dumps({"kind": "retry", "of": run_id, "attempt": attempt + 1}),
         f"retry:{run_id}", json.dumps(retried), run_id))
    return retry_id


def _rollback(conn: Db) -> None:
    try:
        conn.execute("ROLLBACK")
    except Exception:  # the connection may be gone: its error is raised
        pass
