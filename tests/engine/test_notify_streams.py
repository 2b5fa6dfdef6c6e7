"""A run's stream ends at its ``run.finish``, even though the journal keeps records of the run
after it (its notifications' deliveries): replayed from the journal, followed live through
the hub, or exported, no reader waits for more after the terminal event, and none shows
what came after it (issue 16 item 3)."""

from __future__ import annotations

from pathlib import Path

import trio

from flwd.engine import EventHub, stream_events
from flwd.events import NOTIFY_DELIVERY, RUN_FINISH, RUN_START, EventRecord, RunRow
from flwd.store import SqliteStore

DELIVERY = {"sink": "notify[0]", "sink_kind": "webhook", "event": "failure",
            "delivery": "run-1.failure.x", "attempt": 1, "outcome": "delivered"}


def finished_run_with_a_later_delivery(tmp_path: Path) -> SqliteStore:
    store = SqliteStore(tmp_path / "flwd.db")
    store.migrate()
    store.append([RunRow(id="run-1", job_id="j", status="queued", created_at=1.0),
                  EventRecord("run-1", "j", RUN_START, 2.0, {}),
                  EventRecord("run-1", "j", RUN_FINISH, 3.0, {"status": "failed"}),
                  EventRecord("run-1", "j", NOTIFY_DELIVERY, 4.0, DELIVERY)])
    return store


async def collect(stream: object) -> list[str]:
    types: list[str] = []
    with trio.fail_after(30):  # a stream that waits for more after run.finish fails here
        async for batch in stream:  # type: ignore[attr-defined]
            types += [record.type for record in batch]
    return types


async def test_a_replayed_stream_ends_at_run_finish(tmp_path: Path) -> None:
    store = finished_run_with_a_later_delivery(tmp_path)
    # Followed (a run of another process: the journal is polled) and exported.
    assert await collect(stream_events(store, "run-1", poll_interval=0.01)) == [
        RUN_START, RUN_FINISH]
    assert await collect(stream_events(store, "run-1", follow=False)) == [RUN_START, RUN_FINISH]
    assert await collect(stream_events(store, "run-1", after=3, follow=False)) == []
    # The global stream is every event: the delivery is there.
    assert await collect(stream_events(store, None, follow=False)) == [
        RUN_START, RUN_FINISH, NOTIFY_DELIVERY]
    # Where the stream ends (what the SSE route answers 204 after), and the delivery's row.
    assert store.finish_seq("run-1") == 2 and store.event_bounds("run-1") == (1, 3)
    [row] = store.notify_deliveries("run-1")
    assert (row.sink, row.event, row.attempt, row.outcome, row.detail["sink_kind"]) == (
        "notify[0]", "failure", 1, "delivered", "webhook")


async def test_a_live_stream_ends_at_run_finish_when_a_delivery_shares_its_batch(
        tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "flwd.db")
    store.migrate()
    store.append([RunRow(id="run-1", job_id="j", status="queued", created_at=1.0)])
    hub = EventHub()
    hub.track("run-1")
    [start] = store.append([EventRecord("run-1", "j", RUN_START, 2.0, {})])
    hub.publish([start])
    types: list[str] = []
    async with trio.open_nursery() as nursery:
        async def follow() -> None:
            types.extend(await collect(stream_events(store, "run-1", hub=hub)))

        nursery.start_soon(follow)
        await trio.testing.wait_all_tasks_blocked()
        hub.publish(store.append([
            EventRecord("run-1", "j", RUN_FINISH, 3.0, {"status": "failed"}),
            EventRecord("run-1", "j", NOTIFY_DELIVERY, 4.0, DELIVERY)]))
    assert types == [RUN_START, RUN_FINISH]
