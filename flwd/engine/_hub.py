"""Fan-out of committed journal batches to subscribers (CLI, SSE, websocket).

The hub never blocks the journal: each subscriber has its own bounded channel
fed with ``send_nowait``; a subscriber that falls behind is *dropped* — its
channel is closed and it is marked lagged — and resumes from the journal on
its own (see :mod:`flwd.engine._stream`). A slow reader therefore never slows a
run, and nothing is lost because every event is committed before it is
published.

The hub also keeps the committed records of each *tracked* (live) run — a
bounded backlog, dropped at ``run.finish`` — so a subscriber that arrives
mid-run replays from memory instead of opening a journal reader in a worker
thread. The backlog is a cache of the journal (committed records only); a run
whose backlog outgrew its bound is replayed from the journal as before.

Records are shared, never copied per subscriber: every subscriber of a run
receives the same list, a backlog replay hands out the same records, and the
SSE frames of a record are encoded once and cached on it — which is why a
record's cost (:func:`record_cost`) counts those frames too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import trio

from flwd.events import RUN_FINISH, EventRecord

#: Batches buffered per subscriber. A batch is one journal commit (often many
#: lines), so 64 batches cover bursts of hundreds of thousands of lines while
#: bounding memory per subscriber; beyond that the subscriber catches up from
#: the journal instead.
SUBSCRIBER_BUFFER = 64
#: Per tracked run: records and bytes (:func:`record_cost`) kept for late subscribers.
BACKLOG_RECORDS = 256
BACKLOG_BYTES = 1024 * 1024
#: Tracked runs at most; the oldest is forgotten first (a run whose
#: ``run.finish`` never reached the journal must not pin memory forever).
BACKLOG_RUNS = 4096
#: Bytes of all backlogs together; the run whose record crosses it loses its backlog.
BACKLOG_TOTAL_BYTES = 16 * 1024 * 1024
#: The fixed part of one line's SSE frame: the ``id:``/``event:``/``data:``
#: lines and the JSON envelope's keys, punctuation and timestamp (143 bytes), rounded up.
_FRAME_OVERHEAD = 160


def record_cost(record: EventRecord) -> int:
    """Bytes a record holds once its SSE frames are cached on it (an upper bound for text).

    A frame repeats the line inside a JSON envelope, so a record of many short
    lines costs many times its raw bytes: counting only the lines would let a
    backlog of one-byte lines grow ~100 times past its budget. Lines full of
    control characters or invalid UTF-8 escape to up to 6 bytes per byte.
    """
    if record.lines is None:
        return 512 + 2 * len(repr(record.data))
    per_line = (_FRAME_OVERHEAD + 2 * (len(record.type) + len(str(record.last_seq)))
                + len(record.run_id) + len(record.job_id)
                + len(str(record.data.get("step"))) + len(str(record.data.get("channel"))))
    return 256 + 2 * len(record.lines) + record.n * per_line


@dataclass(eq=False, slots=True)
class Subscription:
    """One subscriber: receive batches from ``receive``; ``lagged`` says why it ended."""

    run_id: str | None
    receive: trio.MemoryReceiveChannel[list[EventRecord]]
    send: trio.MemorySendChannel[list[EventRecord]]
    lagged: bool = False

    def close(self) -> None:
        self.send.close()
        self.receive.close()


@dataclass(eq=False, slots=True)
class _Backlog:
    records: list[EventRecord] = field(default_factory=list)
    size: int = 0


@dataclass(slots=True)
class EventHub:
    """Per-run and global subscriber sets; publish is synchronous and never blocks."""

    by_run: dict[str, set[Subscription]] = field(default_factory=dict)
    everything: set[Subscription] = field(default_factory=set)
    #: Synchronous observers of every committed batch (metrics); must not raise or block.
    taps: list[Callable[[Sequence[EventRecord]], None]] = field(default_factory=list)
    closed: bool = False
    backlogs: dict[str, _Backlog] = field(default_factory=dict)
    backlog_bytes: int = 0

    def track(self, run_id: str) -> None:
        """Keep ``run_id``'s committed records for late subscribers (call before its first event)."""
        if self.closed:
            return
        self.untrack(run_id)
        self.backlogs[run_id] = _Backlog()
        if len(self.backlogs) > BACKLOG_RUNS:
            self.untrack(next(iter(self.backlogs)))

    def untrack(self, run_id: str) -> None:
        backlog = self.backlogs.pop(run_id, None)
        if backlog is not None:
            self.backlog_bytes -= backlog.size

    def tracking(self, run_id: str) -> bool:
        return run_id in self.backlogs

    def backlog(self, run_id: str) -> list[EventRecord] | None:
        """Every committed record of a tracked run so far, or None (read the journal).

        Synchronous: taken right after :meth:`subscribe` (no checkpoint in
        between), every record is either in the backlog or delivered to the
        subscription, or both (the stream deduplicates by seq).
        """
        backlog = self.backlogs.get(run_id)
        return None if backlog is None else list(backlog.records)

    def has_backlog_after(self, run_id: str, after: int) -> bool:
        """Whether a stream of ``run_id`` from ``after`` starts with backlog records at once."""
        backlog = self.backlogs.get(run_id)
        return backlog is not None and bool(backlog.records) and (
            backlog.records[-1].last_seq > after)

    def subscribe(self, run_id: str | None) -> Subscription:
        """Register a subscriber for one run (or all runs with ``None``).

        Subscribe *before* reading the journal: a batch committed in between is
        then seen twice (deduplicated by seq), never missed.
        """
        send, receive = trio.open_memory_channel[list[EventRecord]](SUBSCRIBER_BUFFER)
        subscription = Subscription(run_id, receive, send)
        if self.closed:
            send.close()
        elif run_id is None:
            self.everything.add(subscription)
        else:
            self.by_run.setdefault(run_id, set()).add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """Forget a subscriber and close both ends (called by the subscriber itself)."""
        subscription.close()
        self._forget(subscription)

    def _forget(self, subscription: Subscription) -> None:
        if subscription.run_id is None:
            self.everything.discard(subscription)
        else:
            subscribers = self.by_run.get(subscription.run_id)
            if subscribers is not None:
                subscribers.discard(subscription)
                if not subscribers:
                    del self.by_run[subscription.run_id]

    def publish(self, batch: Sequence[EventRecord]) -> None:
        if not batch:
            return
        for tap in self.taps:
            tap(batch)
        if self.backlogs:
            self._remember(batch)
        if self.everything:
            self._deliver(self.everything, list(batch))
        if self.by_run:
            per_run: dict[str, list[EventRecord]] = {}
            for record in batch:
                if record.run_id in self.by_run:
                    per_run.setdefault(record.run_id, []).append(record)
            for run_id, records in per_run.items():
                self._deliver(self.by_run[run_id], records)

    def _remember(self, batch: Sequence[EventRecord]) -> None:
        for record in batch:
            backlog = self.backlogs.get(record.run_id)
            if backlog is None:
                continue
            if record.type == RUN_FINISH:
                # The journal has all of it now; late subscribers read it there.
                self.untrack(record.run_id)
                continue
            size = record_cost(record)
            backlog.records.append(record)
            backlog.size += size
            self.backlog_bytes += size
            if (len(backlog.records) > BACKLOG_RECORDS or backlog.size > BACKLOG_BYTES
                    or self.backlog_bytes > BACKLOG_TOTAL_BYTES):
                self.untrack(record.run_id)

    def _deliver(self, subscribers: set[Subscription], records: list[EventRecord]) -> None:
        for subscription in list(subscribers):
            try:
                subscription.send.send_nowait(records)
            except trio.WouldBlock:
                # Close only the send side: the subscriber drains what it has,
                # sees EndOfChannel and catches up from the journal.
                subscription.lagged = True
                subscription.send.close()
                self._forget(subscription)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._forget(subscription)

    def close(self) -> None:
        """End every subscription (shutdown): streams finish instead of being cancelled."""
        self.closed = True
        for subscription in [*self.everything, *(s for subs in self.by_run.values() for s in subs)]:
            subscription.send.close()
        self.everything.clear()
        self.by_run.clear()
        self.backlogs.clear()
        self.backlog_bytes = 0

    def subscriber_count(self) -> int:
        return len(self.everything) + sum(len(s) for s in self.by_run.values())
