"""Writing actors: the :class:`Inbox` an actor task owns, and the :class:`Actor` base class."""

from __future__ import annotations

from types import TracebackType
from typing import Generic, TypeVar

import trio

from ._ref import ActorRef, _Mailbox

__all__ = ["Actor", "Inbox", "start_actor"]

Msg = TypeVar("Msg")


class Inbox(Generic[Msg]):
    """The receiving end of an actor's mailbox, owned by the actor's task.

    A synchronous context manager: entering it creates the bounded mailbox and
    its :attr:`ref`; leaving it (returning, raising or cancelled) closes the
    mailbox, drops the queued messages and fails every unanswered request with
    :exc:`ActorStopped` — synchronously, so that it also happens under
    cancellation. Iterate over it to serve messages until it is closed::

        async def run(*, task_status=trio.TASK_STATUS_IGNORED):
            with Inbox[Msg]("counter", capacity=16) as inbox:
                task_status.started(inbox.ref)
                async for message in inbox:
                    ...

    Args:
      name: the actor's name, for errors and logs.
      capacity: the buffer size; senders block (or get :exc:`trio.WouldBlock`)
        beyond it. Always bounded.
    """

    __slots__ = ("_mailbox", "_ref")

    def __init__(self, name: str, capacity: int) -> None:
        self._mailbox = _Mailbox[Msg](name, capacity)
        self._ref = ActorRef(self._mailbox)

    @property
    def name(self) -> str:
        return self._mailbox.name

    @property
    def ref(self) -> ActorRef[Msg]:
        """The ref to hand out, usually through ``task_status.started(inbox.ref)``."""
        return self._ref

    def __enter__(self) -> Inbox[Msg]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._mailbox.shut_down(exc)

    def __aiter__(self) -> Inbox[Msg]:
        return self

    async def __anext__(self) -> Msg:
        try:
            return await self.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None

    async def receive(self) -> Msg:
        """Wait for the next message.

        Raises:
          trio.EndOfChannel: once the inbox is closed and drained.

        **Cancellation:** safe; no message is lost if cancelled.
        """
        return await self._mailbox.receive.receive()

    def receive_nowait(self) -> Msg:
        """Take the next message if there is one.

        Raises:
          trio.WouldBlock: if the inbox is empty.
          trio.EndOfChannel: once the inbox is closed and drained.
        """
        return self._mailbox.receive.receive_nowait()


class Actor(Generic[Msg]):
    """Base class for an actor that handles one message at a time.

    Subclasses implement :meth:`handle` and may set :attr:`name` and
    :attr:`inbox_capacity`. State lives on the instance and is touched only by
    the actor's task, so it needs no locks. Start it with
    ``ref = await nursery.start(actor.run)`` or :func:`start_actor`.

    An exception from a hook or from :meth:`handle` crashes the actor (its
    supervisor decides what happens next); answer a request with
    :meth:`ReplySlot.fail` to report an error to one caller instead.
    """

    #: Name used for errors and logs; defaults to the class name.
    name: str = ""
    #: 16 messages absorb a burst from a handful of concurrent senders, while a
    #: producer that outruns the actor feels backpressure within a few messages.
    inbox_capacity: int = 16

    _inbox: Inbox[Msg] | None = None

    @property
    def ref(self) -> ActorRef[Msg]:
        """This actor's own ref (e.g. to hand to helpers); only while it runs."""
        if self._inbox is None:
            raise RuntimeError(f"actor {self._actor_name()!r} is not running")
        return self._inbox.ref

    def _actor_name(self) -> str:
        return self.name or type(self).__name__

    async def on_start(self) -> None:
        """Prepare before the actor is reported started; messages already queue up.

        An exception here makes ``nursery.start(actor.run)`` raise it.
        """

    async def handle(self, message: Msg) -> None:
        """Handle one message. Must be overridden."""
        raise NotImplementedError

    def on_stop(self) -> None:
        """Synchronous cleanup after the actor stopped serving, however it stopped.

        Runs after the inbox was closed and pending requests were failed. It is
        synchronous because it also runs under cancellation.
        """

    async def run(
        self, *, task_status: trio.TaskStatus[ActorRef[Msg]] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve messages until the inbox is closed and drained.

        Reports its ref through ``task_status.started`` once :meth:`on_start`
        completed.

        **Cancellation:** stops at once, between or inside :meth:`handle`; queued
        and unanswered requests fail with :exc:`ActorStopped`.
        """
        try:
            with Inbox[Msg](self._actor_name(), self.inbox_capacity) as inbox:
                self._inbox = inbox
                await self.on_start()
                task_status.started(inbox.ref)
                async for message in inbox:
                    await self.handle(message)
        finally:
            self._inbox = None
            self.on_stop()


async def start_actor(nursery: trio.Nursery, actor: Actor[Msg]) -> ActorRef[Msg]:
    """Start ``actor`` in ``nursery`` and return its ref once it is ready.

    **Cancellation:** cancelling the start cancels the actor too.
    """
    ref: ActorRef[Msg] = await nursery.start(actor.run)
    return ref
