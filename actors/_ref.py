"""Actor refs: the only handle other code holds on an actor, and the mailbox behind it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import trio

from ._errors import ActorStopped
from ._reply import ReplySlot

__all__ = ["ActorRef"]

Msg = TypeVar("Msg")
T = TypeVar("T")

_log = logging.getLogger("actors")


class _Mailbox(Generic[Msg]):
    """State shared by an actor's :class:`Inbox` and its :class:`ActorRef`.

    There is exactly one send channel and one receive channel; refs do not
    clone the send side, so closing the inbox through any ref closes it for
    everyone, and the actor still serves what was already queued.
    """

    __slots__ = ("accepting", "alive", "crash", "name", "pending", "receive", "send", "stopped")

    def __init__(self, name: str, capacity: int) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 0:
            raise ValueError(f"inbox capacity must be a non-negative int, not {capacity!r}")
        self.name = name
        self.send, self.receive = trio.open_memory_channel[Msg](capacity)
        self.accepting = True
        self.alive = True
        self.crash: BaseException | None = None
        # Every slot of a call() in flight, so that an exiting actor can fail the
        # ones it never answered, wherever the message is: still queued, being
        # handled when the handler raised, or stashed by the actor for later.
        self.pending: set[ReplySlot[Any]] = set()
        self.stopped = trio.Event()

    def stopped_error(self) -> ActorStopped:
        if self.alive:
            error = ActorStopped(self.name, "is closing its inbox")
        elif self.crash is not None:
            error = ActorStopped(self.name, "crashed")
        else:
            error = ActorStopped(self.name)
        # A fresh instance per caller: one exception object must never be raised
        # in several tasks, or their tracebacks get spliced together.
        error.__cause__ = self.crash
        error.__suppress_context__ = True
        return error

    def close(self) -> None:
        self.accepting = False
        # Tasks blocked in send() on this (only) send channel wake up with
        # ClosedResourceError; the receiver drains the buffer, then sees EndOfChannel.
        self.send.close()

    def shut_down(self, exc: BaseException | None) -> None:
        """Close, drain and fail everything; synchronous, so it runs even when cancelled."""
        if not self.alive:
            return
        self.crash = _crash_cause(exc)
        self.alive = False
        self.close()
        dropped = 0
        while True:
            try:
                self.receive.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                break
            dropped += 1
        self.receive.close()
        for slot in list(self.pending):
            slot._fail_if_pending(self.stopped_error())
        self.pending.clear()
        self.stopped.set()
        if dropped:
            _log.debug("actor %r dropped %d queued message(s) on exit", self.name, dropped)


def _crash_cause(exc: BaseException | None) -> BaseException | None:
    if exc is None or isinstance(exc, Exception):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        # Keep the errors that travelled alongside a cancellation, drop the Cancelled.
        errors, _ = exc.split(Exception)
        return errors
    return None


class ActorRef(Generic[Msg]):
    """A handle on a running actor: send it messages, ask it questions, close it.

    Refs are cheap to share; every ref of an actor is the same object. Refs
    compare equal only to themselves.
    """

    __slots__ = ("_mailbox",)

    def __init__(self, mailbox: _Mailbox[Msg]) -> None:
        self._mailbox = mailbox

    def __repr__(self) -> str:
        state = "alive" if self.is_alive else "stopped"
        return f"<ActorRef {self.name!r} {state}>"

    @property
    def name(self) -> str:
        """The actor's name, for logs and errors."""
        return self._mailbox.name

    @property
    def closed(self) -> bool:
        """Whether the inbox refuses new messages (closed, or the actor exited)."""
        return not self._mailbox.accepting

    @property
    def is_alive(self) -> bool:
        """Whether the actor has not exited yet (it may still be draining its inbox)."""
        return self._mailbox.alive

    def statistics(self) -> trio.MemoryChannelStatistics:
        """Buffer statistics of the inbox, e.g. ``peak_buffer_used`` to size it."""
        return self._mailbox.send.statistics()

    async def cast(self, message: Msg) -> None:
        """Enqueue ``message`` and return without waiting for it to be handled.

        Raises:
          ActorStopped: if the inbox is closed or the actor exited.

        **Cancellation:** blocks while the inbox is full (backpressure); if
        cancelled there, the message was not enqueued.
        """
        if not self._mailbox.accepting:
            raise self._mailbox.stopped_error()
        try:
            await self._mailbox.send.send(message)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise self._mailbox.stopped_error()

    def cast_nowait(self, message: Msg) -> None:
        """Enqueue ``message`` if there is room in the inbox right now.

        Raises:
          trio.WouldBlock: if the inbox is full.
          ActorStopped: if the inbox is closed or the actor exited.
        """
        if not self._mailbox.accepting:
            raise self._mailbox.stopped_error()
        try:
            self._mailbox.send.send_nowait(message)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise self._mailbox.stopped_error()

    async def call(self, make_message: Callable[[ReplySlot[T]], Msg]) -> T:
        """Send a request and wait for its reply.

        ``make_message`` receives a fresh :class:`ReplySlot` and returns the
        message carrying it, e.g. ``await ref.call(lambda reply: GetStatus(run_id, reply))``.

        Returns:
          The value the actor passed to :meth:`ReplySlot.reply`.

        Raises:
          ActorStopped: if the actor stopped before replying; never hangs on a
            dead actor.
          Exception: whatever the actor passed to :meth:`ReplySlot.fail`.

        **Cancellation:** blocks while the inbox is full and then until the
        reply. The caller owns the timeout (wrap in :func:`trio.fail_after`);
        giving up is safe, and the actor never notices.

        Typing: mypy cannot infer ``T`` through a lambda, so annotate the
        result (``status: Status = await ref.call(...)``); the annotation is
        checked against the slot type of the message.
        """
        mailbox = self._mailbox
        if not mailbox.accepting:
            raise mailbox.stopped_error()
        slot = ReplySlot[T]()
        message = make_message(slot)
        # Registered before sending: the actor may take, handle and crash on the
        # message inside send()'s own checkpoint, before we could register it.
        mailbox.pending.add(slot)
        try:
            try:
                await mailbox.send.send(message)
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                raise mailbox.stopped_error()
            return await slot.wait()
        finally:
            mailbox.pending.discard(slot)

    def close(self) -> None:
        """Close the actor's inbox: no new messages; queued ones are still served.

        The actor exits once it has drained its inbox. Idempotent.
        """
        self._mailbox.close()

    async def wait_stopped(self) -> None:
        """Wait until the actor has exited and failed its pending requests.

        **Cancellation:** only the wait is cancelled; the actor is unaffected.
        """
        await self._mailbox.stopped.wait()
