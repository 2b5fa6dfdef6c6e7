"""Reading a run's events as one ordered stream: journal replay, then live, no gap, no duplicate.

Memory is bounded per reader, however large the run: the journal is read a
little at a time (:data:`REPLAY_READ_BYTES`), only when the consumer asks for
more — a consumer that writes to a slow socket reads the journal as slowly —
and every batch handed out is bounded in events and bytes (:data:`BATCH_EVENTS`,
:data:`BATCH_BYTES`), so what a consumer frames at once is bounded too. Reads
in flight across the whole process are limited by one
:class:`trio.CapacityLimiter` (:data:`REPLAY_READS`), and the number of
readers by the HTTP layer's stream cap (``flwd :serve --max-streams``, see
:mod:`flwd.http._streams`). docs/reliability.md states the resulting bound.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator
from contextlib import nullcontext

import trio

from flwd.events import RUN_FINISH, EventRecord
from flwd.observe import UNOBSERVED, Observer
from flwd.store import Store

from ._hub import EventHub
from ._wakes import Wakes

#: Payload bytes (output lines and event data) one journal read fetches; it
#: stops at the row that reaches it, and a row holds at most MAX_LINE plus one
#: pipe read (~1.06 MiB), so a read is bounded even when one row holds
#: thousands of lines.
REPLAY_READ_BYTES = 64 * 1024
#: Rows one journal read fetches at most (lifecycle rows carry no lines).
REPLAY_READ_ROWS = 500
#: One batch holds at most this many events and this many bytes of output
#: lines (at least one event). A consumer frames a batch at a time: 512 SSE
#: frames are ~100 KB.
BATCH_EVENTS = 512
BATCH_BYTES = 64 * 1024
#: Journal reads in flight in this process: each holds a worker thread, a
#: Core DB connection and the rows it fetched. Reads are short (one
#: REPLAY_READ_BYTES page), so waiting readers are not starved by slow ones.
REPLAY_READS = 4

_read_limiter: trio.lowlevel.RunVar[trio.CapacityLimiter] = trio.lowlevel.RunVar(
    "flwd_replay_reads")


def replay_limiter() -> trio.CapacityLimiter:
    """The process's limiter of journal reads (one per ``trio.run``)."""
    try:
        return _read_limiter.get()
    except LookupError:
        limiter = trio.CapacityLimiter(REPLAY_READS)
        _read_limiter.set(limiter)
        return limiter


def trim(record: EventRecord, after: int) -> EventRecord:
    """``record`` without the lines whose seq is <= ``after``."""
    if record.seq > after or record.lines is None:
        return record
    skip = after - record.seq + 1
    lines = record.line_list()[skip:]
    return EventRecord(run_id=record.run_id, job_id=record.job_id, type=record.type,
                       ts=record.ts, data=record.data, lines=b"\n".join(lines), n=len(lines),
                       seq=after + 1)


def split(record: EventRecord, after: int = 0) -> list[EventRecord]:
    """The events of ``record`` with seq > ``after``, as records of at most
    :data:`BATCH_EVENTS` lines and :data:`BATCH_BYTES` bytes (at least one line).

    For records only this reader holds (journal rows): a shared record is
    kept whole, so that its SSE frames are encoded once for every subscriber.
    """
    if record.last_seq <= after:
        return []
    if record.lines is None or (record.seq > after and record.n <= BATCH_EVENTS
                                and len(record.lines) <= BATCH_BYTES):
        return [record]
    lines = record.line_list()
    start = max(0, after - record.seq + 1)
    pieces = []
    while start < len(lines):
        end = min(start + BATCH_EVENTS, len(lines))
        if sum(map(len, lines[start:end])) + (end - start) > BATCH_BYTES:
            # Long lines: as many as fit (at least one).
            end, size = start + 1, len(lines[start]) + 1
            while end < len(lines) and size + len(lines[end]) + 1 <= BATCH_BYTES:
                size += len(lines[end]) + 1
                end += 1
        pieces.append(EventRecord(run_id=record.run_id, job_id=record.job_id,
                                  type=record.type, ts=record.ts, data=record.data,
                                  lines=b"\n".join(lines[start:end]), n=end - start,
                                  seq=record.seq + start))
        start = end
    return pieces


def batches(records: Iterable[EventRecord], after: int) -> Iterator[list[EventRecord]]:
    """``records`` with seq > ``after`` (the straddling one trimmed), grouped into
    batches of at most :data:`BATCH_EVENTS` events and :data:`BATCH_BYTES` bytes
    of lines; a single larger record (a shared live one) is a batch of its own."""
    batch: list[EventRecord] = []
    events = size = 0
    for record in records:
        if record.last_seq <= after:
            continue
        record = trim(record, after)
        length = len(record.lines) if record.lines is not None else 0
        if batch and (events + record.n > BATCH_EVENTS or size + length > BATCH_BYTES):
            yield batch
            batch, events, size = [], 0, 0
        batch.append(record)
        events += record.n
        size += length
    if batch:
        yield batch


def _drain(records: list[EventRecord]) -> Iterator[EventRecord]:
    """``records`` in order, each let go by the list as it is handed out.

    A reader's consumer caches the SSE frames of what it sends on the record
    (several times the record's size): the rest of the read must not keep the
    records already sent, and their frames, alive. For private lists only.
    """
    records.reverse()
    while records:
        yield records.pop()


