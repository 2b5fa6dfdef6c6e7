"""One-for-one supervision: restart crashed children, give up loudly, stop in order.

The shared machinery (:class:`_SupervisorCore`) runs each child under a runner
task that owns its incarnations; :class:`Supervisor` is the static flavour with
a fixed, ordered list of children. The dynamic flavour lives in ``_dynamic.py``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from random import Random
from typing import Any, TypedDict, Unpack

import outcome
import trio

from ._child import ChildHandle, ChildSpec
from ._errors import ActorStopped, ChildNotFound, DuplicateChildName, RestartIntensityExceeded
from ._restart import Backoff, BackoffSchedule, RestartWindow

__all__ = ["OnChildExit", "Supervisor", "open_supervisor"]

_log = logging.getLogger("actors")

#: Called synchronously when a child exited for good (it will not be restarted),
#: with ``Value(None)`` for a normal or requested exit and ``Error(exc)`` for a crash.
#: It runs in the supervisor's task: it must not block, and if it raises, the
#: supervisor crashes.
OnChildExit = Callable[[str, outcome.Outcome[None]], object]


class _SupervisorOptions(TypedDict, total=False):
    max_restarts: int
    max_seconds: float
    backoff_base: float
    backoff_cap: float
    stable_after: float | None
    random: Random | None
    on_child_exit: OnChildExit | None


def _unwrap_single(group: ExceptionGroup[Exception]) -> Exception:
    # A lone error is reported as itself; a real group (several errors) is kept whole.
    if len(group.exceptions) == 1 and not isinstance(group.exceptions[0], BaseExceptionGroup):
        return group.exceptions[0]
    return group


class _SupervisorCore:
    """Restart loop, intensity, backoff and ordered stop shared by both supervisors."""

    def __init__(
        self,
        name: str,
        *,
        max_restarts: int,
        max_seconds: float,
        backoff_base: float,
        backoff_cap: float,
        stable_after: float | None,
        random: Random | None,
        on_child_exit: OnChildExit | None,
    ) -> None:
        self.name = name
        self._max_restarts = max_restarts
        self._max_seconds = max_seconds
        self._window = RestartWindow(max_restarts, max_seconds)
        self._backoff = Backoff(backoff_base, backoff_cap)
        self._stable_after = max_seconds if stable_after is None else stable_after
        self._random = random if random is not None else Random()
        self._on_child_exit = on_child_exit
        self._escalation: RestartIntensityExceeded | None = None

    def _reset_restarts(self) -> None:
        self._window = RestartWindow(self._max_restarts, self._max_seconds)
        self._escalation = None

    def _escalate(self, error: RestartIntensityExceeded) -> None:
        raise NotImplementedError

    def _child_finished(self, child: ChildHandle[Any]) -> None:
        """Hook: ``child`` exited for good."""

    async def _supervise(self, child: ChildHandle[Any]) -> None:
        """Run incarnations of ``child`` until its policy, a stop or an escalation ends it.

        **Cancellation:** cancelling the runner cancels the current incarnation
        (or the backoff) and never restarts anything.
        """
        schedule = BackoffSchedule(self._backoff, self._stable_after)
        crash: Exception | None = None
        try:
            while True:
                started_at = trio.current_time()
                crash = await self._run_incarnation(child)
                # A child may turn our cancellation into an ordinary exception;
                # a supervisor that is going away must still restart nothing.
                await trio.lowlevel.checkpoint_if_cancelled()
                if child._stop_requested.is_set() or self._escalation is not None:
                    break
                if not child.spec.restart.should_restart(crashed=crash is not None):
                    if crash is not None:
                        _log.info("%s: child %r crashed, not restarted", self.name, child.name)
                    break
                now = trio.current_time()
                if not self._window.try_record(now):
                    error = RestartIntensityExceeded(self.name, child.name)
                    error.__cause__ = crash
                    _log.error("%s: child %r restarts too often, giving up", self.name, child.name)
                    self._escalate(error)
                    break
                delay = schedule.next_delay(now - started_at, self._random.uniform(0.5, 1.0))
                _log.warning(
                    "%s: child %r %s, restarting in %.3fs",
                    self.name,
                    child.name,
                    "crashed" if crash is not None else "returned",
                    delay,
                    exc_info=crash,
                )
                with trio.move_on_after(delay):
                    await child._stop_requested.wait()
                if child._stop_requested.is_set():
                    break
        finally:
            child._finish()
            self._child_finished(child)
        if self._on_child_exit is not None:
            result: outcome.Outcome[None] = (
                outcome.Value(None) if crash is None else outcome.Error(crash)
            )
            self._on_child_exit(child.name, result)

    async def _run_incarnation(self, child: ChildHandle[Any]) -> Exception | None:
        """Run one incarnation in its own cancel scope; return its crash, if any."""
        crash: Exception | None = None
        scope = trio.CancelScope()
        child._begin_incarnation(scope)
        try:
            with scope:
                try:
                    async with trio.open_nursery() as nursery:
                        child._set_started(await nursery.start(child.spec.start))
                # Only Exceptions are crashes: a Cancelled in the group re-raises
                # by itself, into our scope (a requested stop) or further out.
                except* Exception as group:
                    crash = _unwrap_single(group)
        finally:
            child._end_incarnation(crash)
        return crash

    async def _stop_child(self, child: ChildHandle[Any], reason: str) -> None:
        """Stop ``child`` for good: graceful request, bounded grace, then cancel.

        **Cancellation:** if cancelled, the child may be left mid-stop; its
        runner still never restarts it.
        """
        child._request_stop(reason)
        if child.done:
            return
        if self._request_graceful_stop(child):
            grace = child.spec.shutdown_timeout
            with trio.move_on_after(grace):
                await child.wait_done()
            child._cancel(f"{reason}: shutdown grace of {grace}s expired")
        else:
            child._cancel(reason)
        await child.wait_done()

    @staticmethod
    def _request_graceful_stop(child: ChildHandle[Any]) -> bool:
        if not child.running:
            return False
        value = child.value
        if child.spec.stop is not None:
            child.spec.stop(value)
            return True
        close = getattr(value, "close", None)
        if callable(close):
            close()
            return True
        return False

    async def _stop_all(self, children: Iterable[ChildHandle[Any]], reason: str) -> None:
        # One at a time: a child is fully stopped before the one started before it.
        for child in children:
            await self._stop_child(child, reason)


class Supervisor(_SupervisorCore):
    """A one-for-one supervisor of a fixed, ordered list of children.

    Children start in order, each after the previous one reported started.
    A child that exits is restarted according to its :class:`RestartPolicy`,
    after an exponential backoff with jitter (``backoff_base * 2**n``, capped
    at ``backoff_cap``, times a factor in [0.5, 1.0]; ``n`` resets once an
    incarnation stayed up ``stable_after`` seconds, default ``max_seconds``).
    More than ``max_restarts`` restarts within ``max_seconds`` (all children
    together) make it stop every child and raise :exc:`RestartIntensityExceeded`.

    Start it with ``await nursery.start(supervisor.run)`` (the value is the
    supervisor) or :func:`open_supervisor`; stop it in order with :meth:`aclose`.

    Args:
      name: for errors and logs.
      children: the child specs, in start order; names must be unique.
      random: source of the backoff jitter (inject a seeded one in tests).
      on_child_exit: see :data:`OnChildExit`.
    """

    def __init__(
        self,
        name: str,
        children: Iterable[ChildSpec[Any]],
        *,
        max_restarts: int = 3,
        max_seconds: float = 5.0,
        backoff_base: float = 0.1,
        backoff_cap: float = 5.0,
        stable_after: float | None = None,
        random: Random | None = None,
        on_child_exit: OnChildExit | None = None,
    ) -> None:
        super().__init__(
            name,
            max_restarts=max_restarts,
            max_seconds=max_seconds,
            backoff_base=backoff_base,
            backoff_cap=backoff_cap,
            stable_after=stable_after,
            random=random,
            on_child_exit=on_child_exit,
        )
        self._specs = tuple(children)
        seen: set[str] = set()
        for spec in self._specs:
            if spec.name in seen:
                raise DuplicateChildName(name, spec.name)
            seen.add(spec.name)
        self._handles = {spec.name: ChildHandle(spec) for spec in self._specs}
        self._running = False
        self._shutdown_requested = trio.Event()
        self._finished = trio.Event()

    def __repr__(self) -> str:
        return f"<Supervisor {self.name!r} children={list(self._handles)}>"

    def child(self, name: str) -> ChildHandle[Any]:
        """The handle of the child called ``name``.

        Raises:
          ChildNotFound: if there is no such child.
        """
        try:
            return self._handles[name]
        except KeyError:
            raise ChildNotFound(self.name, name) from None

    def child_value(self, name: str) -> Any:
        """The current value (usually the ref) of the child called ``name``.

        Raises:
          ChildNotFound: if there is no such child.
          ActorStopped: if it is not running right now (restarting or done).
        """
        return self.child(name).value

    def children(self) -> list[ChildHandle[Any]]:
        """All child handles, in start order."""
        return list(self._handles.values())

    def close(self) -> None:
        """Request the ordered shutdown, without waiting for it. Idempotent."""
        self._shutdown_requested.set()

    async def aclose(self) -> None:
        """Stop every child in reverse start order and wait until :meth:`run` returned.

        Each child first gets its graceful stop request (its ref's inbox is
        closed), then ``shutdown_timeout`` seconds, then its scope is cancelled.

        **Cancellation:** only the wait is cancelled; the shutdown continues.
        """
        self.close()
        if self._running:
            await self._finished.wait()

    def _escalate(self, error: RestartIntensityExceeded) -> None:
        if self._escalation is None:
            self._escalation = error
        self._shutdown_requested.set()

    async def run(
        self, *, task_status: trio.TaskStatus[Supervisor] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Start the children in order, supervise them, stop them in reverse order.

        Reports itself through ``task_status.started`` once every child has
        started (or exited for good during startup). Returns after :meth:`close`
        or :meth:`aclose` and the ordered shutdown.

        Raises:
          RestartIntensityExceeded: after stopping the remaining children, if
            restarts were too frequent (during startup: out of ``nursery.start``).

        **Cancellation:** cancels every child at once, without the ordered
        shutdown, and restarts nothing. Use :meth:`aclose` for an orderly stop.
        """
        if self._running:
            raise RuntimeError(f"supervisor {self.name!r} is already running")
        self._running = True
        # A supervisor restarted by its parent starts from a clean slate.
        self._reset_restarts()
        self._handles = {spec.name: ChildHandle(spec) for spec in self._specs}
        self._shutdown_requested = trio.Event()
        self._finished = trio.Event()
        try:
            async with trio.open_nursery() as nursery:
                started: list[ChildHandle[Any]] = []
                for child in self._handles.values():
                    if self._shutdown_requested.is_set():
                        break
                    nursery.start_soon(self._supervise, child, name=f"{self.name}/{child.name}")
                    started.append(child)
                    try:
                        await child._wait_first_start()
                    except ActorStopped:
                        # It exited for good during startup (a temporary child,
                        # or an escalation that the check above picks up).
                        pass
                if self._escalation is None:
                    task_status.started(self)
                await self._shutdown_requested.wait()
                await self._stop_all(reversed(started), f"supervisor {self.name!r} shutting down")
        finally:
            self._running = False
            self._finished.set()
        if self._escalation is not None:
            raise self._escalation


@asynccontextmanager
async def open_supervisor(
    name: str, children: Iterable[ChildSpec[Any]], **options: Unpack[_SupervisorOptions]
) -> AsyncIterator[Supervisor]:
    """Run a :class:`Supervisor` for the duration of the ``async with`` block.

    ``options`` are the keyword arguments of :class:`Supervisor`. A normal exit
    from the block performs the ordered shutdown and waits for it.

    **Cancellation:** if the block raises or is cancelled, the children are
    cancelled at once (no ordered shutdown), as in any nursery.
    """
    supervisor = Supervisor(name, children, **options)
    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)
        try:
            yield supervisor
        finally:
            supervisor.close()
