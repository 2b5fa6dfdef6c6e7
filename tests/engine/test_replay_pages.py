"""Replay memory is bounded per reader: bounded journal reads, bounded batches, bounded writes.

A journal row can hold tens of thousands of lines (or a few 1 MiB ones); a
replay must never hand its consumer — which frames a batch at a time, several
times its size for SSE — more than a batch, nor read more than a page ahead.
Real SQLite files; the engine's stream and the HTTP layer's write cutter.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
import trio.testing

from flwd.engine._hub import record_cost
from flwd.engine._stream import (
    BATCH_BYTES,
    BATCH_EVENTS,
    REPLAY_READS,
    replay_limiter,
    stream_events,
)
from flwd.events import RUN_FINISH, RUN_START, STEP_LOG, EventRecord, RunRow
from flwd.http._sse import frames, writes
from flwd.store import SqliteStore, append_batch, connect, db_path, open_reader, read_events

T0 = 1_700_000_000.0


def record(type_: str, lines: list[bytes] | None = None, **data: object) -> EventRecord:
    if lines is None:
        return EventRecord(run_id="run-a", job_id="demo", type=type_, ts=T0, data=dict(data))
    return EventRecord(run_id="run-a", job_id="demo", type=type_, ts=T0,
                       data={"step": "100_a.sh", "channel": "stdout"},
                       lines=b"\n".join(lines), n=len(lines))


#: Rows no pipe read produces, and worse than any: one row of 100,000 lines, one of
#: 70,000 empty lines, one of three 200 KiB lines.
SHORT = [b"%d" % i for i in range(100_000)]
EMPTY = [b""] * 70_000
LONG = [bytes([65 + i]) * (200 * 1024) for i in range(3)]


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    path = db_path(tmp_path / "data")
    conn = connect(path)
    try:
        append_batch(conn, [RunRow(id="run-a", job_id="demo", status="running", created_at=T0)])
        append_batch(conn, [record(RUN_START), record(STEP_LOG, SHORT), record(STEP_LOG, EMPTY),
                            record(STEP_LOG, LONG),
                            record(RUN_FINISH, status="completed", exit_code=0)])
    finally:
        conn.close()
    return path


def expected_lines() -> Iterator[bytes]:
    yield from SHORT
    yield from EMPTY
    yield from LONG


async def replay(path: Path, after: int = 0) -> list[list[EventRecord]]:
    return [batch async for batch in stream_events(SqliteStore(path), "run-a", after=after,
                                                    follow=False)]


def assert_bounded(batch: list[EventRecord]) -> None:
    events = sum(r.n for r in batch)
    size = sum(len(r.lines) for r in batch if r.lines is not None)
    assert events <= BATCH_EVENTS, f"a batch of {events} events"
    # One line longer than a batch travels alone (lines are cut at 1 MiB upstream).
    assert size <= BATCH_BYTES or events == 1, f"a batch of {size} bytes of lines"


async def test_huge_rows_replay_in_bounded_batches_each_event_once(journal: Path) -> None:
    batches = await replay(journal)
    for batch in batches:
        assert_bounded(batch)
    records = [r for batch in batches for r in batch]
    seqs = [e["seq"] for r in records for e in r.iter_events()]
    assert seqs == list(range(1, len(seqs) + 1))  # in order, no gap, no duplicate
    assert [line for r in records for line in r.line_list()] == list(expected_lines())
    assert records[0].type == RUN_START and records[-1].type == RUN_FINISH
    assert len(batches) > (len(SHORT) + len(EMPTY)) // BATCH_EVENTS


async def test_a_resumed_replay_starts_inside_a_huge_row_bounded(journal: Path) -> None:
    after = 1 + 70_000  # in the middle of the 100,000-line row
    batches = await replay(journal, after=after)
    for batch in batches:
        assert_bounded(batch)
    seqs = [e["seq"] for batch in batches for r in batch for e in r.iter_events()]
    assert seqs[0] == after + 1 and seqs == list(range(after + 1, after + 1 + len(seqs)))
    lines = [line for batch in batches for r in batch for line in r.line_list()]
    assert lines == list(expected_lines())[after - 1:]


def test_a_journal_read_stops_at_its_byte_budget(tmp_path: Path) -> None:
    path = db_path(tmp_path / "data")
    conn = connect(path)
    try:
        append_batch(conn, [RunRow(id="run-a", job_id="demo", status="running", created_at=T0)])
        append_batch(conn, [record(STEP_LOG, [b"x" * 40_000]) for _ in range(10)])
    finally:
        conn.close()
    with open_reader(path) as reader:
        assert [r.seq for r in read_events(reader, "run-a", max_bytes=64 * 1024)] == [1, 2]
        assert [r.seq for r in read_events(reader, "run-a", max_bytes=1)] == [1]  # at least one
        assert [r.seq for r in read_events(reader, None, after=8, max_bytes=1)] == [9]
        assert len(read_events(reader, "run-a")) == 10  # no budget: the row limit only


async def test_journal_reads_wait_for_the_process_wide_limiter(journal: Path) -> None:
    limiter = replay_limiter()
    assert limiter.total_tokens == REPLAY_READS
    holders = [object() for _ in range(REPLAY_READS)]
    for holder in holders:
        limiter.acquire_on_behalf_of_nowait(holder)
    got: list[list[list[EventRecord]]] = []

    async def reader() -> None:
        got.append(await replay(journal))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        await trio.testing.wait_all_tasks_blocked()
        # Every slot is taken: the replay waits for one instead of reading.
        assert not got and limiter.statistics().tasks_waiting == 1
        limiter.release_on_behalf_of(holders.pop())
    assert got and got[0][-1][-1].type == RUN_FINISH
    for holder in holders:
        limiter.release_on_behalf_of(holder)


def test_writes_join_small_pieces_and_cut_large_ones() -> None:
    pieces = [b"a" * 10, b"b" * 20, b"c" * 250, b"d" * 5, b"e" * 99, b"f" * 100]
    out = list(writes(pieces, limit=100))
    assert b"".join(out) == b"".join(pieces)
    assert all(0 < len(piece) <= 100 for piece in out)
    assert out[0] == b"a" * 10 + b"b" * 20  # joined: one write, not two
    assert len(out) == 7


def test_a_records_cost_covers_its_cached_sse_frames() -> None:
    # The hub's backlog budget counts what a record holds once its frames are
    # cached on it: many one-byte lines cost far more than their bytes.
    for lines in ([b"x"] * 1000, [b"line %d" % i for i in range(500)], [b"y" * 5000]):
        chunk = record(STEP_LOG, lines)
        chunk.seq = 123_456_789
        assert record_cost(chunk) >= len(frames(chunk)) + len(chunk.lines or b"")
    assert record_cost(record(RUN_START)) >= len(frames(record(RUN_START)))