def _read(store: Store, run_id: str | None, after: int,
          observer: Observer) -> list[EventRecord]:
    # In the worker thread: the rows and their split both count against the limiter.
    # A store without a database reads as empty (reading never creates it).
    started = time.perf_counter()
    try:
        rows = store.read_events(run_id, after=after, limit=REPLAY_READ_ROWS,
                                 max_bytes=REPLAY_READ_BYTES)
    except Exception:
        observer.persistence("journal_read", "error", time.perf_counter() - started)
        raise
    observer.persistence("journal_read", "ok", time.perf_counter() - started)
    return [piece for row in rows for piece in split(row, after)]


async def read_journal(store: Store, run_id: str | None, after: int,
                       observer: Observer = UNOBSERVED) -> list[EventRecord]:
    """The next bounded read of the journal after ``after``, split into bounded records;
    ``observer`` is told how long the page took to read (``journal_read``).

    Cancellation: the wait for a slot of :func:`replay_limiter` is cancellable;
    a read under way is not interrupted (it is one short page) and is discarded.
    """
    return await trio.to_thread.run_sync(_read, store, run_id, after, observer,
                                         limiter=replay_limiter())


def _through_finish(batch: list[EventRecord], run_id: str | None
                    ) -> tuple[list[EventRecord], bool]:
    """A run's ``batch`` up to its ``run.finish`` (included), and whether it holds it.

    A run's stream ends there: what the journal keeps of the run after it (the
    deliveries of its notifications) is not part of it, and a reader that waited for
    more after the terminal event would wait forever.
    """
    if run_id is not None:
        for index, record in enumerate(batch):
            if record.type == RUN_FINISH:
                return batch[:index + 1], True
    return batch, False


async def stream_events(store: Store, run_id: str | None, *, after: int = 0,
                        hub: EventHub | None = None, follow: bool = True,
                        poll_interval: float = 0.2,
                        on_idle: Callable[[], None] | None = None,
                        heartbeat: float | None = None,
                        observer: Observer = UNOBSERVED,
                        wakes: Wakes | None = None,
                        ) -> AsyncGenerator[list[EventRecord], None]:
    """Yield batches of events with seq > ``after`` in order, each exactly once.

    With ``hub`` (the run lives in this process) live batches follow the
    replay, and a run the hub tracks is replayed from its in-memory backlog
    (committed records) instead of the journal; a subscriber dropped for lagging transparently replays from the
    journal and re-subscribes. Without a hub (the run belongs to another
    process) the journal is polled every ``poll_interval`` seconds and
    ``on_idle`` is called between polls (e.g. to detect a dead owner).
    With ``heartbeat``, an empty batch is yielded whenever that many seconds
    pass without events (SSE keep-alives; it also surfaces dead peers).
    ``observer`` is told how long each journal read took. With ``wakes`` (a server of
    a cluster's Core DB: :mod:`flwd.engine._wakes`), a run of another process (or, with
    no ``run_id`` and no hub, every run) is read again as soon as the journal announces
    it moved, and polled only as a fallback.
    A per-run stream ends with ``run.finish`` (the run's records after it, its
    notifications' deliveries, are left out); ``follow=False`` ends after the replay.

    Batches are bounded (see the module docstring) and the journal is read
    only when the consumer asks for the next batch: pace the consumer, and
    the replay follows.

    Cancellation: safe at any await; the subscription is released in ``finally``.
    """
    following = (wakes.follow(run_id) if wakes is not None and hub is None and follow
                 else nullcontext(None))
    with following as follower:
        cursor = after
        quiet_since = trio.current_time()
        while True:
            subscription = hub.subscribe(run_id) if hub is not None and follow else None
            # Taken right after subscribing, with no checkpoint in between.
            backlog = (hub.backlog(run_id) if hub is not None and subscription is not None
                       and run_id is not None else None)
            try:
                while True:
                    if backlog is not None:
                        records, backlog = backlog, []  # a copy: ours to drain
                    else:
                        if follower is not None:
                            follower.arm(cursor)  # before reading: no wake is lost
                        records = await read_journal(store, run_id, cursor, observer)
                    if not records:
                        break
                    for batch in batches(_drain(records), cursor):
                        batch, finished = _through_finish(batch, run_id)
                        cursor = batch[-1].last_seq
                        quiet_since = trio.current_time()
                        yield batch
                        if finished:
                            return
                if not follow:
                    return
                if subscription is None:
                    if on_idle is not None:
                        on_idle()
                    if follower is not None and wakes is not None:
                        with trio.move_on_after(wakes.poll_interval(poll_interval)):
                            await follower.wait()
                    else:
                        await trio.sleep(poll_interval)
                    if heartbeat is not None and trio.current_time() - quiet_since >= heartbeat:
                        quiet_since = trio.current_time()
                        yield []
                    continue
                while True:
                    received: list[EventRecord] | None = None
                    # The timeout scope wraps only the receive, never a yield.
                    with trio.move_on_after(heartbeat if heartbeat is not None else math.inf):
                        try:
                            received = await subscription.receive.receive()
                        except trio.EndOfChannel:
                            break
                    if received is None:
                        yield []
                        continue
                    # Shared with every subscriber of the run: iterated, never drained.
                    for batch in batches(received, cursor):
                        batch, finished = _through_finish(batch, run_id)
                        cursor = batch[-1].last_seq
                        yield batch
                        if finished:
                            return
                if not subscription.lagged:
                    return  # the hub closed: shutdown
            finally:
                if subscription is not None and hub is not None:
                    hub.unsubscribe(subscription)
