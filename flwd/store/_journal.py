"""Appending to the journal: one transaction per batch, sequence numbers assigned inside it.

Blocking. Used by the journal writer thread and, on a short-lived connection,
by start-up recovery.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from flwd.errors import (
    IdempotencyKeyTaken,
    LeaseLost,
    RecordUnstorable,
    StorageError,
    TriggerAlreadyFired,
)
from flwd.events import (
    NOTIFY_DELIVERY,
    RUN_FINISH,
    RUN_START,
    TERMINAL_STATUSES,
    ClusterRun,
    EventRecord,
    IdempotencyRecord,
    RunRow,
)

from ._dialect import Db, Dialect, dialect_of
from ._idempotency import IDEMPOTENCY_TTL
from ._notify import record_delivery
from ._signals import EVENTS_CHANNEL, event_payloads, last_seqs

JournalItem = EventRecord | RunRow | IdempotencyRecord
#: The channel a replica of a cluster listens on for runs queued for any replica.
QUEUE_CHANNEL = "flwd_runs_queued"


class Fence:
    """The runs a replica of a cluster holds, with the epoch of each lease it holds.

    Every batch that writes an event of one of them checks, in its transaction and
    under the write lock, that the run's row still names this replica and this epoch:
    a replica whose lease lapsed (and was reaped, or claimed again elsewhere) cannot
    write for the run any more (its group is refused with
    :class:`~flwd.errors.LeaseLost`). Set by the trio thread, read by the journal's
    (single lookups, atomic under the GIL).
    """

    def __init__(self, replica_id: str) -> None:
        self.replica_id = replica_id
        self.epochs: dict[str, int] = {}
#: What :func:`append_groups` answers per group: its committed events, or why it was refused.
GroupResult = list[EventRecord] | RecordUnstorable

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
#: Longest description of a refused record's fault (it may quote the record).
_REASON_CHARS = 300


def append_batch(conn: Db, items: Sequence[JournalItem]) -> list[EventRecord]:
    """Write ``items`` in one transaction; return the events with their ``seq`` set.

    ``seq`` is global and increasing across runs *and processes*: it is read
    from the table under the write lock (``BEGIN IMMEDIATE``), so a CLI run and a
    server sharing one data dir never hand out the same number.

    Raises:
        StorageError: the write failed (disk full, I/O error); nothing of the
            batch is kept.
        RecordUnstorable: a record cannot be stored (see :func:`append_groups`);
            nothing of the batch is kept.
    """
    result = append_groups(conn, [items])[0]
    if isinstance(result, RecordUnstorable):
        raise result
    return result


def append_groups(conn: Db, groups: Sequence[Sequence[JournalItem]],
                  fence: Fence | None = None) -> list[GroupResult]:
    """Write every group that can be stored, in one transaction; one result per group.

    A group is all or nothing (a run row with its idempotency key, a chunk of
    output). A group holding a record the database cannot take — text that is not
    UTF-8 (a lone surrogate), an integer beyond 64 bits, a value of a type it
    cannot bind or too big, a constraint it breaks, an idempotency key a fresh
    record holds (:class:`~flwd.errors.IdempotencyKeyTaken`, see :func:`_take_key`)
    — is left out and answered with a :class:`RecordUnstorable`; the other groups are committed as if it
    had never been there (no hole in the sequence numbers). The common case
    costs nothing extra: the groups are first written in one go, and only if a
    record fails is the transaction redone with a savepoint per group.

    With ``fence`` (a replica of a cluster), a group holding an event of a run whose
    lease this replica lost is refused with :class:`~flwd.errors.LeaseLost`.

    Raises:
        StorageError: the Core DB itself failed (disk full, I/O error, locked);
            nothing is kept.
    """
    try:
        return _transaction(conn, groups, careful=False, fence=fence)
    except _RecordFault:
        return _transaction(conn, groups, careful=True, fence=fence)


class _RecordFault(Exception):
    """A record, not the database, failed (fast path only: redo the batch carefully)."""


def _transaction(conn: Db, groups: Sequence[Sequence[JournalItem]], *,
                 careful: bool, fence: Fence | None = None) -> list[GroupResult]:
    dialect = dialect_of(conn)
    try:
        conn.execute("BEGIN IMMEDIATE")
    except dialect.errors as exc:
        raise _storage_error(dialect, exc) from exc
    results: list[GroupResult] = []
    try:
        row = conn.execute("SELECT last_seq FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        next_seq = (row[0] if row else 0) + 1
        lost = _lost_leases(conn, groups, fence) if fence is not None else {}
        for group in groups:
            refused = next((lost[item.run_id] for item in group if isinstance(item, EventRecord)
                            and item.run_id in lost), None)
            if refused is not None:
                results.append(refused)
                continue
            if not careful:
                next_seq, committed = _write(conn, group, next_seq)
                results.append(committed)
                continue
            conn.execute("SAVEPOINT journal_group")
            current: list[JournalItem | None] = [None]
            try:
                next_seq, committed = _write(conn, group, next_seq, current=current)
            except Exception as exc:
                if not dialect.is_record_fault(exc):
                    raise
                conn.execute("ROLLBACK TO journal_group")
                _unnumber(group)
                results.append(_refusal(dialect, current[0], exc))
            else:
                results.append(committed)
            conn.execute("RELEASE journal_group")
        # Other processes following these runs read the journal when told (PostgreSQL).
        dialect.notify(conn, EVENTS_CHANNEL, event_payloads(last_seqs(
            event for result in results if not isinstance(result, RecordUnstorable)
            for event in result)))
        if any(isinstance(item, ClusterRun) and item.replica_id is None and item.queue
               for group in groups for item in group):
            # Replicas claim it (one notification per transaction, whatever it queued).
            dialect.notify(conn, QUEUE_CHANNEL, [""])
        conn.execute("COMMIT")
    except BaseException as exc:
        try:
            conn.execute("ROLLBACK")
        except dialect.errors:
            pass
        for group in groups:
            _unnumber(group)
        if not careful and isinstance(exc, Exception) and dialect.is_record_fault(exc):
            raise _RecordFault() from exc
        if isinstance(exc, dialect.errors):
            raise _storage_error(dialect, exc) from exc
        raise
    return results


def _write(conn: Db, items: Sequence[JournalItem], next_seq: int, *,
           current: list[JournalItem | None] | None = None) -> tuple[int, list[EventRecord]]:
    """Write ``items`` inside the open transaction; the next free seq and the events.

    With ``current``, each record is written on its own and ``current[0]`` is the
    one being written, so that a failure names it.
    """
    committed: list[EventRecord] = []
    event_rows: list[tuple[object, ...]] = []
    for item in items:
        if current is not None:
            current[0] = item
        if isinstance(item, RunRow):
            _flush(conn, event_rows)
            _insert_run(conn, item)
            continue
        if isinstance(item, IdempotencyRecord):
            _take_key(conn, item)
            continue
        item.seq = next_seq
        next_seq += item.n
        committed.append(item)
        event_rows.append((item.seq, item.last_seq, item.run_id, item.job_id, item.type,
                           item.ts, _dumps(item.data), item.lines))
        if current is not None or item.type in (RUN_START, RUN_FINISH):
            _flush(conn, event_rows)
        if item.type in (RUN_START, RUN_FINISH):
            _apply_status(conn, item)
        elif item.type == NOTIFY_DELIVERY:
            record_delivery(conn, item)  # its row, in the event's transaction
    _flush(conn, event_rows)
    return next_seq, committed


def _lost_leases(conn: Db, groups: Sequence[Sequence[JournalItem]], fence: Fence
                 ) -> dict[str, LeaseLost]:
    """The fenced runs of ``groups`` whose lease this replica no longer holds (read
    under the write lock, so no reaping can come between the check and the commit)."""
    expected: dict[str, int] = {}
    for group in groups:
        for item in group:
            if isinstance(item, EventRecord) and item.run_id not in expected:
                epoch = fence.epochs.get(item.run_id)
                if epoch is not None:
                    expected[item.run_id] = epoch
    if not expected:
        return {}
    ids = list(expected)
    marks = ",".join("?" * len(ids))
    held = {run_id: (replica, epoch) for run_id, replica, epoch in conn.execute(
        f"SELECT id, replica_id, lease_epoch FROM runs WHERE id IN ({marks})", ids)}
    return {run_id: LeaseLost(f"run {run_id} is no longer held by this replica (its lease "
                              "lapsed and another replica took it over)", run_id=run_id)
            for run_id, epoch in expected.items()
            if held.get(run_id) != (fence.replica_id, epoch)}


def _take_key(conn: Db, record: IdempotencyRecord) -> None:
    """Insert ``record``, or replace one of its key older than :data:`IDEMPOTENCY_TTL`.

    The one place that decides which request a key belongs to, so that two
    processes (two servers on one PostgreSQL database, a server and a CLI on one
    SQLite file) that both looked the key up and found nothing cannot both start
    a run: the loser's insert finds the winner's row — committed with its run
    row, under the write lock — and is refused. Never overwritten while fresh.

    Raises:
        IdempotencyKeyTaken: a fresh record of the key exists (its group is left out).
    """
    taken = conn.execute(
        "INSERT INTO idempotency(key, body_sha256, run_id, created_at) VALUES (?,?,?,?)"
        " ON CONFLICT(key) DO UPDATE SET body_sha256 = excluded.body_sha256,"
        " run_id = excluded.run_id, created_at = excluded.created_at"
        " WHERE idempotency.created_at <= ?",
        (record.key, record.body_sha256, record.run_id, record.created_at,
         record.created_at - IDEMPOTENCY_TTL)).rowcount
    if taken:
        return
    digest, run_id, created_at = conn.execute(
        "SELECT body_sha256, run_id, created_at FROM idempotency WHERE key = ?",
        (record.key,)).fetchone()
    raise IdempotencyKeyTaken(f"the Idempotency-Key of run {run_id} is taken",
                              key=record.key, body_digest=digest, run_id=run_id,
                              created_at=created_at)


def _unnumber(items: Sequence[JournalItem]) -> None:
    for item in items:
        if isinstance(item, EventRecord):
            item.seq = 0


def _storage_error(dialect: Dialect, exc: Exception) -> StorageError:
    # StorageFull (a full disk) is told apart for the journal's metrics; it is
    # reported as any other StorageError.
    return dialect.storage_error(
        exc, hint=f"{dialect.check_hint}; the journal keeps everything committed so far")


def _refusal(dialect: Dialect, item: JournalItem | None, exc: Exception) -> RecordUnstorable:
    if isinstance(exc, IdempotencyKeyTaken):
        return exc
    if (isinstance(item, RunRow) and item.trigger_key is not None
            and dialect.is_unique_violation(exc, "trigger_key")):
        duplicate = TriggerAlreadyFired(
            f"a run for {_printable(item.trigger_key)} already exists",
            key=item.trigger_key, hint="a fire or a delivery starts one run at most")
        duplicate.__cause__ = exc
        return duplicate
    if isinstance(item, RunRow):
        what = f"run {item.id} of job {item.job_id}"
    elif isinstance(item, IdempotencyRecord):
        what = f"the idempotency key of run {item.run_id}"
    elif isinstance(item, EventRecord):
        what = f"a {item.type} event of run {item.run_id}"
    else:
        what = "a record"
    error = RecordUnstorable(
        f"the journal cannot store {_printable(what)}: {_describe(exc)}",
        hint="the record was left out; every other run and request is unaffected")
    error.__cause__ = exc
    return error


def _describe(exc: Exception) -> str:
    if isinstance(exc, UnicodeEncodeError):
        bad = exc.object[exc.start:exc.end] if isinstance(exc.object, str) else ""
        text = f"it holds text that is not valid Unicode ({ascii(bad)[1:-1]}: {exc.reason})"
    elif isinstance(exc, OverflowError):
        text = "it holds an integer beyond the 64-bit range of the Core DB"
    else:
        text = f"{type(exc).__name__}: {exc}"
    return _printable(text)


def _printable(text: str) -> str:
    # The fault may quote the record: what is said about it must be storable itself.
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= _REASON_CHARS else text[:_REASON_CHARS - 1] + "…"


def _flush(conn: Db, rows: list[tuple[object, ...]]) -> None:
    if rows:
        conn.executemany(
            "INSERT INTO events(seq, last_seq, run_id, job_id, type, ts, data, lines)"
            " VALUES (?,?,?,?,?,?,?,?)",
            rows,
        )
        rows.clear()


def _insert_run(conn: Db, run: RunRow) -> None:
    conn.execute(
        "INSERT INTO runs(id, job_id, status, created_at, started_at, finished_at, exit_code,"
        " error, profile, args, plan, provenance, owner_pid, owner_start, owner_host, owner_kind,"
        " workspace, executor, runtime, trigger, trigger_key)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (run.id, run.job_id, run.status, run.created_at, run.started_at, run.finished_at,
         run.exit_code, run.error, run.profile, _dumps(run.args),
         None if run.plan is None else _dumps(run.plan),
         None if run.provenance is None else _dumps(run.provenance),
         run.owner_pid, run.owner_start, run.owner_host, run.owner_kind, run.workspace,
         run.executor, run.runtime, None if run.trigger is None else _dumps(run.trigger),
         run.trigger_key),
    )
    if isinstance(run, ClusterRun):
        # A claimed run's lease runs from this commit, on the database's clock (the
        # replicas' clocks differ); a run queued for any replica has none yet.
        lease = "NULL" if run.replica_id is None else f"{dialect_of(conn).clock()} + ?"
        conn.execute(
            f"UPDATE runs SET queue = ?, runs_on = ?, concurrency = ?, job_source = ?,"
            f" replica_id = ?, lease_epoch = ?, lease_until = {lease} WHERE id = ?",
            (None if run.queue is None else _dumps(run.queue),
             _dumps(run.runs_on) if run.runs_on else None, run.concurrency, run.job_source,
             run.replica_id, 0 if run.replica_id is None else 1,
             *(() if run.replica_id is None else (run.lease,)), run.id))


_TERMINAL_SQL = ",".join(f"'{s}'" for s in sorted(TERMINAL_STATUSES))


def _apply_status(conn: Db, event: EventRecord) -> None:
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
