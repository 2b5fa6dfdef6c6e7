"""Reading a run's events as one ordered stream: journal replay, then live, no gap, no duplicate."""

from __future__ import annotations

import math
from collections.abc import AsyncGenerator, Callable
from pathlib import Path

import trio

from flwd import store
from flwd.events import RUN_FINISH, EventRecord

from ._hub import EventHub

#: Rows per journal read; a row can hold thousands of lines.
_REPLAY_ROWS = 500


def trim(record: EventRecord, after: int) -> EventRecord:
    """``record`` without the lines whose seq is <= ``after``."""
    if record.seq > after or record.lines is None:
        return record
    skip = after - record.seq + 1
    lines = record.line_list()[skip:]
    return EventRecord(run_id=record.run_id, job_id=record.job_id, type=record.type,
                       ts=record.ts, data=record.data, lines=b"\n".join(lines), n=len(lines),
                       seq=after + 1)


def _read(db_path: Path, run_id: str | None, after: int) -> list[EventRecord]:
    if not db_path.exists():
        return []
    with store.open_reader(db_path) as conn:
        return store.read_events(conn, run_id, after=after, limit=_REPLAY_ROWS)


def _fresh(records: list[EventRecord], cursor: int) -> list[EventRecord]:
    return [trim(r, cursor) for r in records if r.last_seq > cursor]


async def stream_events(db_path: Path, run_id: str | None, *, after: int = 0,
                        hub: EventHub | None = None, follow: bool = True,
                        poll_interval: float = 0.2,
                        on_idle: Callable[[], None] | None = None,
                        heartbeat: float | None = None,
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
    A per-run stream ends after ``run.finish``; ``follow=False`` ends after the
    replay.

    Cancellation: safe at any await; the subscription is released in ``finally``.
    """
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
                    records, backlog = _fresh(backlog, cursor), []
                else:
                    records = _fresh(
                        await trio.to_thread.run_sync(_read, db_path, run_id, cursor), cursor)
                if not records:
                    break
                cursor = records[-1].last_seq
                quiet_since = trio.current_time()
                yield records
                if run_id is not None and records[-1].type == RUN_FINISH:
                    return
            if not follow:
                return
            if subscription is None:
                if on_idle is not None:
                    on_idle()
                await trio.sleep(poll_interval)
                if heartbeat is not None and trio.current_time() - quiet_since >= heartbeat:
                    quiet_since = trio.current_time()
                    yield []
                continue
            while True:
                batch: list[EventRecord] | None = None
                # The timeout scope wraps only the receive, never a yield.
                with trio.move_on_after(heartbeat if heartbeat is not None else math.inf):
                    try:
                        batch = await subscription.receive.receive()
                    except trio.EndOfChannel:
                        break
                if batch is None:
                    yield []
                    continue
                records = _fresh(batch, cursor)
                if not records:
                    continue
                cursor = records[-1].last_seq
                yield records
                if run_id is not None and records[-1].type == RUN_FINISH:
                    return
            if not subscription.lagged:
                return  # the hub closed: shutdown
        finally:
            if subscription is not None and hub is not None:
                hub.unsubscribe(subscription)
