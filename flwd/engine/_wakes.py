"""Who follows which run of another process, and whom a notification wakes.

A reader of a run executing in another process (a replica of the cluster) has no hub
to receive from: it reads the journal, and when it has read everything it waits. It
waits on its :class:`Follower`, which the LISTEN connection's actor
(:mod:`flwd.engine._listener`) wakes through :meth:`Wakes.moved` when the journal says
the run moved past what the reader has — or, when notifications may have been lost (the
connection dropped, came back), through :meth:`Wakes.wake_all`. A wait is always bounded
by :meth:`Wakes.poll_interval`: a lost notification delays a reader, never stalls it.

Bookkeeping only (no I/O, no clock): what the listener heard goes in, followers' events
are set. A wake is never lost between a reader's last read and its wait: the reader
:meth:`~Follower.arm` s before it reads, and a wake from then on is kept for its wait.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import trio

#: Seconds a follower waits for a notification before it reads the journal anyway
#: while the listener is connected: what a lost notification costs at most.
FALLBACK_POLL = 1.5


class Follower:
    """One reader of one run of another process."""

    __slots__ = ("_event", "_parked", "cursor", "run_id", "waiting")

    def __init__(self, run_id: str | None, parked: Callable[[], None] = lambda: None) -> None:
        self.run_id = run_id
        #: The last seq the reader has; a notification at or below it wakes nobody.
        self.cursor = 0
        #: The reader has read everything and waits.
        self.waiting = False
        self._event = trio.Event()
        self._parked = parked

    def arm(self, cursor: int) -> None:
        """About to read the journal after ``cursor``: a wake from now on is kept."""
        self.cursor = cursor
        if self._event.is_set():
            self._event = trio.Event()

    def wake(self) -> None:
        self._event.set()

    @property
    def woken(self) -> bool:
        return self._event.is_set()

    async def wait(self) -> None:
        """Until woken (since :meth:`arm`); the caller bounds the wait
        (:meth:`Wakes.poll_interval`).

        Cancellation: nothing is left behind.
        """
        self.waiting = True
        self._parked()
        try:
            await self._event.wait()
        finally:
            self.waiting = False


class Wakes:
    """The followers of this process, by run, and whether notifications are coming."""

    def __init__(self, fallback: float = FALLBACK_POLL) -> None:
        self.fallback = fallback
        #: By run id; None: readers of every run's events (the global stream).
        self._by_run: dict[str | None, set[Follower]] = {}
        #: The LISTEN connection is up: followers may wait :attr:`fallback` seconds.
        self.connected = False
        #: Notifications heard, followers woken (for tests and metrics).
        self.heard = 0
        self.woken = 0
        self._changed = trio.Event()
        self._parked = trio.Event()

    @contextmanager
    def follow(self, run_id: str | None) -> Iterator[Follower]:
        follower = Follower(run_id, self._park)
        self._by_run.setdefault(run_id, set()).add(follower)
        try:
            yield follower
        finally:
            followers = self._by_run.get(run_id)
            if followers is not None:
                followers.discard(follower)
                if not followers:
                    del self._by_run[run_id]

    def following(self, run_id: str | None) -> int:
        return len(self._by_run.get(run_id, ()))

    def _park(self) -> None:
        self._parked.set()
        self._parked = trio.Event()

    async def until_waiting(self, run_id: str | None) -> None:
        """Until a follower of ``run_id`` has read everything and waits (for tests: what
        is committed from then on reaches it only by a wake-up or its fallback).

        Cancellation: nothing is left behind.
        """
        while not any(f.waiting for f in self._by_run.get(run_id, ())):
            await self._parked.wait()

    def moved(self, run_id: str, seq: int) -> None:
        """The journal committed events of ``run_id`` through ``seq``: its readers and
        those of every run's events are woken."""
        self.heard += 1
        for key in (run_id, None):
            for follower in self._by_run.get(key, ()):
                if seq > follower.cursor and not follower.woken:
                    follower.wake()
                    self.woken += 1

    def wake_all(self) -> None:
        """Notifications may have been lost: every follower reads the journal again."""
        for followers in self._by_run.values():
            for follower in followers:
                follower.wake()

    def set_connected(self, connected: bool) -> None:
        """The LISTEN connection came up (every follower reads again: what was committed
        while it was down was announced to nobody) or went down (followers go back to
        their own pace after their current wait, at most :attr:`fallback` seconds)."""
        self.connected = connected
        if connected:
            self.wake_all()
        self._changed.set()
        self._changed = trio.Event()

    async def until_connected(self, connected: bool = True) -> None:
        """Until the LISTEN connection is up (or, ``connected=False``, down).

        Cancellation: nothing is left behind.
        """
        while self.connected != connected:
            await self._changed.wait()

    def poll_interval(self, default: float) -> float:
        """How long a follower waits between reads: ``default`` (a process's own polling)
        while notifications are not coming, :attr:`fallback` while they are."""
        return max(default, self.fallback) if self.connected else default
