"""The Core DB port: what the engine, the HTTP layer and the CLI may ask of storage.

In the style of hypercorn's ``typing.py``: the rest of flwd depends on these
Protocols only; :class:`~flwd.store.SqliteStore` is the embedded implementation
(a PostgreSQL one implements the same Protocols and passes the same contract
suite, ``tests/store/test_contract.py``).

**Threading contract.** Every :class:`Store` method blocks: call it from a worker
thread inside trio (``trio.to_thread.run_sync``) or from plain synchronous code
(the CLI's reading verbs). Methods are safe to call from several threads at once:
each call opens (or borrows) its own connection. Writes that belong to runs go
through the one :class:`JournalSink` a process opens with :meth:`Store.open_journal`,
which commits batches in order in its own dedicated thread; :meth:`Store.append`
is for the rare write of a process that has no journal (a refused CLI request,
recovery before the journal starts).

**Reading never writes.** A reader does not create the database, nor migrate an
older schema: a store with no database yet reads as empty.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import outcome

from flwd.events import EventRecord, IdempotencyRecord, RunRow

from ._cancels import CancelRequest
from ._filter import EVERY_RUN, RunFilter
from ._hook_deliveries import DeliveryClaim
from ._journal import GroupResult, JournalItem
from ._kv import KvItem
from ._leases import Lease
from ._notify import DeliveryRecord
from ._retention import GcResult, RetentionPolicy
from ._schedules import ScheduleState
from ._sessions import SessionRecord
from ._tokens import TokenRecord

#: Called *in the journal's thread* with the outcome of one submitted batch.
Done = Callable[[outcome.Outcome[list[GroupResult]]], None]


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """A registered source as the Core DB keeps it: its spec and state as JSON objects.

    ``flwd.sources`` turns these into :class:`~flwd.sources.Source` (the store does
    not know what a source is, only how to keep one).
    """

    name: str
    type: str
    spec: dict[str, Any]
    state: dict[str, Any]
    created_at: float
    updated_at: float


class JournalSink(Protocol):
    """The Core DB writer of one process: commits batches in order, one transaction each.

    A batch is a list of groups; a group whose records cannot be stored is answered
    with its :class:`~flwd.errors.RecordUnstorable` and the other groups commit.
    """

    def start(self) -> None:
        """Open the connection (and migrate); blocking, short.

        Raises:
            StorageError: the database cannot be opened or migrated.
        """

    def submit(self, groups: Sequence[Sequence[JournalItem]], done: Done) -> None:
        """Queue a batch; never blocks. ``done`` runs in the writer's thread."""

    def release_reserve(self) -> bool:
        """Free the space kept for finishing runs on a full disk; True if some was freed."""

    def close(self) -> None:
        """Commit what was queued, then stop the thread (blocking)."""


