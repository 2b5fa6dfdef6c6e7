"""What the other replicas of a clustered Core DB commit, heard by a server (LISTEN).

One per replica, an actor under the root (``listener``), in server mode on a clustered
Core DB only. It listens on the journal's channels (:mod:`flwd.store._signals`) — on
PostgreSQL a LISTEN connection; on the SQLite Core DB the workers of ``:serve --workers``
share, a datagram socket on its bus (:mod:`flwd.store._bus`, the same interface) — and

- wakes this process's followers of runs executing elsewhere
  (:class:`~flwd.engine._wakes.Wakes`) when their run moved, instead of their polling
  the journal every 0.2 s;
- takes the cancel requests recorded for runs live *here* (another replica was asked to
  cancel them) and cancels them as a local cancel would.

No thread: the connection is in autocommit and idle, so its socket is readable exactly
when the server sent something — ``trio.lowlevel.wait_readable``, then
``consume_input`` and ``notifies`` (psycopg's sync API; its async one does not run
under trio). Connecting (blocking, bounded by the connect timeout) is done in a worker
thread.

**Lost notifications** never lose events or cancels, they only delay them: when the
connection drops, the actor says so to the followers (they poll at their own pace
meanwhile) and reconnects with a growing backoff; once listening again it wakes every
follower and looks for cancel requests (what was committed while it was away was
announced to nobody). While connected, followers and cancel requests are still polled,
slowly (:data:`~flwd.engine._wakes.FALLBACK_POLL`, :data:`CANCEL_POLL`), so that a
notification lost without the connection dropping delays by that much at most.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Callable, Collection
from functools import partial
from typing import TYPE_CHECKING

import trio

from flwd.errors import StorageError
from flwd.observe import UNOBSERVED, Observer
from flwd.store import (
    CANCELS_CHANNEL,
    EVENTS_CHANNEL,
    QUEUE_CHANNEL,
    CancelRequest,
    Store,
    parse_cancel_payload,
    parse_event_payload,
)

from ._wakes import Wakes

if TYPE_CHECKING:
    from flwd.store.postgres import Listening

_log = logging.getLogger("flwd.engine")

#: What ``pg_stat_activity`` shows of the LISTEN connection.
APPLICATION_NAME = "flwd-listen"
#: Seconds between two looks for cancel requests of this process's live runs while
#: notifications come (the fallback for a lost one).
CANCEL_POLL = 2.0
#: Reconnection backoff: first wait, growth, longest wait (seconds).
BACKOFF_FIRST = 0.1
BACKOFF_GROWTH = 2.0
BACKOFF_MAX = 5.0

#: Cancels a run live in this process with the request's reason, author and force;
#: False when it is not live (any more).
CancelLive = Callable[[CancelRequest], Awaitable[bool]]


class Listener:
    """The actor's state: its connection's health and what it heard (for tests, metrics)."""

    def __init__(self, source: str | Callable[[], Listening], store: Store, wakes: Wakes, *,
                 live_runs: Callable[[], Collection[str]], cancel: CancelLive,
                 cancel_poll: float = CANCEL_POLL, observer: Observer = UNOBSERVED) -> None:
        #: Opens the listening connection (blocking): a PostgreSQL URL's, or a socket on
        #: a SQLite Core DB's bus (``listening_of``).
        self.open: Callable[[], Listening] = (
            partial(_open, source) if isinstance(source, str) else source)
        self.store = store
        self.wakes = wakes
        self.live_runs = live_runs
        self.cancel = cancel
        self.cancel_poll = cancel_poll
        #: Told of the connection's ups and downs, what it heard and the cancels taken.
        self.observer = observer
        #: Told when a run was queued for any replica of the cluster (its claimer looks).
        self.on_queued: Callable[[], None] | None = None
        #: Times the connection was (re)established.
        self.connects = 0
        #: A cancel notification came (or the connection was re-established): look now.
        self._cancels_due = trio.Event()

    async def run(self, *, task_status: trio.TaskStatus[Listener] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """Listen until cancelled, reconnecting when the connection drops.

        Started at once, connected or not: a replica whose Core DB is briefly away
        still serves (its followers poll meanwhile).

        Cancellation: the connection is closed; followers go back to polling.
        """
        task_status.started(self)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._take_cancels)
                await self._listen()
        finally:
            self.wakes.set_connected(False)

    async def _listen(self) -> None:
        backoff = BACKOFF_FIRST
        while True:
            try:
                conn = await _open_abandonable(self.open)
            except StorageError as exc:
                _log.warning("flwd: cannot listen to the Core DB (%s); followers poll; "
                             "again in %.1f s", exc.one_line(), backoff)
                await trio.sleep(backoff)
                backoff = min(backoff * BACKOFF_GROWTH, BACKOFF_MAX)
                continue
            try:
                self.connects += 1
                if self.connects > 1:
                    _log.warning("flwd: listening to the Core DB again; followers catch up")
                backoff = BACKOFF_FIRST
                # After LISTEN: whatever commits from now on is announced, whatever
                # committed before is read by the woken followers.
                self.wakes.set_connected(True)
                self.observer.listening(True)
                self._cancels_due.set()
                await self._receive(conn)
            finally:
                self.wakes.set_connected(False)
                self.observer.listening(False)
                conn.close()
            _log.warning("flwd: lost the LISTEN connection to the Core DB; followers poll "
                         "until it is back")

    async def _receive(self, conn: Listening) -> None:
        """Hand out notifications until the connection breaks (then return)."""
        while True:
            await trio.lowlevel.wait_readable(conn.socket)
            received = conn.received()
            if received is None:
                return
            heard = {"events": 0, "cancels": 0, "queue": 0}
            for channel, payload in received:
                heard[_KINDS.get(channel, "cancels")] += 1
                self._heard(channel, payload)
            for kind, count in heard.items():
                if count:
                    self.observer.heard(kind, count)

    def _heard(self, channel: str, payload: str) -> None:
        if channel == EVENTS_CHANNEL:
            moved = parse_event_payload(payload)
            if moved is not None:
                self.wakes.moved(*moved)
        elif channel == QUEUE_CHANNEL:
            if self.on_queued is not None:
                self.on_queued()
        elif channel == CANCELS_CHANNEL:
            run_id = parse_cancel_payload(payload)
            if run_id is not None and run_id in self.live_runs():
                self._cancels_due.set()

    async def _take_cancels(self) -> None:
        """Cancel this process's live runs that another replica was asked to cancel."""
        while True:
            with trio.move_on_after(self.cancel_poll):
                await self._cancels_due.wait()
            self._cancels_due = trio.Event()
            live = list(self.live_runs())
            if not live:
                continue
            try:
                requests = await trio.to_thread.run_sync(self.store.take_cancels, live)
            except StorageError as exc:
                _log.warning("flwd: cannot read cancel requests (%s)", exc.one_line())
                continue
            if requests:
                self.observer.cancels_taken(len(requests))
            for request in requests:
                if not await self.cancel(request):
                    _log.info("flwd: run %s was no longer live for its cancel",
                              request.run_id)


