"""The Core DB contract for inbound webhooks' delivery ids (replay protection), through
the Store port only: claim, settle, release, the window, the cap, a lost claim taken
over, and racing claims of one delivery from several threads and stores."""

from __future__ import annotations

import threading

import pytest

from flwd.errors import StorageError
from flwd.store import Store

from .conftest import Backend

T0 = 1_800_000_000.0
HOUR = 3600.0
CLAIM = {"window": 24 * HOUR, "keep": 100, "stale": 120.0}


def test_a_delivery_is_claimed_once_and_answers_its_run(store: Store) -> None:
    first = store.hook_delivery_claim("gh", "d-1", now=T0, **CLAIM)
    assert first.claimed and first.run_id is None
    # Being started: a replay is refused, its run not known yet.
    pending = store.hook_delivery_claim("gh", "d-1", now=T0 + 1, **CLAIM)
    assert not pending.claimed and pending.run_id is None
    store.hook_delivery_settle("gh", "d-1", "run-1")
    replay = store.hook_delivery_claim("gh", "d-1", now=T0 + 2, **CLAIM)
    assert (replay.claimed, replay.run_id) == (False, "run-1")
    # Another hook's delivery of the same id is another delivery.
    assert store.hook_delivery_claim("other", "d-1", now=T0 + 3, **CLAIM).claimed


def test_a_released_delivery_may_come_again(store: Store) -> None:
    assert store.hook_delivery_claim("gh", "d-1", now=T0, **CLAIM).claimed
    store.hook_delivery_release("gh", "d-1")
    assert store.hook_delivery_claim("gh", "d-1", now=T0 + 1, **CLAIM).claimed
    # Release forgets only a delivery that started nothing.
    store.hook_delivery_settle("gh", "d-1", "run-1")
    store.hook_delivery_release("gh", "d-1")
    assert store.hook_delivery_claim("gh", "d-1", now=T0 + 2, **CLAIM).run_id == "run-1"


def test_a_claim_whose_run_never_came_is_taken_over_after_stale(store: Store) -> None:
    assert store.hook_delivery_claim("gh", "d-1", now=T0, **CLAIM).claimed
    assert not store.hook_delivery_claim("gh", "d-1", now=T0 + 119, **CLAIM).claimed
    assert store.hook_delivery_claim("gh", "d-1", now=T0 + 121, **CLAIM).claimed
    # Taken over: the clock restarts for the new claim.
    assert not store.hook_delivery_claim("gh", "d-1", now=T0 + 200, **CLAIM).claimed


def test_deliveries_are_forgotten_after_their_window(store: Store) -> None:
    window = {**CLAIM, "window": HOUR}
    assert store.hook_delivery_claim("gh", "old", now=T0, **window).claimed
    store.hook_delivery_settle("gh", "old", "run-1")
    assert not store.hook_delivery_claim("gh", "old", now=T0 + HOUR - 1, **window).claimed
    assert store.hook_delivery_claim("gh", "new", now=T0 + HOUR + 1, **window).claimed
    assert store.hook_delivery_count("gh") == 1  # "old" was purged by that claim
    assert store.hook_delivery_claim("gh", "old", now=T0 + HOUR + 2, **window).claimed


def test_many_distinct_deliveries_stay_bounded(store: Store) -> None:
    # Each claim is a committed transaction (~10 ms here): 400 show the bound as well
    # as thousands would.
    keep = {**CLAIM, "keep": 50}
    for number in range(400):
        assert store.hook_delivery_claim("gh", f"d-{number}", now=T0 + number, **keep).claimed
    assert store.hook_delivery_count("gh") == 50
    # The newest are the ones kept.
    assert not store.hook_delivery_claim("gh", "d-399", now=T0 + 401, **keep).claimed
    assert store.hook_delivery_claim("gh", "d-0", now=T0 + 402, **keep).claimed
    # A removed hook's rows go after the longest window (30 days) whatever it said.
    assert store.hook_delivery_claim("gone", "x", now=T0, **CLAIM).claimed
    store.hook_delivery_claim("gh", "later", now=T0 + 31 * 24 * HOUR, **keep)
    assert store.hook_delivery_count("gone") == 0


def test_racing_claims_of_one_delivery_claim_it_once(backend: Backend) -> None:
    store = backend.fresh()
    store.migrate()
    results: list[bool] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def claim(index: int) -> None:
        mine = backend.same(store) if index % 2 else store  # as another process would
        start.wait(timeout=30)
        outcome = mine.hook_delivery_claim("gh", "same", now=T0, **CLAIM)
        with lock:
            results.append(outcome.claimed)

    threads = [threading.Thread(target=claim, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(results) == [False] * 7 + [True]


def test_reads_without_a_database_are_empty_and_a_write_that_cannot_be_made_fails(
        backend: Backend) -> None:
    fresh = backend.fresh()
    assert fresh.hook_delivery_count() == 0
    assert backend.footprint(fresh) == []
    with pytest.raises(StorageError):
        backend.unopenable().hook_delivery_claim("gh", "d", now=T0, **CLAIM)
    with pytest.raises(ValueError):
        fresh.hook_delivery_claim("gh", "d", now=T0, **{**CLAIM, "keep": 0})
