"""How the journal actor groups messages into transactions (issue 17 item 3).

A run actor's events come a few scheduler ticks apart (``run.start`` then its
first ``step.start``; ``step.finish`` then ``run.finish``): the journal gives the
running tasks those ticks before committing, so such a burst is one transaction
(one hand-off to the writer thread, one publication) instead of one each. It
never waits on a clock, and what it has taken from its inbox is committed even
if it is cancelled meanwhile.

Real SQLite file and writer thread, real trio; the observer only records.
"""

from __future__ import annotations

from pathlib import Path

import trio
import trio.testing

from flwd.engine import EventHub
from flwd.engine._journal import GATHER_TICKS, Append, JournalRef, run_journal
from flwd.events import RUN_START, STEP_START, EventRecord, RunRow
from flwd.store import JournalWriter, open_reader, read_events

from .test_persistence_observer import Recorder


def event(type_: str, run_id: str = "run-1") -> EventRecord:
    return EventRecord(run_id=run_id, job_id="j", type=type_, ts=2.0, data={})


def row(run_id: str = "run-1") -> RunRow:
    return RunRow(id=run_id, job_id="j", status="queued", created_at=1.0)


async def ticks(count: int) -> None:
    for _ in range(count):
        await trio.lowlevel.checkpoint()


async def test_a_burst_a_few_ticks_apart_is_one_transaction(tmp_path: Path) -> None:
    writer = JournalWriter(tmp_path / "flwd.db")
    writer.start()
    hub = EventHub()
    recorder = Recorder()
    published: list[list[str]] = []
    hub.taps.append(lambda batch: published.append([record.type for record in batch]))
    try:
        async with trio.open_nursery() as nursery:
            journal: JournalRef = await nursery.start(
                lambda task_status: run_journal(writer, hub, observer=recorder,
                                                task_status=task_status))
            await journal.call(lambda reply: Append([row()], reply))
            appends = len(recorder.outcomes("journal_append"))
            # As a run actor sends them: run.start, a tick or two of its own work, the
            # first step.start (from a task it started), then nothing for a while.
            await journal.cast(Append([event(RUN_START)]))
            await ticks(GATHER_TICKS - 1)
            await journal.cast(Append([event(STEP_START)]))
            await journal.call(lambda reply: Append([], reply))
            journal.close()
    finally:
        writer.close()
    assert published == [[RUN_START, STEP_START]]
    assert len(recorder.outcomes("journal_append")) == appends + 1
    with open_reader(tmp_path / "flwd.db") as conn:
        assert [e.type for e in read_events(conn, "run-1")] == [RUN_START, STEP_START]


async def test_an_idle_journal_commits_without_waiting_on_the_clock(
        tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    writer = JournalWriter(tmp_path / "flwd.db")
    writer.start()
    try:
        async with trio.open_nursery() as nursery:
            journal: JournalRef = await nursery.start(
                lambda task_status: run_journal(writer, EventHub(), task_status=task_status))
            before = trio.current_time()
            committed = await journal.call(lambda reply: Append([row(), event(RUN_START)],
                                                                reply))
            # A timer would have let the autojump clock move.
            assert trio.current_time() == before
            journal.close()
    finally:
        writer.close()
    assert [record.type for record in committed] == [RUN_START]


async def test_what_the_journal_took_is_committed_when_it_is_cancelled(tmp_path: Path) -> None:
    writer = JournalWriter(tmp_path / "flwd.db")
    writer.start()
    answered: list[list[EventRecord]] = []
    try:
        async with trio.open_nursery() as callers:
            async with trio.open_nursery() as actor:
                journal: JournalRef = await actor.start(
                    lambda task_status: run_journal(writer, EventHub(), task_status=task_status))

                async def ask() -> None:
                    answered.append(await journal.call(
                        lambda reply: Append([row(), event(RUN_START)], reply)))

                callers.start_soon(ask)
                await ticks(2)  # the journal has taken the message and gathers more
                await journal.cast(Append([event(STEP_START)]))
                actor.cancel_scope.cancel()
    finally:
        writer.close()
    assert [[record.type for record in records] for records in answered] == [[RUN_START]]
    with open_reader(tmp_path / "flwd.db") as conn:
        assert [e.type for e in read_events(conn, "run-1")] == [RUN_START, STEP_START]
