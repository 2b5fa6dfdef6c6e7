"""One-shot reply slots: how an actor answers a request without awaiting the caller."""

from __future__ import annotations

from typing import Generic, TypeVar

import outcome
import trio

__all__ = ["ReplySlot"]

T = TypeVar("T")


class ReplySlot(Generic[T]):
    """A one-shot place where an actor puts the answer to one request.

    The caller creates the slot (usually through :meth:`ActorRef.call`), puts it
    in the message and waits; the actor completes it with :meth:`reply` or
    :meth:`fail`. Completing is synchronous and never blocks the actor, even if
    the caller has gone away: a caller that gives up just stops waiting.

    A slot completes exactly once; completing it twice is a bug in the actor and
    raises :exc:`RuntimeError`. Only slots made by :meth:`ActorRef.call` are
    failed with :exc:`ActorStopped` when the actor exits unanswered; a slot
    made by hand and sent with ``cast`` is the sender's own business.
    """

    __slots__ = ("_caller_left", "_event", "_result")

    def __init__(self) -> None:
        self._event = trio.Event()
        self._result: outcome.Outcome[T] | None = None
        self._caller_left = False

    @property
    def done(self) -> bool:
        """Whether the slot has been completed."""
        return self._result is not None

    @property
    def caller_left(self) -> bool:
        """Whether the caller stopped waiting (it was cancelled or timed out)."""
        return self._caller_left

    def reply(self, value: T) -> bool:
        """Answer the request with ``value``.

        Returns:
          ``False`` if the caller already left (the value is dropped), else ``True``.

        Raises:
          RuntimeError: if the slot was already completed.
        """
        return self._complete(outcome.Value(value))

    def fail(self, error: Exception) -> bool:
        """Answer the request by making the caller raise ``error``.

        Returns:
          ``False`` if the caller already left, else ``True``.

        Raises:
          RuntimeError: if the slot was already completed.
        """
        return self._complete(outcome.Error(error))

    def _complete(self, result: outcome.Outcome[T]) -> bool:
        if self._result is not None:
            raise RuntimeError("reply slot already completed")
        self._result = result
        self._event.set()
        return not self._caller_left

    def _fail_if_pending(self, error: Exception) -> None:
        # Used by an exiting actor: slots it already answered are left alone.
        if self._result is None:
            self._complete(outcome.Error(error))

    async def wait(self) -> T:
        """Wait for the answer and return it, or raise the error put in the slot.

        A slot has at most one waiter, and ``wait`` may be called only once.

        **Cancellation:** cancelling the wait marks the caller as gone; a later
        :meth:`reply` is then dropped harmlessly.
        """
        try:
            await self._event.wait()
        finally:
            if self._result is None:
                self._caller_left = True
        assert self._result is not None
        return self._result.unwrap()
