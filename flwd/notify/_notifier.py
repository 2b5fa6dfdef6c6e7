"""The notifier: a child of the root that turns run outcomes into deliveries.

::

    root.start_run ──arm()──┐
    hub (committed batches) ─┴─observe()──▶ [queue] ──▶ notifier ──▶ delivery tasks ──▶ sinks
                                                          │                 │
                                                          └──── journal ◀───┘  notify.delivery

It is told of a run twice without ever being waited for: :meth:`Notifier.arm` when the
root creates the run (with its job's rules, as planned), and :meth:`Notifier.observe`
— a tap of the hub — when the run's ``run.start`` and ``run.finish`` are committed. It
evaluates the rules (:mod:`flwd.notify._rules`, with the job's history from the Core
DB) and starts one task per delivery. Each attempt is journaled as a ``notify.delivery``
event of the run (the journal writes its ``notify_deliveries`` row in the same
transaction) and counted by the observer. Nothing here can change a run: its status is
committed before the notifier hears of it, and no run waits for a delivery.

Bounds (every one of them says what happens beyond it):

- the queue holds :data:`QUEUE` messages; a message that does not fit is dropped (the
  run is not notified; logged and counted as ``dropped``);
- a sink has at most :data:`SINK_PENDING` deliveries pending (in flight or waiting to
  retry): one more is *dropped* — journaled with outcome ``dropped`` and counted — so a
  sink that hangs or fails costs at most that much and never delays the other sinks;
- at most :data:`SENDS` attempts per sink are in flight at once (a sink's own limit: a
  hanging sink never holds the others' turn); each is bounded by its sink's ``timeout``;
  a delivery makes at most its sink's ``attempts``.

Stopping (the root stops it after the runs, before the journal): the queue is closed
and what it holds is handled, pending deliveries get ``drain_timeout`` seconds, and
those still pending are then abandoned — each journaled with outcome ``abandoned``.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol, TypeVar

import trio

from flwd.errors import FlwdError
from flwd.events import NOTIFY_DELIVERY, RUN_FINISH, RUN_START, EventRecord, RunRow, now
from flwd.jobs import RUNNING_LONG, NotifyRule
from flwd.observe import UNOBSERVED, Observer
from flwd.store import Store

from ._attempt import Attempt, bounded
from ._payload import Notification, RunLinks, notification
from ._rules import Armed, arm, delivery_id, finish_event, history_depth, streaks
from ._sinks import Sender
from ._workspace import WorkspaceRules

_log = logging.getLogger("flwd.notify")

#: Messages (a run armed, started, finished) waiting for the notifier. Posting never
#: waits; the notifier only evaluates rules and starts tasks, so a full queue means it
#: is stuck, and the journal must not wait for it.
QUEUE = 1024
#: Deliveries pending per sink (in flight, or waiting to retry); one more is dropped.
SINK_PENDING = 32
#: Attempts in flight at once per sink (sockets, SMTP threads, processes).
SENDS = 4
#: The longest wait between two attempts.
MAX_BACKOFF = 300.0
#: How long stopping waits for pending deliveries (a CLI run: see flwd.engine).
DRAIN_TIMEOUT = 10.0
#: Runs armed and not yet finished, at most (the oldest is forgotten first): a run
#: whose run.finish never reaches the journal must not be remembered forever.
MAX_LIVE = 10_000
#: How long journaling one last record may take while stopping.
_LAST_RECORD = 5.0

#: Journals records (as the root's journal does: committed, then published).
Journal = Callable[[Sequence[EventRecord]], Awaitable[object]]
T = TypeVar("T")


class Offload(Protocol):
    """Runs a blocking call (a Core DB read, a read of flwd.yaml) away from trio's thread."""

    def __call__(self, call: Callable[[], T], /) -> Awaitable[T]: ...


async def in_thread(call: Callable[[], T]) -> T:
    """The notifier's :class:`Offload`: a worker thread.

    Cancellation: the call finishes in its thread; its result is discarded.
    """
    return await trio.to_thread.run_sync(call)
#: Makes the sinks of one incarnation (``open_sinks``; a test's scripted sinks).
SenderFactory = Callable[[], AbstractAsyncContextManager[Sender]]


