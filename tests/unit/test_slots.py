"""The concurrency ledger (sans-IO): FIFO, global and per-job limits, no leaked slot."""

from __future__ import annotations

import pytest

from flwd.engine._slots import SlotBook, Slots


def test_global_limit_grants_in_arrival_order() -> None:
    book = SlotBook(limit=2)
    assert book.request("r1", "a", None) and book.request("r2", "b", None)
    assert not book.request("r3", "c", None) and not book.request("r4", "a", None)
    assert book.position("r4") == 2
    assert book.release("r1") == ["r3"]
    assert book.release("r2") == ["r4"]
    assert set(book.holders) == {"r3", "r4"} and book.queue == []


def test_a_job_at_its_limit_does_not_hold_up_other_jobs() -> None:
    book = SlotBook(limit=None)
    assert book.request("a1", "a", 1)
    assert not book.request("a2", "a", 1)
    assert book.request("b1", "b", None)  # another job overtakes the waiting a2
    assert not book.request("a3", "a", 1)  # and a3 stays behind a2
    assert book.release("b1") == []
    assert book.release("a1") == ["a2"]
    assert book.release("a2") == ["a3"]


def test_withdrawn_waiters_and_releases_never_leak() -> None:
    book = SlotBook(limit=1)
    assert book.request("r1", "a", None)
    assert not book.request("r2", "a", None) and not book.request("r3", "b", None)
    book.withdraw("r2")
    assert book.release("r1") == ["r3"]
    assert book.release("r3") == []
    assert book.holders == {} and book.queue == []
    book.release("unknown")  # idempotent
    assert book.request("r4", "a", None)


def test_holding_releases_on_error() -> None:
    slots = Slots(limit=1)
    assert slots.request("r1", "a", None)
    with pytest.raises(RuntimeError), slots.holding("r1"):
        raise RuntimeError("the run crashed")
    assert slots.book.holders == {}
    assert slots.request("r2", "a", None)
