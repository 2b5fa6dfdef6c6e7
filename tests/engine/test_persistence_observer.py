"""What the engine tells its observer of the Core DB (issue 14 item 6): each journal batch,
each replay page, and an idempotent request's lookup (hit, miss, expired) and store.

A real engine, journal (SQLite file) and processes; the observer only records.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from flwd.engine import open_engine
from flwd.events import RUN_FINISH, EventRecord, IdempotencyRecord, RunRow
from tests.engine.test_engine import collect, make_plan, settings_for


class Recorder:
    """An :class:`flwd.observe.Observer` that keeps what it is told (from any thread)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.timed: list[tuple[str, str, float]] = []
        self.evictions: list[tuple[str, int, int]] = []

    def persistence(self, operation: str, outcome: str, seconds: float) -> None:
        with self.lock:
            self.timed.append((operation, outcome, seconds))

    def evicted(self, kind: str, count: int, size: int) -> None:
        with self.lock:
            self.evictions.append((kind, count, size))

    def image_pulled(self, outcome: str, seconds: float) -> None:
        raise AssertionError("no image is pulled here")

    def manifest_invalid(self) -> None:
        raise AssertionError("no add-on here")

    def source_added(self, kind: str) -> None:
        raise AssertionError("no source is added here")

    def notification(self, sink_kind: str, outcome: str) -> None:
        raise AssertionError("no job here notifies")

    def hook_request(self, hook: str, outcome: str) -> None:
        raise AssertionError("the engine counts no webhook (the HTTP layer does)")

    def outcomes(self, operation: str) -> list[str]:
        with self.lock:
            return [outcome for name, outcome, _ in self.timed if name == operation]


async def test_idempotency_lookups_stores_batches_and_reads_are_timed(
        workspace: Path, data_dir: Path) -> None:
    settings = settings_for(workspace, data_dir)
    # A key used 25 hours ago (a day is how long one is kept), for a run long finished.
    old = time.time() - 25 * 3600
    store = settings.open_store()
    store.migrate()
    store.append([RunRow(id="run-old", job_id="demo", status="queued", created_at=old),
                  EventRecord(run_id="run-old", job_id="demo", type=RUN_FINISH, ts=old,
                              data={"status": "completed"}),
                  IdempotencyRecord("caller:stale", "hmac-sha256:00", "run-old", old)])
    recorder = Recorder()
    async with open_engine(settings, observer=recorder) as engine:
        plan = make_plan(settings, "demo", name="ann")
        first, replayed = await engine.start_run_once(plan, "caller:k1", "hmac-sha256:aa")
        assert not replayed
        again, replayed = await engine.start_run_once(plan, "caller:k1", "hmac-sha256:aa")
        assert replayed and again.id == first.id
        fresh, replayed = await engine.start_run_once(plan, "caller:stale", "hmac-sha256:bb")
        assert not replayed and fresh.id != "run-old"  # forgotten: a new request
        assert (await collect(engine, first.id))[-1]["type"] == RUN_FINISH
        assert (await collect(engine, fresh.id))[-1]["type"] == RUN_FINISH
        # A finished run of this process is replayed from the journal, page by page.
        reads = len(recorder.outcomes("journal_read"))
        replay = await collect(engine, first.id)
        assert replay[0]["type"] == "run.start" and replay[-1]["type"] == RUN_FINISH
        assert len(recorder.outcomes("journal_read")) > reads
    assert recorder.outcomes("idempotency_lookup") == ["miss", "hit", "expired"]
    assert recorder.outcomes("idempotency_store") == ["ok", "ok"]
    assert set(recorder.outcomes("journal_read")) == {"ok"}
    assert set(recorder.outcomes("journal_append")) == {"ok"}
    assert all(0 <= seconds < 60 for _, _, seconds in recorder.timed)
    assert recorder.evictions == []
