"""The hub's backlog of live runs: committed records kept for late subscribers, bounded."""

from __future__ import annotations

from pathlib import Path

import trio

from flwd.engine import EventHub
from flwd.engine._hub import BACKLOG_BYTES, BACKLOG_RECORDS, BACKLOG_RUNS, BACKLOG_TOTAL_BYTES
from flwd.engine._stream import stream_events
from flwd.events import RUN_FINISH, RUN_START, STEP_LOG, EventRecord
from flwd.store import SqliteStore


def event(run_id: str, seq: int, type_: str = RUN_START, lines: bytes | None = None,
          n: int = 1) -> EventRecord:
    return EventRecord(run_id=run_id, job_id="demo", type=type_, ts=1.0,
                       data={"step": "s", "channel": "stdout"} if lines is not None else {},
                       lines=lines, n=n, seq=seq)


def test_backlog_keeps_committed_records_of_tracked_runs_until_run_finish() -> None:
    hub = EventHub()
    hub.track("run-a")
    hub.publish([event("run-a", 1), event("run-b", 2), event("run-a", 3, STEP_LOG, b"x\ny", 2)])
    assert [r.seq for r in hub.backlog("run-a") or []] == [1, 3]
    assert hub.backlog("run-b") is None  # never tracked: read the journal
    assert hub.has_backlog_after("run-a", 3) and not hub.has_backlog_after("run-a", 4)
    hub.publish([event("run-a", 5, RUN_FINISH)])
    assert hub.backlog("run-a") is None and not hub.tracking("run-a")


def test_backlog_is_dropped_when_it_outgrows_its_bound() -> None:
    hub = EventHub()
    hub.track("run-a")
    hub.publish([event("run-a", seq) for seq in range(1, BACKLOG_RECORDS + 2)])
    assert hub.backlog("run-a") is None  # late subscribers replay from the journal


def test_all_backlogs_together_are_bounded_in_bytes() -> None:
    hub = EventHub()
    chunk = b"x" * (BACKLOG_BYTES // 2)
    runs = BACKLOG_TOTAL_BYTES // len(chunk) + 1
    for index in range(runs):
        hub.track(f"run-{index}")
        hub.publish([event(f"run-{index}", index + 1, STEP_LOG, chunk)])
    assert hub.backlog_bytes <= BACKLOG_TOTAL_BYTES
    assert not hub.tracking(f"run-{runs - 1}")  # the one that crossed the budget
    for index in range(runs - 1):
        hub.publish([event(f"run-{index}", 10_000 + index, RUN_FINISH)])
    assert hub.backlog_bytes == 0 and not hub.backlogs


def test_tracked_runs_are_bounded_oldest_first() -> None:
    hub = EventHub()
    for index in range(BACKLOG_RUNS + 1):
        hub.track(f"run-{index}")
    assert not hub.tracking("run-0") and hub.tracking(f"run-{BACKLOG_RUNS}")


def test_close_forgets_every_backlog() -> None:
    hub = EventHub()
    hub.track("run-a")
    hub.close()
    hub.track("run-b")
    assert not hub.tracking("run-a") and not hub.tracking("run-b")


async def test_a_late_subscriber_replays_the_backlog_then_continues_live(tmp_path: Path) -> None:
    # No Core DB at all: the replay can only come from the backlog.
    hub = EventHub()
    hub.track("run-a")
    hub.publish([event("run-a", 1), event("run-a", 2, STEP_LOG, b"a\nb\nc", 3)])
    seen: list[int] = []

    async def follow() -> None:
        async for batch in stream_events(SqliteStore(tmp_path / "missing.db"), "run-a", after=2,
                                       hub=hub):
            seen.extend(seq for record in batch for seq in range(record.seq, record.last_seq + 1))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(follow)
        await trio.testing.wait_all_tasks_blocked()
        hub.publish([event("run-a", 5, RUN_FINISH)])
    assert seen == [3, 4, 5]  # the trimmed chunk, then live; no gap, no duplicate
