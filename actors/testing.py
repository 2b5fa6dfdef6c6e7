"""Helpers for testing code that talks to actors."""

from __future__ import annotations

from typing import Generic, TypeVar

import trio

from ._actor import Actor

__all__ = ["RecordingActor"]

Msg = TypeVar("Msg")


class RecordingActor(Actor[Msg], Generic[Msg]):
    """An actor that records every message it receives, in order.

    Stands in for a real actor when testing the code that sends to it::

        recorder = RecordingActor[Event]("hub")
        ref = await start_actor(nursery, recorder)
        ...
        assert await recorder.wait_for_messages(2) == [first, second]
    """

    # The default matches Actor.inbox_capacity, so backpressure behaves like a real actor's.
    def __init__(self, name: str = "recorder", *, inbox_capacity: int = 16) -> None:
        self.name = name
        self.inbox_capacity = inbox_capacity
        self.messages: list[Msg] = []
        self._changed = trio.Event()

    async def handle(self, message: Msg) -> None:
        self.messages.append(message)
        self._changed.set()
        self._changed = trio.Event()

    async def wait_for_messages(self, count: int) -> list[Msg]:
        """Wait until at least ``count`` messages arrived; return a copy of all of them.

        **Cancellation:** only the wait is cancelled (the caller owns the timeout).
        """
        while len(self.messages) < count:
            await self._changed.wait()
        return list(self.messages)
