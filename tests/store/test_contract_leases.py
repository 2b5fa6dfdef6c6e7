"""The Core DB contract for leases (every backend, through the Store port only): one holder
at a time, renewed by its holder, taken over once lapsed (by the database's clock), the
epoch counting hand-overs, and a release that lets another take it at once."""

from __future__ import annotations

import threading

from flwd.store import Store
from tests.conftest import wait_until

from .conftest import Backend


def test_a_store_without_a_database_holds_no_lease(backend: Backend) -> None:
    store = backend.fresh()
    assert store.lease_read("scheduler") is None
    assert store.lease_release("scheduler", "a") is False
    assert backend.footprint(store) == []


def test_one_holder_at_a_time_and_its_renewals_keep_the_epoch(backend: Backend) -> None:
    first = backend.fresh()
    second = backend.same(first)
    assert first.lease_take("scheduler", "a", 30) == 1
    assert second.lease_take("scheduler", "b", 30) is None  # a's has not lapsed
    assert first.lease_take("scheduler", "a", 30) == 1  # a renewal: the same epoch
    lease = second.lease_read("scheduler")
    assert lease is not None and (lease.holder, lease.epoch) == ("a", 1)
    assert 25 < lease.remaining <= 30
    assert first.lease_take("other", "b", 30) == 1  # leases are by name


def test_a_lapsed_lease_is_taken_over_with_the_next_epoch(backend: Backend) -> None:
    first = backend.fresh()
    second = backend.same(first)
    assert first.lease_take("scheduler", "a", 0.2) == 1
    wait_until(lambda: (lease := second.lease_read("scheduler")) is not None
               and lease.remaining <= 0, "the lease to lapse", timeout=30)
    assert second.lease_take("scheduler", "b", 30) == 2
    assert first.lease_take("scheduler", "a", 30) is None  # a cannot renew what it lost


def test_a_release_lets_another_take_it_at_once(backend: Backend) -> None:
    first = backend.fresh()
    second = backend.same(first)
    assert first.lease_take("scheduler", "a", 300) == 1
    assert second.lease_release("scheduler", "b") is False  # not b's to release
    assert first.lease_release("scheduler", "a") is True
    assert second.lease_take("scheduler", "b", 300) == 2


def test_holders_racing_for_a_free_lease_get_it_once(store: Store, backend: Backend) -> None:
    store.migrate()
    stores = [backend.same(store) for _ in range(6)]
    barrier = threading.Barrier(len(stores))
    won: list[str] = []

    def race(index: int, mine: Store) -> None:
        barrier.wait()
        if mine.lease_take("scheduler", f"holder-{index}", 30) is not None:
            won.append(f"holder-{index}")

    threads = [threading.Thread(target=race, args=(index, mine))
               for index, mine in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(won) == 1
    lease = store.lease_read("scheduler")
    assert lease is not None and lease.holder == won[0]
