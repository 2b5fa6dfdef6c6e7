"""The process-wide cap on open event streams (sans-IO)."""

from __future__ import annotations

import gc
from collections.abc import AsyncGenerator

import pytest

from flwd.http._streams import StreamSlots


def test_slots_refuse_beyond_the_limit_and_come_back_once() -> None:
    slots = StreamSlots(2)
    first, second = slots.try_take(), slots.try_take()
    assert first is not None and second is not None
    assert slots.try_take() is None
    first.release()
    first.release()  # idempotent: a body's finally and its finalizer may both run
    assert slots.in_use == 1
    assert slots.try_take() is not None
    assert slots.try_take() is None


def test_a_body_that_never_started_gives_its_slot_back_when_collected() -> None:
    slots = StreamSlots(1)

    async def body() -> AsyncGenerator[bytes, None]:
        try:
            yield b"never sent"
        finally:  # never runs: the generator never started
            raise AssertionError("unreachable")

    slot = slots.try_take()
    assert slot is not None
    stream = body()
    slot.release_with(stream)
    del stream  # the client left before the headers were sent
    gc.collect()
    assert slots.in_use == 0


def test_a_cap_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        StreamSlots(0)
