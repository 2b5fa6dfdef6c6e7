"""``SqliteStore``: the embedded Core DB (one SQLite file in WAL mode).

Every method opens a short-lived connection of its own (readers read-only, so
they never create nor migrate the file): SQLite connections are thread-affine,
and callers come from trio's worker threads and from the CLI alike. The
journal's writer keeps one connection in one dedicated thread
(:class:`~flwd.store.JournalWriter`).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flwd.errors import RunNotFound, StorageError
from flwd.events import TERMINAL_STATUSES, EventRecord, IdempotencyRecord, RunRow

from . import _hook_deliveries, _kv, _notify, _read, _retention, _schedules, _sessions
from ._db import connect
from ._filter import EVERY_RUN, RunFilter
from ._hook_deliveries import DeliveryClaim
from ._journal import JournalItem, append_batch
from ._kv import KvItem
from ._notify import DeliveryRecord
from ._read import open_reader
from ._retention import GcResult, RetentionPolicy
from ._schedules import ScheduleState
from ._sessions import SessionRecord
from ._typing import SourceRecord, Store
from ._writer import JournalWriter

#: Rewritten whenever a source is saved or deleted, so that caches built from the
#: sources (shell completion's job index) notice with one ``stat``.
SOURCES_MARKER = "sources/.changed"


def sources_marker(data_dir: Path) -> Path:
    """The file a change of the registered sources touches (see :data:`SOURCES_MARKER`)."""
    return data_dir / SOURCES_MARKER


class SqliteStore:
    """The :class:`~flwd.store.Store` of one SQLite file (``<data dir>/flwd.db``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.location = str(path)

    def __repr__(self) -> str:
        return f"SqliteStore({str(self.path)!r})"

    def exists(self) -> bool:
        return self.path.exists()

    def migrate(self) -> None:
        connect(self.path).close()  # a writable connection migrates as it opens

    def open_journal(self) -> JournalWriter:
        return JournalWriter(self.path)

    def append(self, items: Sequence[JournalItem]) -> list[EventRecord]:
        conn = connect(self.path)
        try:
            return append_batch(conn, items)
        finally:
            conn.close()

    # -- runs ----------------------------------------------------------------
    def get_run(self, run_ref: str, *, workspace: str | None = None) -> RunRow:
        if not self.exists():
            raise RunNotFound(f"no run '{run_ref}'", hint="'flwd :runs' lists runs")
        with open_reader(self.path) as conn:
            return _read.get_run(conn, run_ref, workspace=workspace)

    def list_runs(self, query: RunFilter = EVERY_RUN, *, limit: int = 50, offset: int = 0
                  ) -> list[RunRow]:
        if not self.exists():
            return []
        with open_reader(self.path) as conn, _json_functions(query):
            return _read.list_runs(conn, query, limit=limit, offset=offset)

    def count_runs(self, query: RunFilter = EVERY_RUN) -> int:
        if not self.exists():
            return 0
        with open_reader(self.path) as conn, _json_functions(query):
            return _read.count_runs(conn, query)

    def run_statuses(self, run_ids: Collection[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        ids = list(run_ids)
        if not ids or not self.exists():
            return found
        with open_reader(self.path) as conn:
            for start in range(0, len(ids), 500):
                batch = ids[start:start + 500]
                marks = ",".join("?" * len(batch))
                found.update(conn.execute(
                    f"SELECT id, status FROM runs WHERE id IN ({marks})", batch).fetchall())
        return found

    def unfinished_runs(self) -> list[RunRow]:
        if not self.exists():
            return []
        with open_reader(self.path) as conn:
            return _read.unfinished_runs(conn)

    def terminal_among(self, run_ids: Collection[str]) -> list[str]:
        ids = list(run_ids)
        if not ids or not self.exists():
            return []
        finished: list[str] = []
        statuses = sorted(TERMINAL_STATUSES)
        with open_reader(self.path) as conn:
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
        with open_reader(self.path) as conn:
            return _read.read_events(conn, run_id, after=after, limit=limit,
                                     max_bytes=max_bytes)

    def event_bounds(self, run_id: str) -> tuple[int, int]:
        if not self.exists():
            return (0, 0)
        with open_reader(self.path) as conn:
            return _read.event_bounds(conn, run_id)

    def last_seq(self) -> int:
        if not self.exists():
            return 0
        with open_reader(self.path) as conn:
            row = conn.execute("SELECT COALESCE(MAX(last_seq), 0) FROM events").fetchone()
            return int(row[0])

    # -- idempotency ---------------------------------------------------------
    def find_idempotent(self, key: str) -> IdempotencyRecord | None:
        if not self.exists():
            return None
        with open_reader(self.path) as conn:
            return _read.find_idempotent(conn, key)

    # -- retention -----------------------------------------------------------
    def collect(self, policy: RetentionPolicy, *, runs_dir: Path | None,
                now: float | None = None, dry_run: bool = False) -> GcResult:
        conn = connect(self.path)
        try:
            return _retention.collect(conn, policy, runs_dir=runs_dir, now=now, dry_run=dry_run)
        finally:
            conn.close()

    def storage_usage(self) -> dict[str, Any]:
        try:
            with open_reader(self.path) as conn:
                return _retention.storage_usage(conn, self.path)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot read the Core DB {self.path}: {exc}",
                               hint="check the file and the data dir (--data-dir)") from exc

    def evicted_through(self) -> int:
        if not self.exists():
            return 0
        with open_reader(self.path) as conn:
            return _retention.evicted_through(conn)

    def was_evicted(self, run_id: str) -> bool:
        if not self.exists():
            return False
        with open_reader(self.path) as conn:
            return _retention.was_evicted(conn, run_id)

    # -- sources -------------------------------------------------------------
    def load_sources(self) -> list[SourceRecord]:
        if not self.exists():
            return []
        conn = connect(self.path)
        try:
            rows = conn.execute("SELECT name, type, spec, state, created_at, updated_at "
                                "FROM sources ORDER BY name").fetchall()
        finally:
            conn.close()
        return [SourceRecord(name, kind, json.loads(spec), json.loads(state), created, updated)
                for name, kind, spec, state, created, updated in rows]

    def save_source(self, record: SourceRecord) -> None:
        conn = connect(self.path)
        try:
            conn.execute(
                "INSERT INTO sources(name, type, spec, state, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET type = excluded.type, "
                "spec = excluded.spec, state = excluded.state, updated_at = excluded.updated_at",
                (record.name, record.type, json.dumps(record.spec), json.dumps(record.state),
                 record.created_at, record.updated_at))
        finally:
            conn.close()
        self._touch_marker()

    def delete_source(self, name: str) -> bool:
        conn = connect(self.path)
        try:
            deleted = conn.execute("DELETE FROM sources WHERE name = ?", (name,)).rowcount > 0
        finally:
            conn.close()
        self._touch_marker()
        return bool(deleted)

    # -- Rule-Y key/value ----------------------------------------------------
    def kv_get(self, namespace: str, key: bytes) -> KvItem | None:
        if not self.exists():
            return None
        with open_reader(self.path) as conn:
            return _kv.get(conn, namespace, key)

    def kv_put(self, namespace: str, key: bytes, value: bytes, *, quota: int,
               now: float | None = None) -> None:
        _kv.check_key(key)  # a refused put creates no database
        _kv.check_value(value)
        conn = connect(self.path)
        try:
            _kv.put(conn, namespace, key, value, quota=quota, now=now)
        finally:
            conn.close()

    def kv_delete(self, namespace: str, key: bytes) -> bool:
        if not self.exists():
            return False  # nothing to delete, and a delete must not create the database
        conn = connect(self.path)
        try:
            return _kv.delete(conn, namespace, key)
        finally:
            conn.close()

    def kv_scan(self, namespace: str, *, prefix: bytes = b"", after: bytes | None = None,
                limit: int = 256) -> tuple[list[KvItem], bool]:
        if not self.exists():
            return [], False
        with open_reader(self.path) as conn:
            return _kv.scan(conn, namespace, prefix=prefix, after=after, limit=limit)

    def kv_usage(self, namespace: str) -> int:
        if not self.exists():
            return 0
        with open_reader(self.path) as conn:
            return _kv.usage(conn, namespace)

    # -- browser sessions ----------------------------------------------------
    def session_create(self, record: SessionRecord, *, keep: int,
                       now: float | None = None) -> list[str]:
        conn = connect(self.path)
        try:
            return _sessions.create(conn, record, keep=keep,
                                    now=time.time() if now is None else now)
        finally:
            conn.close()

    def session_get(self, id_hash: str) -> SessionRecord | None:
        if not self.exists():
            return None
        with open_reader(self.path) as conn:
            return _sessions.get(conn, id_hash)

    def session_delete(self, id_hash: str) -> bool:
        if not self.exists():
            return False  # nothing to delete, and a delete must not create the database
        conn = connect(self.path)
        try:
            return _sessions.delete(conn, id_hash)
        finally:
            conn.close()

    # -- schedule state ------------------------------------------------------
    def schedule_states(self, workspace: str) -> dict[str, ScheduleState]:
        if not self.exists():
            return {}
        with open_reader(self.path) as conn:
            return _schedules.states(conn, workspace)

    def schedule_record(self, workspace: str, name: str, *, watermark: float,
                        fire_at: float | None = None, outcome: str | None = None,
                        run_id: str | None = None, now: float | None = None) -> None:
        conn = connect(self.path)
        try:
            _schedules.record(conn, workspace, name, watermark=watermark, fire_at=fire_at,
                              outcome=outcome, run_id=run_id,
                              now=time.time() if now is None else now)
        finally:
            conn.close()

    def schedule_pause(self, workspace: str, name: str, paused: bool, *,
                       now: float | None = None) -> bool:
        conn = connect(self.path)
        try:
            return _schedules.set_paused(conn, workspace, name, paused,
                                         time.time() if now is None else now)
        finally:
            conn.close()

    def schedule_fired(self, workspace: str, name: str, after: float, until: float
                       ) -> float | None:
        if not self.exists():
            return None
        with open_reader(self.path) as conn:
            return _schedules.fired_through(conn, workspace, name, after, until)

    # -- notifications -------------------------------------------------------
    def notify_deliveries(self, run_id: str, *, limit: int = 100) -> list[DeliveryRecord]:
        if not self.exists():
            return []
        with open_reader(self.path) as conn:
            return _notify.list_deliveries(conn, run_id, limit=limit)

    def recent_outcomes(self, job_id: str, *, workspace: str | None, until: float,
                        limit: int) -> list[str]:
        if not self.exists():
            return []
        with open_reader(self.path) as conn:
            return _notify.recent_outcomes(conn, job_id, workspace=workspace, until=until,
                                           limit=limit)

    def finish_seq(self, run_id: str) -> int | None:
        if not self.exists():
            return None
        with open_reader(self.path) as conn:
            return _notify.finish_seq(conn, run_id)

    # -- inbound webhooks: delivery ids seen -----------------------------------
    def hook_delivery_claim(self, hook: str, delivery: str, *, window: float, keep: int,
                            stale: float, now: float | None = None) -> DeliveryClaim:
        conn = connect(self.path)
        try:
            return _hook_deliveries.claim(conn, hook, delivery,
                                          now=time.time() if now is None else now,
                                          window=window, keep=keep, stale=stale)
        finally:
            conn.close()

    def hook_delivery_settle(self, hook: str, delivery: str, run_id: str) -> None:
        conn = connect(self.path)
        try:
            _hook_deliveries.settle(conn, hook, delivery, run_id)
        finally:
            conn.close()

    def hook_delivery_release(self, hook: str, delivery: str) -> None:
        conn = connect(self.path)
        try:
            _hook_deliveries.release(conn, hook, delivery)
        finally:
            conn.close()

    def hook_delivery_count(self, hook: str | None = None) -> int:
        if not self.exists():
            return 0
        with open_reader(self.path) as conn:
            return _hook_deliveries.count(conn, hook)

    def _touch_marker(self) -> None:
        marker = sources_marker(self.path.parent)
        try:
            marker.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            counter = marker.read_text() if marker.exists() else "0"
            marker.write_text(str(int(counter or "0") + 1) if counter.isdigit() else "1")
        except OSError:
            pass  # only a cache hint


@contextmanager
def _json_functions(query: RunFilter) -> Iterator[None]:
    """Argument filters need SQLite's JSON functions (built in since 3.38, an option
    before): without them, a StorageError that says so rather than a raw error."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        if query.args and "json_each" in str(exc):
            raise StorageError(f"argument filters need SQLite's JSON functions, which this "
                               f"SQLite {sqlite3.sqlite_version} lacks ({exc})",
                               hint="use a Python whose SQLite is 3.38 or newer, or "
                                    "filter without arg.") from exc
        raise


if TYPE_CHECKING:  # mypy checks that SqliteStore implements the port
    _: Store = SqliteStore(Path())