@dataclass(frozen=True, slots=True)
class _Arm:
    run: RunRow
    rules: tuple[NotifyRule, ...]


@dataclass(frozen=True, slots=True)
class _Started:
    run_id: str
    #: When its run.start was published (trio's clock): running_longer_than counts from it.
    at: float


@dataclass(frozen=True, slots=True)
class _Finished:
    record: EventRecord


_Message = _Arm | _Started | _Finished


@dataclass(slots=True)
class _Live:
    """A run armed with rules, not finished yet."""

    run: RunRow
    armed: list[Armed]
    timer: trio.CancelScope | None = None


@dataclass(slots=True)
class _Incarnation:
    nursery: trio.Nursery
    sender: Sender
    #: Deliveries pending; set when there is none.
    busy: int = 0
    idle: trio.Event = field(default_factory=trio.Event)


class Notifier:
    """Delivers the notifications of this process's runs (see the module docstring).

    Run :meth:`run` as a child of the root supervisor, between the journal and the
    runs, so that it stops after the last run and before the journal. ``journal``
    journals records; ``rules`` are the workspace's (``flwd.yaml``).
    """

    def __init__(self, store: Store, journal: Journal, sinks: SenderFactory, *,
                 rules: WorkspaceRules, links: RunLinks | None = None,
                 observer: Observer = UNOBSERVED, drain_timeout: float = DRAIN_TIMEOUT,
                 rng: random.Random | None = None, offload: Offload = in_thread) -> None:
        self.store = store
        self._journal = journal
        self._sinks = sinks
        self._rules = rules
        self.links = links
        self._observer = observer
        self.drain_timeout = drain_timeout
        self._random = rng or random.Random()
        #: Where blocking reads run (a test on trio's autojump clock runs them inline).
        self._offload = offload
        self._send, self._receive = trio.open_memory_channel[_Message](QUEUE)
        #: Runs armed whose run.finish was not seen yet (what the tap forwards).
        self._watched: dict[str, None] = {}
        self._live: dict[str, _Live] = {}
        #: Per sink (its key): deliveries pending, and the limiter of its attempts.
        self._pending: dict[str, int] = {}
        self._sends: dict[str, trio.CapacityLimiter] = {}
        self._current: _Incarnation | None = None

    # -- told by the root and the hub (synchronous, never waits) -----------------------
    def arm(self, run: RunRow, rules: Sequence[NotifyRule]) -> None:
        """``run`` was created (its job's ``rules`` as planned); call before its first event."""
        self._watched[run.id] = None
        if len(self._watched) > MAX_LIVE:
            self._watched.pop(next(iter(self._watched)))
        self._post(_Arm(run, tuple(rules)))

    def observe(self, batch: Sequence[EventRecord]) -> None:
        """A hub tap: the starts and finishes of armed runs go to the queue."""
        if not self._watched:
            return
        for record in batch:
            if record.run_id not in self._watched:
                continue
            if record.type == RUN_START:
                self._post(_Started(record.run_id, trio.current_time()))
            elif record.type == RUN_FINISH:
                del self._watched[record.run_id]
                self._post(_Finished(record))

    def _post(self, message: _Message) -> None:
        try:
            self._send.send_nowait(message)
        except trio.WouldBlock:
            run_id = message.run.id if isinstance(message, _Arm) else (
                message.run_id if isinstance(message, _Started) else message.record.run_id)
            _log.error("flwd: notifications of run %s dropped: the notifier is %d "
                       "messages behind", run_id, QUEUE)
            self._observer.notification("unknown", "dropped")
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass  # stopping: no run starts or finishes any more

    def close(self) -> None:
        """Stop taking messages; :meth:`run` handles those queued, drains, and returns."""
        self._send.close()

    # -- the actor ---------------------------------------------------------------------
    async def run(self, *, task_status: trio.TaskStatus[Notifier] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """Serve the queue until :meth:`close`, then drain (see the module docstring).

        Cancellation: pending deliveries are abandoned, each journaled as such (shielded,
        at most a few seconds each, all at once); queued messages stay for the next
        incarnation.
        """
        async with self._sinks() as sender, trio.open_nursery() as nursery:
            current = self._current = _Incarnation(nursery, sender)
            current.idle.set()
            task_status.started(self)
            async for message in self._receive:
                try:
                    await self._handle(message, current)
                except (FlwdError, OSError) as exc:
                    # The Core DB could not be read: these notifications are lost, the
                    # notifier is not.
                    _log.error("flwd: notifications not sent: %s", exc)
            with trio.move_on_after(self.drain_timeout):
                await current.idle.wait()
            nursery.cancel_scope.cancel(reason="notifications abandoned at shutdown")

    async def _handle(self, message: _Message, current: _Incarnation) -> None:
        if isinstance(message, _Arm):
            await self._arm(message)
        elif isinstance(message, _Started):
            live = self._live.get(message.run_id)
            if live is not None and any(a.rule.running_longer_than for a in live.armed):
                live.timer = trio.CancelScope()
                current.nursery.start_soon(self._timer, live, live.timer, message.at)
        else:
            await self._finished(message.record)

    async def _arm(self, message: _Arm) -> None:
        run = message.run
        workspace_rules = self._rules.known()
        if workspace_rules is None:
            # flwd.yaml changed (or was never read): read and check it away from trio.
            workspace_rules = await self._offload(self._rules.current)
        armed = arm(run.job_id, message.rules, workspace_rules)
        if not armed:
            self._watched.pop(run.id, None)
            return
        self._live[run.id] = _Live(run, armed)
        if len(self._live) > MAX_LIVE:
            self._forget(next(iter(self._live)))

    def _forget(self, run_id: str) -> _Live | None:
        live = self._live.pop(run_id, None)
        if live is not None and live.timer is not None:
            live.timer.cancel(reason="the run finished")
        return live

    async def _timer(self, live: _Live, scope: trio.CancelScope, started: float) -> None:
        """``running_longer_than``: each rule once, while the run runs (``scope`` is
        cancelled when it finishes).

        Cancellation: the notifications not yet due are not sent.
        """
        with scope:
            for armed in sorted((a for a in live.armed if a.rule.running_longer_than),
                                key=lambda a: a.rule.running_longer_than or 0.0):
                assert armed.rule.running_longer_than is not None
                await trio.sleep_until(started + armed.rule.running_longer_than)
                try:
                    run = await self._offload(partial(self.store.get_run, live.run.id))
                except FlwdError as exc:
                    _log.error("flwd: notifications not sent: %s", exc)
                    return
                await self._deliver_or_drop(armed, self._note(
                    armed, RUNNING_LONG, run, running_seconds=trio.current_time() - started))

    async def _finished(self, record: EventRecord) -> None:
        live = self._forget(record.run_id)
        if live is None:
            return
        status = str(record.data.get("status"))
        depth = history_depth(live.armed) if status in ("failed", "completed") else 0
        outcomes = [status]
        if depth:
            outcomes = await self._offload(partial(
                self.store.recent_outcomes, live.run.job_id, workspace=live.run.workspace,
                until=record.ts, limit=depth))
            if not outcomes or outcomes[0] != status:
                outcomes = [status, *outcomes]  # the run itself, whatever the clock said
        history = streaks(outcomes)
        due = [(armed, event) for armed in live.armed
               if (event := finish_event(armed.rule, status, history)) is not None]
        if not due:
            return
        run = await self._offload(partial(self.store.get_run, record.run_id))
        for armed, event in due:
            failures = (history.current if armed.rule.after_failures and event == "failure"
                        else None)
            await self._deliver_or_drop(armed, self._note(armed, event, run,
                                                          consecutive_failures=failures))

    def _note(self, armed: Armed, event: str, run: RunRow, *,
              consecutive_failures: int | None = None,
              running_seconds: float | None = None) -> Notification:
        return notification(event, run, delivery_id(run.id, event, armed.key), self.links,
                            consecutive_failures=consecutive_failures,
                            running_seconds=running_seconds)

    async def _deliver_or_drop(self, armed: Armed, note: Notification) -> None:
        """Start delivering ``note`` — unless its sink has :data:`SINK_PENDING` deliveries
        pending, or the notifier is stopping: then it is journaled as ``dropped``.

        Cancellation: a dropped record may be journaled all the same.
        """
        current = self._current
        if current is not None and self._pending.get(armed.key, 0) < SINK_PENDING:
            self._pending[armed.key] = self._pending.get(armed.key, 0) + 1
            current.busy += 1
            current.idle = trio.Event()
            current.nursery.start_soon(self._deliver, armed, note, current)
            return
        await self._record(armed, note, 0, "dropped", Attempt(
            False, error=f"{SINK_PENDING} deliveries of this sink were pending already"))

    async def _deliver(self, armed: Armed, note: Notification, current: _Incarnation) -> None:
        """Attempts until one is delivered, one fails for good, or they are all made.

        Cancellation (stopping, or a crash of the tree): the delivery is journaled as
        ``abandoned`` (shielded, bounded by a few seconds).
        """
        sink = armed.rule.sink
        attempt, settled, waiting = 0, False, False
        try:
            while True:
                attempt += 1
                async with self._limiter(armed.key):
                    result = await self._attempt(armed.rule, note, current.sender)
                if result.delivered:
                    settled = True
                    await self._record(armed, note, attempt, "delivered", result)
                    return
                last = attempt >= sink.attempts or not result.retry
                delay = None if last else self._backoff(sink.backoff, attempt, result)
                settled = last
                await self._record(armed, note, attempt, "failed" if last else "retrying",
                                   result, next_retry_in=delay)
                if delay is None:
                    return
                waiting = True
                await trio.sleep(delay)
                waiting = False
        finally:
            self._pending[armed.key] -= 1
            if not self._pending[armed.key]:
                del self._pending[armed.key]
                self._sends.pop(armed.key, None)
            current.busy -= 1
            if not current.busy:
                current.idle.set()
            if not settled:
                what = (f"attempt {attempt + 1} was not made" if waiting
                        else f"attempt {attempt} did not finish")
                with trio.CancelScope(shield=True), trio.move_on_after(_LAST_RECORD):
                    await self._record(armed, note, attempt + 1 if waiting else attempt, "abandoned", Attempt(
                        False, error=f"flwd stopped: {what}"))

    def _limiter(self, key: str) -> trio.CapacityLimiter:
        limiter = self._sends.get(key)
        if limiter is None:
            limiter = self._sends[key] = trio.CapacityLimiter(SENDS)
        return limiter

    @staticmethod
    async def _attempt(rule: NotifyRule, note: Notification, sender: Sender) -> Attempt:
        try:
            return await sender.send(rule, note)
        except Exception as exc:  # a sink's bug is its delivery's failure, not the notifier's
            _log.exception("flwd: the %s sink failed", rule.kind)
            return Attempt(False, error=bounded(f"{type(exc).__name__}: {exc}"))

    def _backoff(self, first: float, attempt: int, result: Attempt) -> float:
        """The wait before attempt ``attempt + 1``: ``first`` doubled per attempt made,
        capped, times a factor in [0.5, 1] (retries of many deliveries spread out); at
        least what the receiver asked for (``Retry-After``)."""
        delay = min(MAX_BACKOFF, first * math.pow(2, attempt - 1)) * self._random.uniform(0.5, 1)
        if result.retry_after is not None:
            delay = max(delay, min(result.retry_after, MAX_BACKOFF))
        return round(delay, 3)

    async def _record(self, armed: Armed, note: Notification, attempt: int, outcome: str,
                      result: Attempt, *, next_retry_in: float | None = None) -> None:
        """Journal one attempt's outcome as an event of the run, and count it.

        Cancellation: the record may be journaled all the same.
        """
        self._observer.notification(armed.kind, outcome)
        if outcome in ("failed", "dropped", "abandoned"):
            _log.warning("flwd: %s notification of run %s to %s %s: %s", note.event,
                         note.run_id, armed.name, outcome, result.error)
        record = EventRecord(run_id=note.run_id, job_id=note.job_id, type=NOTIFY_DELIVERY,
                             ts=now(), data={
                                 "sink": armed.name, "sink_kind": armed.kind,
                                 "event": note.event, "delivery": note.delivery,
                                 "attempt": attempt, "attempts": armed.rule.sink.attempts,
                                 "outcome": outcome, "status": result.status,
                                 "error": result.error, "next_retry_in": next_retry_in})
        try:
            await self._journal([record])
        except Exception as exc:  # the journal is stopping or failed: the delivery stands
            _log.error("flwd: delivery of run %s not journaled: %s", note.run_id, exc)
