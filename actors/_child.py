"""What a supervisor knows about a child: its :class:`ChildSpec` and its live :class:`ChildHandle`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import trio

from ._actor import Actor
from ._errors import ActorStopped
from ._ref import ActorRef
from ._restart import RestartPolicy

__all__ = ["ChildHandle", "ChildSpec", "StartFunction"]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
Msg = TypeVar("Msg")


class StartFunction(Protocol[T_co]):
    """An async callable that ``nursery.start`` can run: it reports readiness
    with ``task_status.started(value)``, then keeps running until it is done.
    ``Actor.run`` bound methods and ``Supervisor.run`` are start functions."""

    def __call__(self, *, task_status: trio.TaskStatus[T_co]) -> Awaitable[object]: ...


@dataclass(frozen=True)
class ChildSpec(Generic[T]):
    """How to start, restart and stop one supervised child.

    Attributes:
      name: unique among the supervisor's children.
      start: a start function, called afresh for every incarnation; the value
        it passes to ``task_status.started`` (usually an :class:`ActorRef`) is
        exposed as :attr:`ChildHandle.value`.
      restart: the :class:`RestartPolicy`.
      shutdown_timeout: seconds of grace between the graceful stop request and
        the cancellation of the child's scope.
      stop: the graceful stop request, called with the child's value. By
        default the value's ``close()`` is called if it has one (an
        :class:`ActorRef` closes its inbox; a supervisor starts its ordered
        shutdown); without either, stopping cancels the child at once.
    """

    name: str
    start: StartFunction[T]
    restart: RestartPolicy = RestartPolicy.PERMANENT
    shutdown_timeout: float = 5.0
    stop: Callable[[T], object] | None = None

    @staticmethod
    def for_actor(
        name: str,
        make_actor: Callable[[], Actor[Msg]],
        *,
        restart: RestartPolicy = RestartPolicy.PERMANENT,
        shutdown_timeout: float = 5.0,
        stop: Callable[[ActorRef[Msg]], object] | None = None,
    ) -> ChildSpec[ActorRef[Msg]]:
        """A spec that runs a fresh actor from ``make_actor()`` in every incarnation,
        so that a restart never inherits the state of the crashed instance."""

        async def start(
            *, task_status: trio.TaskStatus[ActorRef[Msg]] = trio.TASK_STATUS_IGNORED
        ) -> None:
            await make_actor().run(task_status=task_status)

        return ChildSpec(name, start, restart=restart, shutdown_timeout=shutdown_timeout, stop=stop)


class ChildHandle(Generic[T]):
    """A supervisor's live view of one child, across its incarnations.

    :attr:`value` is always the value of the *current* incarnation, so a ref
    taken from it after a restart reaches the new actor.
    """

    __slots__ = (
        "_changed",
        "_current",
        "_done",
        "_incarnations",
        "_last_crash",
        "_latest",
        "_scope",
        "_stop_reason",
        "_stop_requested",
        "spec",
    )

    def __init__(self, spec: ChildSpec[T]) -> None:
        self.spec = spec
        # A one-element box, so that None stays a legitimate child value.
        self._current: tuple[T] | None = None
        # The value of the latest incarnation that started, kept after it exits.
        self._latest: tuple[T] | None = None
        self._scope: trio.CancelScope | None = None
        self._incarnations = 0
        self._last_crash: BaseException | None = None
        self._stop_requested = trio.Event()
        self._stop_reason = ""
        self._done = trio.Event()
        # Replaced after every state change; waiters re-check the state on wake-up.
        self._changed = trio.Event()

    def __repr__(self) -> str:
        state = "running" if self.running else "done" if self.done else "starting"
        return f"<ChildHandle {self.name!r} {state} incarnation={self._incarnations}>"

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def value(self) -> T:
        """What the current incarnation passed to ``task_status.started``.

        Raises:
          ActorStopped: if no incarnation is running (restarting or done).
        """
        if self._current is None:
            raise ActorStopped(self.name, "is not running")
        return self._current[0]

    @property
    def running(self) -> bool:
        """Whether an incarnation has started and not exited yet."""
        return self._current is not None

    @property
    def done(self) -> bool:
        """Whether the child exited for good: it will not be started again."""
        return self._done.is_set()

    @property
    def incarnation(self) -> int:
        """How many incarnations have started so far (1 after the first start)."""
        return self._incarnations

    async def wait_started(self, *, newer_than: int = 0) -> T:
        """Wait until an incarnation is running and return its value.

        Args:
          newer_than: wait for an incarnation numbered above this one, e.g. the
            :attr:`incarnation` seen before a ref went stale, to get the ref
            of the restarted child.

        Raises:
          ActorStopped: if the child is done before starting again; a crash of
            its last incarnation is ``__cause__``.

        **Cancellation:** only the wait is cancelled.
        """
        while True:
            if self._current is not None and self._incarnations > newer_than:
                return self._current[0]
            if self.done:
                raise self._stopped_error()
            await self._changed.wait()

    async def _wait_first_start(self) -> T:
        # Unlike wait_started, this cannot miss an incarnation that reported
        # started and died before the waiter ran: it only looks at the count.
        while self._incarnations == 0:
            if self.done:
                raise self._stopped_error()
            await self._changed.wait()
        assert self._latest is not None
        return self._latest[0]

    async def wait_done(self) -> None:
        """Wait until the child exited for good.

        **Cancellation:** only the wait is cancelled.
        """
        await self._done.wait()

    def _stopped_error(self) -> ActorStopped:
        error = ActorStopped(self.name, "crashed" if self._last_crash else "has stopped")
        error.__cause__ = self._last_crash
        return error

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def _begin_incarnation(self, scope: trio.CancelScope) -> None:
        self._scope = scope
        if self._stop_requested.is_set():
            scope.cancel(reason=self._stop_reason)

    def _set_started(self, value: T) -> None:
        self._current = self._latest = (value,)
        self._incarnations += 1
        self._notify()

    def _end_incarnation(self, crash: BaseException | None) -> None:
        self._scope = None
        self._current = None
        self._last_crash = crash
        self._notify()

    def _request_stop(self, reason: str) -> None:
        if not self._stop_requested.is_set():
            self._stop_reason = reason
            self._stop_requested.set()

    def _cancel(self, reason: str) -> None:
        if self._scope is not None:
            self._scope.cancel(reason=reason)

    def _finish(self) -> None:
        self._done.set()
        self._notify()
