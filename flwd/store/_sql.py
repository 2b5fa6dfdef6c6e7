"""What the SQL stores share: every :class:`~flwd.store.Store` method, written once.

:class:`~flwd.store.SqliteStore` and :class:`~flwd.store.postgres.PostgresStore` differ
in how they reach their database — a short-lived connection per call and a file
that appears with the first write, or a pool of connections to a server whose schema
appears with the first write — and in the SQL their dialect says differently
(``_dialect``); the rest is here. Each method checks :meth:`SqlStore.exists` before
it reads: **reading never writes**, so a store without a database (or without its
schema) reads as empty and creates nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from flwd.errors import RunNotFound
from flwd.events import TERMINAL_STATUSES, EventRecord, IdempotencyRecord, RunRow

from . import (
    _cancels,
    _hook_deliveries,
    _kv,
    _leases,
    _notify,
    _read,
    _retention,
    _schedules,
    _sessions,
    _tokens,
)
from ._cancels import CancelRequest
from ._dialect import Db, Dialect
from ._filter import EVERY_RUN, RunFilter
from ._hook_deliveries import DeliveryClaim
from ._journal import JournalItem, append_batch
from ._kv import KvItem
from ._leases import Lease
from ._notify import DeliveryRecord
from ._retention import GcResult, RetentionPolicy
from ._schedules import ScheduleState
from ._sessions import SessionRecord
from ._tokens import TokenRecord
from ._typing import SourceRecord


class SqlStore:
    """The shared methods; a subclass says how to reach its database."""

    dialect: Dialect
    #: Where the data is, for messages (never a password).
    location: str
    #: See ``Store.clustered``.
    clustered = False

    def exists(self) -> bool:
        raise NotImplementedError

    def _writer(self) -> AbstractContextManager[Db]:
        """A connection that may write, the schema migrated (creating the database)."""
        raise NotImplementedError

    def _reader(self) -> AbstractContextManager[Db]:
        """A connection that reads (only called once :meth:`exists`)."""
        raise NotImplementedError

    def connection(self) -> AbstractContextManager[Db]:
        """A connection that may write, the schema migrated, for a caller's own
        transactions (a cluster replica's: flwd/store/_cluster.py)."""
        return self._writer()

    def _query_guard(self, query: RunFilter) -> AbstractContextManager[None]:
        """Around a run query: the dialect's own errors made clear (none by default)."""
        return _nothing()

    def _sources_changed(self) -> None:
        """A source was saved or deleted (SQLite touches a marker for caches)."""

    def append(self, items: Sequence[JournalItem]) -> list[EventRecord]:
        with self._writer() as conn:
            return append_batch(conn, items)

    # -- runs ----------------------------------------------------------------
    def get_run(self, run_ref: str, *, workspace: str | None = None) -> RunRow:
        if not self.exists():
            raise RunNotFound(f"no run '{run_ref}'", hint="'flwd :runs' lists runs")
        with self._reader() as conn:
            return _read.get_run(conn, run_ref, workspace=workspace)

    def list_runs(self, query: RunFilter = EVERY_RUN, *, limit: int = 50, offset: int = 0
                  ) -> list[RunRow]:
        if not self.exists():
            return []
        with self._reader() as conn, self._query_guard(query):
            return _read.list_runs(conn, query, limit=limit, offset=offset)

    def count_runs(self, query: RunFilter = EVERY_RUN) -> int:
        if not self.exists():
            return 0
        with self._reader() as conn, self._query_guard(query):
            return _read.count_runs(conn, query)

    def run_statuses(self, run_ids: Collection[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        ids = list(run_ids)
        if not ids or not self.exists():
            return found
        with self._reader() as conn:
            for start in range(0, len(ids), 500):
                batch = ids[start:start + 500]
                marks = ",".join("?" * len(batch))
                found.update(conn.execute(
                    f"SELECT id, status FROM runs WHERE id IN ({marks})", batch).fetchall())
        return found

    def unfinished_runs(self) -> list[RunRow]:
        if not self.exists():
            return []
        with self._reader() as conn:
            return _read.unfinished_runs(conn)

    def terminal_among(self, run_ids: Collection[str]) -> list[str]:
        ids = list(run_ids)
        if not ids or not self.exists():
            return []
        finished: list[str] = []
        statuses = sorted(TERMINAL_STATUSES)
        with self._reader() as conn:
            for start in range(0, len(ids), 500):
                batch = ids[start:start + 500]
                marks = ",".join("?" * len(batch))
                finished += [row[0] for row in conn.execute(
                    f"SELECT id FROM runs WHERE id IN ({marks}) AND status IN "
                    f"({','.join('?' * len(statuses))})", [*batch, *statuses])]
        return finished

    # -- events --------------------------------------------------------------
    def read_events(self, run_id: str | None, *, after: int = 0, limit: int = 500,
                    max_bytes: int | None = None) -> list[EventRecord]:
        if not self.exists():
            return []
        with self._reader() as conn:
            return _read.read_events(conn, run_id, after=after, limit=limit,
                                     max_bytes=max_bytes)

    def event_bounds(self, run_id: str) -> tuple[int, int]:
        if not self.exists():
            return (0, 0)
        with self._reader() as conn:
            return _read.event_bounds(conn, run_id)

    def last_seq(self) -> int:
        if not self.exists():
            return 0
        with self._reader() as conn:
            row = conn.execute("SELECT COALESCE(MAX(last_seq), 0) FROM events").fetchone()
            return int(row[0])

    # -- idempotency ---------------------------------------------------------
    def find_idempotent(self, key: str) -> IdempotencyRecord | None:
        if not self.exists():
            return None
        with self._reader() as conn:
            return _read.find_idempotent(conn, key)

    # -- retention -----------------------------------------------------------
    def collect(self, policy: RetentionPolicy, *, runs_dir: Path | None,
                now: float | None = None, dry_run: bool = False) -> GcResult:
        with self._writer() as conn:
            return _retention.collect(conn, policy, runs_dir=runs_dir, now=now, dry_run=dry_run)

    def evicted_through(self) -> int:
        if not self.exists():
            return 0
        with self._reader() as conn:
            return _retention.evicted_through(conn)

    def was_evicted(self, run_id: str) -> bool:
        if not self.exists():
            return False
        with self._reader() as conn:
            return _retention.was_evicted(conn, run_id)

    # -- sources -------------------------------------------------------------
    def load_sources(self) -> list[SourceRecord]:
        if not self.exists():
            return []
        with self._writer() as conn:
            rows = conn.execute("SELECT name, type, spec, state, created_at, updated_at "
                                f"FROM sources ORDER BY {self.dialect.fold('name')}").fetchall()
        return [SourceRecord(name, kind, json.loads(spec), json.loads(state), created, updated)
                for name, kind, spec, state, created, updated in rows]

    def save_source(self, record: SourceRecord) -> None:
        with self._writer() as conn:
            conn.execute(
                "INSERT INTO sources(name, type, spec, state, created_at, updated_at) "
                f"VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT({self.dialect.unique_nocase('name')}) "
                "DO UPDATE SET type = excluded.type, "
                "spec = excluded.spec, state = excluded.state, updated_at = excluded.updated_at",
                (record.name, record.type, json.dumps(record.spec), json.dumps(record.state),
                 record.created_at, record.updated_at))
        self._sources_changed()

    def update_source(self, record: SourceRecord) -> bool:
        if not self.exists():
            return False
        with self._writer() as conn:
            updated = conn.execute(
                "UPDATE sources SET type = ?, spec = ?, state = ?, updated_at = ? "
                f"WHERE {self.dialect.fold('name')} = {self.dialect.fold('?')}",
                (record.type, json.dumps(record.spec), json.dumps(record.state),
                 record.updated_at, record.name)).rowcount > 0
        if updated:
            self._sources_changed()
        return bool(updated)

    def delete_source(self, name: str) -> bool:
        with self._writer() as conn:
            deleted = conn.execute(
                f"DELETE FROM sources WHERE {self.dialect.fold('name')} = {self.dialect.fold('?')}",
                (name,)).rowcount > 0
        self._sources_changed()
        return bool(deleted)

    # -- Rule-Y key/value ----------------------------------------------------
    def kv_get(self, namespace: str, key: bytes) -> KvItem | None:
        if not self.exists():
            return None
        with self._reader() as conn:
            return _kv.get(conn, namespace, key)

    def kv_put(self, namespace: str, key: bytes, value: bytes, *, quota: int,
               now: float | None = None) -> None:
        _kv.check_key(key)  # a refused put creates no database
        _kv.check_value(value)
        with self._writer() as conn:
            _kv.put(conn, namespace, key, value, quota=quota, now=now)

    def kv_delete(self, namespace: str, key: bytes) -> bool:
        if not self.exists():
            return False  # nothing to delete, and a delete must not create the database
        with self._writer() as conn:
            return _kv.delete(conn, namespace, key)

    def kv_scan(self, namespace: str, *, prefix: bytes = b"", after: bytes | None = None,
                limit: int = 256) -> tuple[list[KvItem], bool]:
        if not self.exists():
            return [], False
        with self._reader() as conn:
            return _kv.scan(conn, namespace, prefix=prefix, after=after, limit=limit)

    def kv_usage(self, namespace: str) -> int:
        if not self.exists():
            return 0
        with self._reader() as conn:
            return _kv.usage(conn, namespace)

    # -- browser sessions ----------------------------------------------------
    def session_create(self, record: SessionRecord, *, keep: int,
                       now: float | None = None) -> list[str]:
        with self._writer() as conn:
            return _sessions.create(conn, record, keep=keep,
                                    now=time.time() if now is None else now)

    def session_get(self, id_hash: str) -> SessionRecord | None:
        if not self.exists():
            return None
        with self._reader() as conn:
            return _sessions.get(conn, id_hash)

    def session_delete(self, id_hash: str) -> bool:
        if not self.exists():
            return False  # nothing to delete, and a delete must not create the database
        with self._writer() as conn:
            return _sessions.delete(conn, id_hash)

    # -- cancel requests across processes -----------------------------------
    def request_cancel(self, run_id: str, *, reason: str, by: str, force: bool,
                       now: float | None = None) -> None:
        with self._writer() as conn:
            _cancels.request(conn, run_id, reason=reason, by=by, force=force,
                             now=time.time() if now is None else now)

    def take_cancels(self, run_ids: Collection[str]) -> list[CancelRequest]:
        if not run_ids or not self.exists():
            return []
        with self._reader() as conn:
            if not _cancels.pending(conn, run_ids):
                return []  # the common case: a read, no write lock
        with self._writer() as conn:
            return _cancels.take(conn, run_ids)

    # -- schedule state ------------------------------------------------------
    def schedule_states(self, workspace: str) -> dict[str, ScheduleState]:
        if not self.exists():
            return {}
        with self._reader() as conn:
            return _schedules.states(conn, workspace)

    def schedule_record(self, workspace: str, name: str, *, watermark: float,
                        fire_at: float | None = None, outcome: str | None = None,
                        run_id: str | None = None, now: float | None = None) -> None:
        with self._writer() as conn:
            _schedules.record(conn, workspace, name, watermark=watermark, fire_at=fire_at,
                              outcome=outcome, run_id=run_id,
                              now=time.time() if now is None else now)

    def schedule_pause(self, workspace: str, name: str, paused: bool, *,
                       now: float | None = None) -> bool:
        with self._writer() as conn:
            return _schedules.set_paused(conn, workspace, name, paused,
                                         time.time() if now is None else now)

    def schedule_fired(self, workspace: str, name: str, after: float, until: float
                       ) -> float | None:
        if not self.exists():
            return None
        with self._reader() as conn:
            return _schedules.fired_through(conn, workspace, name, after, until)

    # -- leases --------------------------------------------------------------
    def lease_take(self, name: str, holder: str, ttl: float) -> int | None:
        with self._writer() as conn:
            return _leases.take(conn, name, holder, ttl)

    def lease_release(self, name: str, holder: str) -> bool:
        if not self.exists():
            return False
        with self._writer() as conn:
            return _leases.release(conn, name, holder)

    def lease_read(self, name: str) -> Lease | None:
        if not self.exists():
            return None
        with self._reader() as conn:
            return _leases.read(conn, name)

    # -- API tokens ----------------------------------------------------------
    def tokens_load(self) -> list[TokenRecord]:
        if not self.exists():
            return []
        with self._reader() as conn:
            return _tokens.load(conn)

    def token_add(self, record: TokenRecord) -> bool:
        with self._writer() as conn:
            return _tokens.add(conn, record)

    def token_remove(self, name: str) -> bool:
        if not self.exists():
            return False
        with self._writer() as conn:
            return _tokens.remove(conn, name)

    # -- notifications -------------------------------------------------------
    def notify_deliveries(self, run_id: str, *, limit: int = 100) -> list[DeliveryRecord]:
        if not self.exists():
            return []
        with self._reader() as conn:
            return _notify.list_deliveries(conn, run_id, limit=limit)

    def recent_outcomes(self, job_id: str, *, workspace: str | None, until: float,
                        limit: int) -> list[str]:
        if not self.exists():
            return []
        with self._reader() as conn:
            return _notify.recent_outcomes(conn, job_id, workspace=workspace, until=until,
                                           limit=limit)

    def finish_seq(self, run_id: str) -> int | None:
        if not self.exists():
            return None
        with self._reader() as conn:
            return _notify.finish_seq(conn, run_id)

    # -- inbound webhooks: delivery ids seen -----------------------------------
    def hook_delivery_claim(self, hook: str, delivery: str, *, window: float, keep: int,
                            stale: float, now: float | None = None) -> DeliveryClaim:
        with self._writer() as conn:
            return _hook_deliveries.claim(conn, hook, delivery,
                                          now=time.time() if now is None else now,
                                          window=window, keep=keep, stale=stale)

    def hook_delivery_settle(self, hook: str, delivery: str, run_id: str) -> None:
        with self._writer() as conn:
            _hook_deliveries.settle(conn, hook, delivery, run_id)

    def hook_delivery_release(self, hook: str, delivery: str) -> None:
        with self._writer() as conn:
            _hook_deliveries.release(conn, hook, delivery)

    def hook_delivery_count(self, hook: str | None = None) -> int:
        if not self.exists():
            return 0
        with self._reader() as conn:
            return _hook_deliveries.count(conn, hook)



@contextmanager
def _nothing() -> Iterator[None]:
    yield