#: The ``channel`` label of what was heard (flwd.observe.LISTEN_CHANNELS).
_KINDS = {EVENTS_CHANNEL: "events", CANCELS_CHANNEL: "cancels", QUEUE_CHANNEL: "queue"}


def _open(dsn: str) -> Listening:
    """A connection listening on the journal's channels (blocking: a worker thread)."""
    from flwd.store.postgres import Listening

    return Listening(dsn, (EVENTS_CHANNEL, CANCELS_CHANNEL, QUEUE_CHANNEL),
                     application_name=APPLICATION_NAME)


async def _open_abandonable(open_: Callable[[], Listening]) -> Listening:
    """``open_`` in a worker thread that a cancelled caller does not wait for (a server
    unreachable at shutdown would hold it for the connect timeout): a connection made
    after the caller left is closed in the thread.

    Cancellation: the caller leaves at once; the connection, if any, is closed.
    """
    abandoned = threading.Event()

    def connect() -> Listening:
        conn = open_()
        if abandoned.is_set():
            conn.close()
        return conn

    try:
        return await trio.to_thread.run_sync(connect, abandon_on_cancel=True)
    except trio.Cancelled:
        abandoned.set()
        raise


def listening_of(store: Store) -> Callable[[], Listening]:
    """How a server of this clustered Core DB listens: a LISTEN connection to
    PostgreSQL, or a socket on a SQLite Core DB's bus (the workers of one host)."""
    from flwd.store import SqliteStore

    if isinstance(store, SqliteStore):
        from flwd.store import LocalListening, bus_dir

        return partial(LocalListening, bus_dir(store.path))  # type: ignore[return-value]
    dsn: str = store.dsn  # type: ignore[attr-defined]
    return partial(_open, dsn)


