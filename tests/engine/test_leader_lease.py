"""The leader lease keeper (flwd/engine/_leader.py) on trio's mock clock, against a lease
table in memory with the Core DB's rule (one holder until its expiry; the database's
clock is the mock clock): a holder whose renewals hang — a partition, the database
gone — stops leading at its own deadline, before the row lapses; another holder takes
over once it has, within the lease and a third; leaders never overlap; a holder that
stops lets the lease go at once."""

from __future__ import annotations

import threading

import pytest
import trio
import trio.testing

from flwd.engine._leader import RENEWALS, SAFE_PART, LeaderLease

TTL = 9.0


class LeaseTable:
    """The ``leases`` rule of flwd/store/_leases.py, in memory, on the mock clock."""

    def __init__(self, clock: trio.testing.MockClock) -> None:
        self.clock = clock
        self.row: tuple[str, int, float] | None = None  # holder, epoch, expires_at
        self.lock = threading.Lock()
        #: Holders whose calls hang (cut off from the database) until released.
        self.cut: set[str] = set()
        self.release_all = threading.Event()

    def lease_take(self, name: str, holder: str, ttl: float) -> int | None:
        if holder in self.cut:
            self.release_all.wait(30)  # the request never comes back (abandoned)
            return None
        with self.lock:
            now = self.clock.current_time()
            if self.row is None:
                self.row = (holder, 1, now + ttl)
                return 1
            current, epoch, expires = self.row
            if current == holder or expires <= now:
                epoch = epoch if current == holder and expires > now else epoch + 1
                self.row = (holder, epoch, now + ttl)
                return epoch
            return None

    def lease_release(self, name: str, holder: str) -> bool:
        with self.lock:
            if self.row is not None and self.row[0] == holder:
                self.row = (holder, self.row[1], self.clock.current_time() - 1)
                return True
            return False


@pytest.fixture
def clock() -> trio.testing.MockClock:
    # Jumps only after 0.1 s of real idleness: a renewal's thread (microseconds) is
    # not overtaken by the virtual clock.
    return trio.testing.MockClock(autojump_threshold=0.1)


class Watch:
    """Every gain and loss of the leases, and an event for each (name, leading)."""

    def __init__(self) -> None:
        self.log: list[tuple[float, str, bool]] = []
        self.events: dict[tuple[str, bool], trio.Event] = {}

    def event(self, name: str, leading: bool) -> trio.Event:
        return self.events.setdefault((name, leading), trio.Event())

    def leases(self, table: LeaseTable, *names: str) -> list[LeaderLease]:
        made = []
        for name in names:
            lease = LeaderLease(table, "scheduler:/ws", ttl=TTL,  # type: ignore[arg-type]
                                holder=name)

            def changed(lease: LeaderLease = lease, name: str = name) -> None:
                self.log.append((trio.current_time(), name, lease.leading))
                self.event(name, lease.leading).set()

            lease.on_change = changed
            made.append(lease)
        return made


def test_a_cut_off_leader_stops_at_its_deadline_and_another_takes_over(
        clock: trio.testing.MockClock) -> None:
    watch = Watch()

    async def main() -> None:
        table = LeaseTable(clock)
        a, b = watch.leases(table, "a", "b")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(a.run)
            await watch.event("a", True).wait()
            nursery.start_soon(b.run)
            await trio.sleep_until(30)
            assert a.leading and not b.leading  # renewed all along
            table.cut.add("a")  # a partition: a's renewals never come back
            cut_at = trio.current_time()
            await watch.event("b", True).wait()
            assert trio.current_time() - cut_at <= TTL + TTL / RENEWALS + 1
            assert a.at_start and not b.at_start  # b took over: no @reboot for it
            nursery.cancel_scope.cancel()
        table.release_all.set()

    trio.run(main, clock=clock)
    changes = [(name, leading) for _, name, leading in watch.log]
    assert changes == [("a", True), ("a", False), ("b", True)]
    lost = next(at for at, name, leading in watch.log if name == "a" and not leading)
    gained = next(at for at, name, leading in watch.log if name == "b" and leading)
    assert gained > lost  # never two leaders at once
    # a stopped by its own deadline: at most SAFE_PART of the lease after its last
    # renewal was sent (renewals go every TTL / RENEWALS).
    assert lost - 30 <= TTL / RENEWALS + TTL * SAFE_PART + 1


def test_a_leader_that_stops_lets_the_lease_go_at_once(clock: trio.testing.MockClock
                                                      ) -> None:
    watch = Watch()

    async def main() -> None:
        table = LeaseTable(clock)
        a, b = watch.leases(table, "a", "b")
        async with trio.open_nursery() as outer:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(a.run)
                await watch.event("a", True).wait()
                outer.start_soon(b.run)
                await trio.sleep_until(20)
                assert not b.leading
                stopped_at = trio.current_time()
                nursery.cancel_scope.cancel()
            await watch.event("b", True).wait()
            # At b's next attempt, not at the lease's expiry.
            assert trio.current_time() - stopped_at <= TTL / RENEWALS + 1
            outer.cancel_scope.cancel()

    trio.run(main, clock=clock)