class Store(Protocol):
    """Runs, their events, idempotency records, retention and sources in one Core DB."""

    #: Where the data is, for messages ("no runs yet (no Core DB at …)").
    location: str
    #: Several servers may share this Core DB (PostgreSQL): what must happen once in
    #: the cluster (the scheduler's fires) is done by a lease's holder only. False on
    #: SQLite, whose data dir one server owns.
    clustered: bool

    def exists(self) -> bool:
        """There is a database (a fresh data dir has none until the first write)."""

    def migrate(self) -> None:
        """Create the database, or bring an older schema up to date: a write.

        Readers leave this to the next writer that can (start-up recovery).

        Raises:
            StorageError: the database cannot be opened for writing or migrated.
        """

    def open_journal(self) -> JournalSink:
        """The process's writer (not started)."""

    def append(self, items: Sequence[JournalItem]) -> list[EventRecord]:
        """Commit ``items`` at once, in one transaction; the events as numbered.

        For a process without a journal (see the module docstring). An
        :class:`~flwd.events.IdempotencyRecord` takes its key only if no record of
        it younger than ``IDEMPOTENCY_TTL`` exists — in any process on the same
        database — and is never overwritten while it is; else nothing is committed.

        Raises:
            IdempotencyKeyTaken: the key is held (by the run it names).
            RecordUnstorable: a record cannot be stored; StorageError.
        """

    # -- runs ----------------------------------------------------------------
    def get_run(self, run_ref: str, *, workspace: str | None = None) -> RunRow:
        """The run with this id (or unique id prefix). Raises RunNotFound."""

    def list_runs(self, query: RunFilter = EVERY_RUN, *, limit: int = 50, offset: int = 0
                  ) -> list[RunRow]:
        """The runs ``query`` selects, newest first (``created_at``, then id).

        Selected in the database (``query``'s argument filters included), never by
        loading every run.

        Raises:
            StorageError: the database cannot answer (an argument filter on a SQLite
                without its JSON functions).
        """

    def count_runs(self, query: RunFilter = EVERY_RUN) -> int:
        """How many runs ``query`` selects (as :meth:`list_runs`)."""

    def run_statuses(self, run_ids: Collection[str]) -> dict[str, str]:
        """The status of each of these runs that exists."""

    def unfinished_runs(self) -> list[RunRow]:
        """Runs still ``queued`` or ``running``."""

    def terminal_among(self, run_ids: Collection[str]) -> list[str]:
        """Those of ``run_ids`` that are finished in this Core DB."""

    # -- events --------------------------------------------------------------
    def read_events(self, run_id: str | None, *, after: int = 0, limit: int = 500,
                    max_bytes: int | None = None) -> list[EventRecord]:
        """One page of journal rows with events after the cursor (see SqliteStore)."""

    def event_bounds(self, run_id: str) -> tuple[int, int]:
        """(first seq, last seq) retained for the run; (0, 0) when it has none."""

    def last_seq(self) -> int:
        """The highest event seq in the journal (0: none)."""

    def finish_seq(self, run_id: str) -> int | None:
        """The seq of the run's ``run.finish``, where its stream ends (events after it,
        a notification's deliveries, are not part of the stream); None without one."""

    # -- idempotency ---------------------------------------------------------
    def find_idempotent(self, key: str) -> IdempotencyRecord | None:
        """The record stored for a scoped idempotency key, however old: how long a key
        is kept is the caller's rule (it is removed with its run)."""

    # -- retention -----------------------------------------------------------
    def collect(self, policy: RetentionPolicy, *, runs_dir: Path | None,
                now: float | None = None, dry_run: bool = False) -> GcResult:
        """Evict what ``policy`` no longer keeps, oldest runs first."""

    def storage_usage(self) -> dict[str, Any]:
        """What ``GET /health/storage`` reports of the database.

        The reference's keys: ``driver`` (the backend, ``sqlite``), ``bytes_used``
        (the bytes its pages take, free pages included), ``max_bytes`` (the size
        it can reach: for SQLite, what its file system still has room for, within
        SQLite's page limit — no flwd setting caps it), ``journal_bytes`` (the
        event journal's payload: data and output lines), ``schema_version`` (the
        version the database is at, read from it). flwd's own: ``db_bytes`` and
        ``wal_bytes`` (files), ``used_bytes`` (pages in use, what ``--max-db-mb``
        is checked against), ``runs``, ``events``, ``oldest_run_created_at``,
        ``evicted_runs``, ``evicted_through_seq``.

        Raises:
            StorageError: the database cannot be read (a store without one has no
                usage to report).
        """

    def evicted_through(self) -> int:
        """The highest event seq ever evicted (0: none)."""

    def was_evicted(self, run_id: str) -> bool: ...

    # -- sources -------------------------------------------------------------
    def load_sources(self) -> list[SourceRecord]:
        """Every registered source, by name."""

    def save_source(self, record: SourceRecord) -> None:
        """Insert or update (by name)."""

    def update_source(self, record: SourceRecord) -> bool:
        """Update the source of ``record``'s name if it is still registered; False (nothing
        written) if it is not — removed meanwhile, say through another server."""

    def delete_source(self, name: str) -> bool:
        """True when there was one."""

    # -- Rule-Y key/value ----------------------------------------------------
    # Keys and values are bytes; keys sort in byte order. Which namespaces may be
    # used, and their quotas, is the caller's (flwd.kv): the store keeps any.
    def kv_get(self, namespace: str, key: bytes) -> KvItem | None:
        """The entry under ``key``, if any."""

    def kv_put(self, namespace: str, key: bytes, value: bytes, *, quota: int,
               now: float | None = None) -> None:
        """Store ``value`` under ``key`` (replacing any), stamped ``now`` (default: the clock).

        The namespace may hold at most ``quota`` bytes (the sum of its keys' and
        values' lengths); replacing a value counts the difference, and a put that
        does not grow the namespace is always taken.

        Raises:
            KvKeyRequired / KvKeyTooLong / KvValueTooLong: an empty key, a key over
                256 bytes, a value over 8 KiB.
            KvQuotaExceeded: the namespace would hold more than ``quota`` bytes.
            StorageError: the database cannot be written.
        """

    def kv_delete(self, namespace: str, key: bytes) -> bool:
        """Remove ``key``; True when it was there.

        Raises:
            StorageError: the database cannot be written.
        """

    def kv_scan(self, namespace: str, *, prefix: bytes = b"", after: bytes | None = None,
                limit: int = 256) -> tuple[list[KvItem], bool]:
        """Up to ``limit`` entries whose key starts with ``prefix`` and sorts after ``after``
        (exclusive), in key order; and whether more follow."""

    def kv_usage(self, namespace: str) -> int:
        """The bytes the namespace holds (what its quota is checked against)."""

    # -- browser sessions ----------------------------------------------------
    # Keyed by a digest of the session id (the HTTP layer makes it); a record names
    # its token by id. Whether a session is still good (its expiry, its token) is
    # the caller's judgement: the store only keeps the rows, bounded.
    def session_create(self, record: SessionRecord, *, keep: int,
                       now: float | None = None) -> list[str]:
        """Store ``record``, after deleting every session expired at ``now``; a token
        keeps at most ``keep`` sessions, its oldest evicted. Returns the digests of
        the sessions evicted for that cap.

        Raises:
            StorageError: the database cannot be written.
        """

    def session_get(self, id_hash: str) -> SessionRecord | None:
        """The session with this digest, expired or not; None without one (or a database)."""

    def session_delete(self, id_hash: str) -> bool:
        """Remove the session; True when it was there.

        Raises:
            StorageError: the database cannot be written.
        """

    # -- cancel requests across processes (flwd/store/_cancels.py) -----------
    def request_cancel(self, run_id: str, *, reason: str, by: str, force: bool,
                       now: float | None = None) -> None:
        """Record a cancel of ``run_id`` for the process that runs it (another replica of
        the Core DB), and notify it (PostgreSQL); see :meth:`take_cancels`.

        Raises:
            StorageError.
        """

    def take_cancels(self, run_ids: Collection[str]) -> list[CancelRequest]:
        """The cancel requests recorded for any of ``run_ids``, each handed out once
        (taken requests are deleted in the same transaction).

        Raises:
            StorageError.
        """

    # -- schedule state ------------------------------------------------------
    # One row per (workspace, schedule name); see flwd/store/_schedules.py.
    def schedule_states(self, workspace: str) -> dict[str, ScheduleState]:
        """Every schedule's state in the workspace, by name (none without a database)."""

    def schedule_record(self, workspace: str, name: str, *, watermark: float,
                        fire_at: float | None = None, outcome: str | None = None,
                        run_id: str | None = None, now: float | None = None) -> None:
        """Move the schedule's watermark to ``watermark`` (never back) and, with
        ``outcome``, record its last fire (``fire_at``, ``run_id``); ``paused`` is kept.

        Raises:
            StorageError: the database cannot be written.
        """

    def schedule_pause(self, workspace: str, name: str, paused: bool, *,
                       now: float | None = None) -> bool:
        """Pause (or resume) the schedule; True when that changed its state. Nothing
        else of its state changes.

        Raises:
            StorageError: the database cannot be written.
        """

    def schedule_fired(self, workspace: str, name: str, after: float, until: float
                       ) -> float | None:
        """The newest scheduled fire time of ``name`` in ``(after, until]`` that has a
        run (its ``schedule:<name>@<time>`` trigger key), or None."""

    # -- leases (cluster-wide singletons) ------------------------------------
    def lease_take(self, name: str, holder: str, ttl: float) -> int | None:
        """Take or renew lease ``name`` for ``ttl`` seconds of the database's clock: its
        epoch if ``holder`` holds it now, None while another holder's has not lapsed.
        One statement, outside the write lock (a renewal never waits for the journal)."""

    def lease_release(self, name: str, holder: str) -> bool:
        """Let ``holder``'s lease ``name`` lapse now; True if it held it."""

    def lease_read(self, name: str) -> Lease | None:
        """Lease ``name`` as held now (lapsed or not); None if never taken."""

    # -- API tokens (a clustered Core DB's; SQLite's server reads its tokens file) --
    def tokens_load(self) -> list[TokenRecord]:
        """Every API token kept in the Core DB, by name."""

    def token_add(self, record: TokenRecord) -> bool:
        """Add a token; False (nothing written) if its name or digest is taken."""

    def token_remove(self, name: str) -> bool:
        """Remove the token called ``name``; True if there was one."""

    # -- notifications -------------------------------------------------------
    # A delivery's row is written with its ``notify.delivery`` event, by the journal.
    def notify_deliveries(self, run_id: str, *, limit: int = 100) -> list[DeliveryRecord]:
        """The run's notification delivery attempts, oldest first, at most ``limit``."""

    def recent_outcomes(self, job_id: str, *, workspace: str | None, until: float,
                        limit: int) -> list[str]:
        """The statuses of the job's last ``limit`` runs of ``workspace`` finished at or
        before ``until``, newest first: ``completed``, ``failed`` or ``interrupted``
        (canceled runs break no streak and make none, so they are left out)."""

    # -- inbound webhooks: delivery ids seen (replay protection) ------------------
    # Only requests that passed their hook's authentication claim a delivery; the
    # rows are bounded by each hook's window and ``keep`` (see _hook_deliveries).
    def hook_delivery_claim(self, hook: str, delivery: str, *, window: float, keep: int,
                            stale: float, now: float | None = None) -> DeliveryClaim:
        """Record ``delivery`` of ``hook`` unless it was seen within ``window`` seconds
        (then the earlier one's run, if any); purge what is older, keep at most ``keep``
        rows per hook. A claim without a run for ``stale`` seconds is taken over.

        Raises:
            StorageError: the database cannot be written.
        """

    def hook_delivery_settle(self, hook: str, delivery: str, run_id: str) -> None:
        """The claimed delivery started ``run_id``.

        Raises:
            StorageError: the database cannot be written.
        """

    def hook_delivery_release(self, hook: str, delivery: str) -> None:
        """Forget a claimed delivery that started no run (it may be delivered again).

        Raises:
            StorageError: the database cannot be written.
        """

    def hook_delivery_count(self, hook: str | None = None) -> int:
        """Deliveries remembered, of ``hook`` or of every hook (0 without a database)."""
