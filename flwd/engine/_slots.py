"""Concurrency limits: how many runs may execute at once, in all and per job.

:class:`SlotBook` is the sans-IO ledger (who holds a slot, who waits, in
arrival order); :class:`Slots` adds the trio waiting on top. A run holds one
slot from its ``run.start`` to its ``run.finish``; a run that must wait stays
``queued``. Slots are released by ``finally`` blocks and a waiter that leaves
(canceled while queued, or its actor crashed) is withdrawn, so a slot can never
leak. Waiters are granted strictly in arrival order among those whose job is
under its own limit (a job at its limit does not hold up other jobs).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import trio


@dataclass(slots=True)
class _Request:
    run_id: str
    job_id: str
    job_limit: int | None


@dataclass(slots=True)
class SlotBook:
    """Sans-IO: slot holders and the FIFO queue of waiting runs."""

    limit: int | None = None
    holders: dict[str, str] = field(default_factory=dict)  # run id → job id
    queue: list[_Request] = field(default_factory=list)
    _limits: dict[str, int | None] = field(default_factory=dict)

    def _fits(self, job_id: str, job_limit: int | None) -> bool:
        if self.limit is not None and len(self.holders) >= self.limit:
            return False
        if job_limit is not None:
            running = sum(1 for job in self.holders.values() if job == job_id)
            if running >= job_limit:
                return False
        return True

    def request(self, run_id: str, job_id: str, job_limit: int | None) -> bool:
        """Take a slot now (True) or join the queue (False)."""
        # Nobody overtakes an earlier waiter of the same job, nor any waiter
        # when the global limit is the constraint.
        blocked = any(r.job_id == job_id for r in self.queue) or (
            self.limit is not None and bool(self.queue) and len(self.holders) >= self.limit)
        if not blocked and self._fits(job_id, job_limit):
            self.holders[run_id] = job_id
            return True
        self.queue.append(_Request(run_id, job_id, job_limit))
        return False

    def withdraw(self, run_id: str) -> None:
        """A waiter leaves the queue (no-op if it is not waiting)."""
        self.queue = [r for r in self.queue if r.run_id != run_id]

    def release(self, run_id: str) -> list[str]:
        """A holder finished; the waiters granted a slot now, in arrival order."""
        self.holders.pop(run_id, None)
        granted: list[str] = []
        waiting: list[_Request] = []
        for request in self.queue:
            earlier_same_job = any(w.job_id == request.job_id for w in waiting)
            if not earlier_same_job and self._fits(request.job_id, request.job_limit):
                self.holders[request.run_id] = request.job_id
                granted.append(request.run_id)
            else:
                waiting.append(request)
        self.queue = waiting
        return granted

    def position(self, run_id: str) -> int | None:
        """1-based place in the queue, or None when not waiting."""
        for index, request in enumerate(self.queue):
            if request.run_id == run_id:
                return index + 1
        return None


class Slots:
    """The trio side of :class:`SlotBook` (one per engine, used from its run loop)."""

    def __init__(self, limit: int | None = None) -> None:
        self.book = SlotBook(limit)
        self._granted: dict[str, trio.Event] = {}

    def request(self, run_id: str, job_id: str, job_limit: int | None) -> bool:
        """Take a slot now (True), or queue; then :meth:`wait`."""
        if self.book.request(run_id, job_id, job_limit):
            return True
        self._granted[run_id] = trio.Event()
        return False

    async def wait(self, run_id: str) -> None:
        """Wait until the queued run holds a slot.

        Cancellation: the run leaves the queue (or, if it was granted the slot
        in the meantime, gives it back) — nothing leaks.
        """
        event = self._granted.get(run_id)
        if event is None:
            return
        try:
            await event.wait()
        except BaseException:
            self._granted.pop(run_id, None)
            if run_id in self.book.holders:
                self.release(run_id)
            else:
                self.book.withdraw(run_id)
            raise
        self._granted.pop(run_id, None)

    def release(self, run_id: str) -> None:
        for granted in self.book.release(run_id):
            event = self._granted.get(granted)
            if event is not None:
                event.set()

    @contextmanager
    def holding(self, run_id: str) -> Iterator[None]:
        """Release the run's slot however the block ends."""
        try:
            yield
        finally:
            self.release(run_id)
