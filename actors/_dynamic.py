"""The dynamic supervisor: an actor that starts and stops children on request."""

from __future__ import annotations

from dataclasses import dataclass
from random import Random
from typing import Any, TypeVar

import trio

from ._actor import Inbox
from ._child import ChildHandle, ChildSpec
from ._errors import (
    ActorStopped,
    ChildNotFound,
    DuplicateChildName,
    RestartIntensityExceeded,
    TooManyChildren,
)
from ._ref import ActorRef
from ._reply import ReplySlot
from ._supervisor import OnChildExit, _SupervisorCore

__all__ = ["DynamicSupervisor"]

T = TypeVar("T")


@dataclass(frozen=True)
class _StartChild:
    spec: ChildSpec[Any]
    reply: ReplySlot[Any]


@dataclass(frozen=True)
class _StopChild:
    name: str
    reply: ReplySlot[None]


_Request = _StartChild | _StopChild


class DynamicSupervisor(_SupervisorCore):
    """A one-for-one supervisor whose children are started on request.

    Meant for children such as job runs, usually
    :attr:`RestartPolicy.TEMPORARY`: a crash is reported to ``on_child_exit``
    and never disturbs siblings or the supervisor. Restart policies, intensity
    and backoff work as for :class:`Supervisor` when a spec asks for restarts.

    Only the supervisor's own task starts children, in its own nursery;
    requests reach it through a bounded inbox. Start it with
    ``await nursery.start(dynamic_supervisor.run)`` (the value is the
    supervisor itself).

    Args:
      name: for errors and logs.
      max_children: refuse new children beyond this many live ones.
      on_child_exit: see :data:`OnChildExit`; the place where results and
        errors of temporary children go.
      The restart options are those of :class:`Supervisor`.
    """

    #: Requests are handled in microseconds and never awaited by the loop; 16
    #: absorbs a burst of submissions, and a flood beyond that should feel
    #: backpressure (or WouldBlock) rather than pile up here.
    inbox_capacity = 16

    def __init__(
        self,
        name: str,
        *,
        max_children: int | None = None,
        on_child_exit: OnChildExit | None = None,
        max_restarts: int = 3,
        max_seconds: float = 5.0,
        backoff_base: float = 0.1,
        backoff_cap: float = 5.0,
        stable_after: float | None = None,
        random: Random | None = None,
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
        self.max_children = max_children
        # Insertion order is start order, which the shutdown walks backwards.
        self._children: dict[str, ChildHandle[Any]] = {}
        self._ref: ActorRef[_Request] | None = None
        self._closing = False
        self._running = False
        self._finished = trio.Event()

    def __repr__(self) -> str:
        return f"<DynamicSupervisor {self.name!r} children={list(self._children)}>"

    async def start_child(self, spec: ChildSpec[T]) -> T:
        """Start a child and return what it passed to ``task_status.started``.

        Raises:
          DuplicateChildName: if a live child already has ``spec.name``.
          TooManyChildren: if ``max_children`` live children are running.
          ActorStopped: if the supervisor is not running or shutting down.
          Exception: the child's own error if it failed before starting and is
            not restarted.

        **Cancellation:** blocks until the child started; giving up does not
        stop the child (use :meth:`stop_child`).
        """
        value: T = await self._require_ref().call(lambda reply: _StartChild(spec, reply))
        return value

    async def stop_child(self, name: str) -> None:
        """Stop the child ``name`` (graceful request, grace, cancel) and wait for it.

        Raises:
          ChildNotFound: if there is no live child of that name.
          ActorStopped: if the supervisor is not running.

        **Cancellation:** only the wait is cancelled; the stop continues.
        """
        await self._require_ref().call(lambda reply: _StopChild(name, reply))

    def child(self, name: str) -> ChildHandle[Any]:
        """The handle of the live child ``name``.

        Raises:
          ChildNotFound: if there is no live child of that name.
        """
        try:
            return self._children[name]
        except KeyError:
            raise ChildNotFound(self.name, name) from None

    def children(self) -> list[ChildHandle[Any]]:
        """The live children, in start order."""
        return list(self._children.values())

    def close(self) -> None:
        """Request the shutdown: refuse new children, stop live ones in reverse order."""
        self._closing = True
        if self._ref is not None:
            self._ref.close()

    async def aclose(self) -> None:
        """:meth:`close` and wait until :meth:`run` returned.

        **Cancellation:** only the wait is cancelled; the shutdown continues.
        """
        self.close()
        if self._running:
            await self._finished.wait()

    def _require_ref(self) -> ActorRef[_Request]:
        if self._ref is None:
            raise ActorStopped(self.name, "is not running")
        return self._ref

    def _escalate(self, error: RestartIntensityExceeded) -> None:
        if self._escalation is None:
            self._escalation = error
        self.close()

    def _child_finished(self, child: ChildHandle[Any]) -> None:
        # Only the handle registered under the name: the name may be reused.
        if self._children.get(child.name) is child:
            del self._children[child.name]

    async def run(
        self, *, task_status: trio.TaskStatus[DynamicSupervisor] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve start/stop requests until closed, then stop children in reverse order.

        Raises:
          RestartIntensityExceeded: after stopping every child, if restarting
            children got too frequent.

        **Cancellation:** cancels every child at once and restarts nothing;
        pending requests fail with :exc:`ActorStopped`.
        """
        if self._running:
            raise RuntimeError(f"supervisor {self.name!r} is already running")
        self._running = True
        self._reset_restarts()
        self._children = {}
        self._closing = False
        self._finished = trio.Event()
        try:
            with Inbox[_Request](self.name, self.inbox_capacity) as inbox:
                self._ref = inbox.ref
                async with trio.open_nursery() as nursery:
                    task_status.started(self)
                    async for request in inbox:
                        self._dispatch(nursery, request)
                    self._closing = True
                    await self._stop_all(
                        reversed(list(self._children.values())),
                        f"supervisor {self.name!r} shutting down",
                    )
                if self._escalation is not None:
                    # Raised inside the inbox so that pending callers see it as the cause.
                    raise self._escalation
        finally:
            self._running = False
            self._finished.set()

    def _dispatch(self, nursery: trio.Nursery, request: _Request) -> None:
        match request:
            case _StartChild(spec=spec, reply=reply):
                if self._closing:
                    reply.fail(ActorStopped(self.name, "is shutting down"))
                elif spec.name in self._children:
                    reply.fail(DuplicateChildName(self.name, spec.name))
                elif self.max_children is not None and len(self._children) >= self.max_children:
                    reply.fail(TooManyChildren(self.name, self.max_children))
                else:
                    child = ChildHandle(spec)
                    self._children[spec.name] = child
                    nursery.start_soon(self._supervise, child, name=f"{self.name}/{spec.name}")
                    nursery.start_soon(self._reply_when_started, child, reply)
            case _StopChild(name=name, reply=reply):
                existing = self._children.get(name)
                if existing is None:
                    reply.fail(ChildNotFound(self.name, name))
                else:
                    nursery.start_soon(self._stop_and_reply, existing, reply)

    @staticmethod
    async def _reply_when_started(child: ChildHandle[Any], reply: ReplySlot[Any]) -> None:
        try:
            value = await child._wait_first_start()
        except ActorStopped as stopped:
            # The caller wants the reason the child never came up, not our wrapper.
            cause = stopped.__cause__
            reply.fail(cause if isinstance(cause, Exception) else stopped)
        else:
            reply.reply(value)

    async def _stop_and_reply(self, child: ChildHandle[Any], reply: ReplySlot[None]) -> None:
        await self._stop_child(child, f"stop_child({child.name!r}) requested")
        reply.reply(None)
