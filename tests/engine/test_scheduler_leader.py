"""Several schedulers on one Core DB (tests/engine/scheduler_host.py's, shared): only the
leader fires; a hand-over goes on from the Core DB's watermarks with no tick fired twice
or lost; a leader whose lease runs out stops before its next start; a follower still
fires by hand. Plus the lease's timing (``LeaseTerm``, sans-IO)."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import trio

from flwd.engine import FireNow, Scheduler
from flwd.engine._leader import RENEWALS, SAFE_PART, LeaseTerm
from tests.engine.scheduler_host import FakeHost, FakeWall, advance, make, utc

T0 = utc(2027, 5, 3, 8, 0, 30)
MINUTE = 60.0


class FakeLeader:
    """A lease a test hands over by hand."""

    def __init__(self, leading: bool = False, *, at_start: bool = True) -> None:
        self._leading = leading
        self.gained = 1 if leading else 0
        self.at_start = at_start
        self.on_change: Callable[[], None] | None = None

    @property
    def leading(self) -> bool:
        return self._leading

    def set(self, leading: bool) -> None:
        if leading and not self._leading:
            self.gained += 1
        self._leading = leading
        if self.on_change is not None:
            self.on_change()


@asynccontextmanager
async def replicas(host: FakeHost, clock: FakeWall, *leaders: FakeLeader
                   ) -> AsyncIterator[list[Scheduler]]:
    schedulers = [Scheduler(host, clock, leader) for leader in leaders]
    async with trio.open_nursery() as nursery:
        for scheduler in schedulers:
            await nursery.start(scheduler.run)
        yield schedulers
        nursery.cancel_scope.cancel()


def minutes(host: FakeHost) -> list[str]:
    return [text[11:16] for text in host.fire_times("tick")]


async def test_only_the_leader_fires_and_a_hand_over_fires_each_tick_once(autojump_clock
                                                                         ) -> None:
    clock = FakeWall(T0)
    a, b, c = FakeLeader(True), FakeLeader(), FakeLeader()
    async with trio.open_nursery() as nursery:
        host = FakeHost(nursery, clock, make("tick", "* * * * *"))
        async with replicas(host, clock, a, b, c):
            await advance(5 * MINUTE)
            a.set(False)  # a's lease lapsed (it died, or lost the Core DB)...
            await advance(MINUTE + 20)
            b.set(True)  # ...and b took it over later: the minute between is fired late
            await advance(5 * MINUTE)
            b.set(False)
            a.set(True)  # a leads again: what it knew is stale, b fired meanwhile
            await advance(5 * MINUTE)
        nursery.cancel_scope.cancel()
    fired = minutes(host)
    assert fired == [f"08:{minute:02d}" for minute in range(1, 17)], fired
    assert host.observer.fires["duplicate"] == 0  # not even a refused second attempt
    assert host.of_type("schedule.skip") == []


async def test_a_follower_fires_nothing_but_a_manual_fire(autojump_clock) -> None:
    clock = FakeWall(T0)
    follower = FakeLeader()
    async with trio.open_nursery() as nursery:
        host = FakeHost(nursery, clock, make("tick", "* * * * *"))
        async with replicas(host, clock, follower) as (scheduler,):
            await advance(5 * MINUTE)
            assert host.started() == []
            assert scheduler._inbox is not None
            run = await scheduler._inbox.ref.call(lambda reply: FireNow("tick", reply))
        nursery.cancel_scope.cancel()
    (started,) = host.started()
    assert started.row.id == run.id and started.detail["manual"] is True


async def test_reboot_fires_when_a_process_leads_from_its_start_not_on_a_takeover(
        autojump_clock) -> None:
    clock = FakeWall(T0)
    starter, later = FakeLeader(at_start=True), FakeLeader(at_start=False)
    async with trio.open_nursery() as nursery:
        host = FakeHost(nursery, clock, make("boot", "@reboot"))
        async with replicas(host, clock, starter, later):
            await advance(MINUTE)
            assert host.started() == []  # nobody leads yet
            starter.set(True)  # the cluster's start: its first leader fires @reboot
            await advance(MINUTE)
            starter.set(False)
            later.set(True)  # a takeover later is no start
            await advance(MINUTE)
            later.set(False)
            starter.set(True)  # nor is leading again
            await advance(MINUTE)
        nursery.cancel_scope.cancel()
    assert len(host.started("boot")) == 1


async def test_a_leader_whose_lease_ran_out_mid_pass_stops_before_the_next_start(
        autojump_clock) -> None:
    clock = FakeWall(T0)
    leader = FakeLeader(True)
    async with trio.open_nursery() as nursery:
        host = FakeHost(nursery, clock, make("tick", "* * * * *", overlap="allow"),
                        make("tock", "* * * * *", overlap="allow"))
        started: list[str] = []
        real_start = host.start

        async def start_then_lapse(schedule, trigger):  # type: ignore[no-untyped-def]
            row = await real_start(schedule, trigger)
            started.append(schedule.name)
            leader._leading = False  # the deadline passed while this start was under way
            return row

        host.start = start_then_lapse  # type: ignore[method-assign]
        async with replicas(host, clock, leader):
            await advance(MINUTE)
        nursery.cancel_scope.cancel()
    assert started == ["tick"]  # tock's fire is left after the watermark, for the next leader
    assert "tock" not in host.saved or host.saved["tock"].last_outcome is None


def test_the_lease_term_ends_before_the_row_expires_and_renews_in_time() -> None:
    term = LeaseTerm(10.0)
    assert not term.leading(0.0) and term.until == -math.inf
    assert term.give_up_at(0.0) == 10.0 / RENEWALS  # not held: one period per attempt
    term.granted(100.0)  # sent at 100: the row expires at ≥ 110 on the database's clock
    assert term.leading(100.0 + 10.0 * SAFE_PART - 0.001)
    assert not term.leading(100.0 + 10.0 * SAFE_PART)
    assert term.next_attempt(100.0) == 100.0 + 10.0 / RENEWALS < term.until  # renewed in time
    assert term.give_up_at(101.0) == term.until  # a renewal hanging past it loses the lease
    term.refused()
    assert not term.leading(101.0)


async def test_a_resume_written_through_another_server_is_seen_within_a_second(
        autojump_clock) -> None:
    from dataclasses import replace

    from flwd.store import ScheduleState

    clock = FakeWall(T0)
    leader = FakeLeader(True)
    async with trio.open_nursery() as nursery:
        host = FakeHost(nursery, clock, make("tick", "@every 10s"))
        async with replicas(host, clock, leader):
            await advance(2 * MINUTE)
            host.saved["tick"] = ScheduleState("tick", host.saved["tick"].watermark,
                                               paused=True)  # no poke: another server
            await advance(5 * MINUTE + 7)  # between two of the paused lane's passes
            host.saved["tick"] = replace(host.saved["tick"], paused=False)
            resumed = clock.now()
            await advance(2 * MINUTE)
        nursery.cancel_scope.cancel()
    fired = [host.fire_time(run) for run in host.started("tick")]
    # The first fire after the resume starts on time, not up to a RECHECK later (its
    # fires meanwhile skipped as paused).
    assert min(at for at in fired if at > resumed) <= resumed + 10


async def test_a_resumed_schedule_fires_at_its_next_time(autojump_clock) -> None:
    # One server (no lease): the resume pokes the scheduler; the fire after it is due at
    # its own time — it used to wait a RECHECK (30 s) behind the skips it recorded.
    from dataclasses import replace

    from flwd.engine import Poke
    from flwd.store import ScheduleState

    clock = FakeWall(T0)
    async with trio.open_nursery() as nursery:
        host = FakeHost(nursery, clock, make("tick", "@every 2s"))
        scheduler = Scheduler(host, clock)
        await nursery.start(scheduler.run)
        await advance(10)
        host.saved["tick"] = ScheduleState("tick", host.saved["tick"].watermark, paused=True)
        assert scheduler._inbox is not None
        await scheduler._inbox.ref.cast(Poke())
        await advance(75)  # its last skips recorded 15 s ago: some to record now
        host.saved["tick"] = replace(host.saved["tick"], paused=False)
        resumed = clock.now()
        await scheduler._inbox.ref.cast(Poke())
        await advance(10)
        nursery.cancel_scope.cancel()
    fired = [host.fire_time(run) for run in host.started("tick")]
    assert min(at for at in fired if at > resumed) <= resumed + 2
