"""The scheduler actor on trio's autojump clock with a fake wall clock: exact fires across
daylight-saving changes, each misfire mode after a downtime and after a suspend, each
overlap mode with a slow job, jitter, @reboot, pause, a fire racing a config reload, and
a crash between a fire and its record (see tests/engine/scheduler_host.py)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio

from flwd.engine import QUEUE_LIMIT, RECHECK, FireNow, Poke, Scheduler
from flwd.errors import ScheduleNotFound
from flwd.schedule import format_fire, jitter_for
from flwd.store import ScheduleState
from tests.engine.scheduler_host import FakeHost, FakeWall, advance, make, utc, wall

HOUR = 3600.0
MINUTE = 60.0


@asynccontextmanager
async def running(host: FakeHost, clock: FakeWall) -> AsyncIterator[Scheduler]:
    """A scheduler on ``host`` for the duration of the block (then stopped: a downtime)."""
    scheduler = Scheduler(host, clock)
    async with trio.open_nursery() as nursery:
        await nursery.start(scheduler.run)
        yield scheduler
        nursery.cancel_scope.cancel()


# -- daylight saving time, end to end through the actor --------------------------------------
@pytest.mark.parametrize(("zone", "start", "cron", "expected"), [
    ("Europe/Berlin", (2027, 3, 27, 12), "30 2 * * *",
     ["2027-03-28T03:00:00+02:00", "2027-03-29T02:30:00+02:00"]),
    ("Europe/Berlin", (2027, 10, 30, 12), "30 2 * * *",
     ["2027-10-31T02:30:00+02:00", "2027-11-01T02:30:00+01:00"]),
    ("America/New_York", (2027, 3, 13, 12), "30 2 * * *",
     ["2027-03-14T03:00:00-04:00", "2027-03-15T02:30:00-04:00"]),
    ("America/New_York", (2027, 11, 6, 12), "30 1 * * *",
     ["2027-11-07T01:30:00-04:00", "2027-11-08T01:30:00-05:00"]),
])
async def test_daylight_saving_changes_fire_once(autojump_clock, zone, start, cron, expected
                                                 ) -> None:
    clock = FakeWall(wall(zone, *start))
    async with trio.open_nursery() as nursery:
        host = FakeHost(nursery, clock, make("nightly", cron, zone))
        async with running(host, clock):
            await advance(2 * 24 * HOUR)
        nursery.cancel_scope.cancel()
    assert host.fire_times("nightly", zone) == expected
    assert [event["fire_at"] for event in host.of_type("schedule.fire")] == [
        format_fire(host.fire_time(run)) for run in host.started()]
    assert all(lag < RECHECK for lag in host.observer.lags) and max(host.observer.lags) == 0


async def test_an_hourly_schedule_fires_once_per_real_hour_through_fall_back(autojump_clock
                                                                             ) -> None:
    zone = "Europe/Berlin"
    clock = FakeWall(wall(zone, 2027, 10, 30, 23, 30))
    async with trio.open_nursery() as nursery:
        host = FakeHost(nursery, clock, make("hourly", "@hourly", zone))
        async with running(host, clock):
            await advance(6 * HOUR)
        nursery.cancel_scope.cancel()
    assert [text[11:] for text in host.fire_times("hourly", zone)] == [
        "00:00:00+02:00", "01:00:00+02:00", "02:00:00+02:00", "02:00:00+01:00",
        "03:00:00+01:00", "04:00:00+01:00"]


# -- misfire: after a 3-hour downtime, and after a 3-hour suspend ----------------------------
T0 = utc(2027, 5, 3, 8, 0, 30)
EXPECTED_AFTER_GAP = {
    # Down from 08:15:30 to 11:15:30: 18 fires missed (08:20 … 11:10).
    "skip": ([], 18),
    "run_once": (["11:10"], 17),
    "all": ([f"{hour:02d}:{minute:02d}" for hour, minute in
             [(8, 20), (8, 30), (8, 40), (8, 50)] + [(h, m) for h in (9, 10)
                                                      for m in range(0, 60, 10)]
             + [(11, 0), (11, 10)]], 0),
}


def _check_gap(host: FakeHost, mode: str) -> None:
    runs, skipped = EXPECTED_AFTER_GAP[mode]
    fired = [text[11:16] for text in host.fire_times("tick")]
    assert fired == ["08:10", *runs, "11:20"], fired
    skips = host.of_type("schedule.skip")
    assert sum(skip.get("count", 1) for skip in skips) == skipped
    assert all(skip["reason"] == "misfire" for skip in skips)
    (catchup,) = host.of_type("schedule.catchup")
    assert (catchup["missed"], catchup["started"], catchup["misfire"]) == (18, len(runs), mode)
    assert catchup["first_fire_at"] == "2027-05-03T08:20:00Z"
    assert catchup["last_fire_at"] == "2027-05-03T11:10:00Z"
    catchups = [run for run in host.started("tick") if run.detail.get("catchup")]
    assert len(catchups) == len(runs)
    assert host.observer.fires["catchup"] == len(runs)
    assert host.observer.fires["skipped_misfire"] == skipped


@pytest.mark.parametrize("mode", ["skip", "run_once", "all"])
async def test_misfire_after_a_downtime(autojump_clock, mode) -> None:
    clock = FakeWall(T0)
    async with trio.open_nursery() as nursery:
        host = FakeHost(nursery, clock, make("tick", "*/10 * * * *", misfire=mode))
        async with running(host, clock):
            await advance(15 * MINUTE)  # 08:10 fires; stopped at 08:15:30
        assert host.saved["tick"].watermark == utc(2027, 5, 3, 8, 10)
        await advance(3 * HOUR)  # nobody watching
        async with running(host, clock):
            await advance(5 * MINUTE)  # 11:20:30
        nursery.cancel_scope.cancel()
    assert host.of_type("schedule.catchup")[0]["reason"] == "flwd was not running"
    _check_gap(host, mode)


@pytest.mark.parametrize("mode", ["skip", "run_once", "all"])
async def test_misfire_after_a_suspend(autojump_clock, mode) -> None:
    clock = FakeWall(T0)
    async with trio.open_nursery() as nursery:
        host = FakeHost(nursery, clock, make("tick", "*/10 * * * *", misfire=mode))
        async with running(host, clock):
            await advance(15 * MINUTE)
            clock.suspend(3 * HOUR)  # the laptop sleeps; trio's clock does not move
            await advance(5 * MINUTE)
        nursery.cancel_scope.cancel()
    assert host.of_type("schedule.catchup")[0]["reason"] == "the wall clock jumped (suspend?)"
    _check_gap(host, mode)
    # The jump was noticed within RECHECK seconds of the wake.
    (noticed,) = [at for kind, _, at in host.journaled if kind == "schedule.catchup"]
    assert noticed - utc(2027, 5, 3, 11, 15, 30) <= RECHECK


async def test_missed_fires_beyond_the_catchup_window_are_skipped(autojump_clock) -> None:
    clock = FakeWall(T0)
    async with trio.open_nursery() as nursery:
        host = FakeHost(nursery, clock,
                        make("tick", "*/10 * * * *", misfire="all", catchup_window=HOUR))
        async with running(host, clock):
            await advance(15 * MINUTE)
            clock.suspend(3 * HOUR)
            await advance(5 * MINUTE)
        nursery.cancel_scope.cancel()
    fired = [text[11:16] for text in host.fire_times("tick")]
    assert fired == ["08:10", "10:20", "10:30", "10:40", "10:50", "11:00", "11:10", "11:20"]
    (window,) = host.of_type("schedule.skip")
    assert (window["reason"], window["count"]) == ("outside_catchup_window", 12)


# -- overlap with a slow job: runs last 25 minutes, the schedule fires every 10 ---------------
async def _overlap(mode: str, *, tells_ends: bool = True) -> FakeHost:
    clock = FakeWall(utc(2027, 5, 3, 8, 5))
    async with trio.open_nursery() as nursery:
        host = FakeHost(nursery, clock, make("slow", "*/10 * * * *", overlap=mode),
                        duration=25 * MINUTE)
        host.tells_ends = tells_ends
        async with running(host, clock):
            await advance(HOUR)  # fires 08:10 … 09:00
        nursery.cancel_scope.cancel()
    return host


def _starts(host: FakeHost) -> list[tuple[str, str]]:
    return [(format_fire(host.fire_time(run))[11:16],
             format_fire(run.row.created_at)[11:16]) for run in host.started()]


async def test_overlap_skip(autojump_clock) -> None:
    host = await _overlap("skip")
    assert _starts(host) == [("08:10", "08:10"), ("08:40", "08:40")]
    skips = host.of_type("schedule.skip")
    assert [(skip["fire_at"][11:16], skip["reason"]) for skip in skips] == [
        ("08:20", "overlap"), ("08:30", "overlap"), ("08:50", "overlap"), ("09:00", "overlap")]
    assert skips[0]["running"] == host.started()[0].row.id
    assert host.observer.fires["skipped_overlap"] == 4


async def test_overlap_queue_starts_each_fire_when_the_previous_ends(autojump_clock) -> None:
    host = await _overlap("queue")
    # Each run starts the moment the one before it ends (08:35, 09:00); none is lost.
    assert _starts(host) == [("08:10", "08:10"), ("08:20", "08:35"), ("08:30", "09:00")]
    assert not host.of_type("schedule.skip")
    lags = sorted(host.observer.lags)
    assert lags == [0.0, 15 * MINUTE, 30 * MINUTE]


async def test_overlap_queue_is_bounded(autojump_clock) -> None:
    clock = FakeWall(utc(2027, 5, 3, 8, 0, 30))
    async with trio.open_nursery() as nursery:
        host = FakeHost(nursery, clock, make("slow", "@every 60s", overlap="queue"),
                        duration=HOUR)
        async with running(host, clock):
            await advance(20 * MINUTE)
        nursery.cancel_scope.cancel()
    assert len(host.started()) == 1
    full = host.of_type("schedule.skip")
    assert {skip["reason"] for skip in full} == {"queue_full"}
    assert len(full) == 20 - 1 - QUEUE_LIMIT


async def test_overlap_cancel_previous(autojump_clock) -> None:
    host = await _overlap("cancel_previous")
    starts = _starts(host)
    assert starts == [(f"{h}:{m}", f"{h}:{m}") for h, m in
                      [("08", "10"), ("08", "20"), ("08", "30"), ("08", "40"), ("08", "50"),
                       ("09", "00")]]
    runs = host.started()
    assert [run.canceled is not None for run in runs] == [True] * 5 + [False]
    assert "overlap: cancel_previous" in str(runs[0].canceled)
    assert runs[0].ended_at == runs[1].row.created_at


async def test_overlap_in_a_cluster_waits_for_runs_it_is_not_told_the_end_of(
        autojump_clock) -> None:
    # In a cluster, another replica may execute the runs the leader starts: their ends
    # never reach its hub. Overlap still holds (the Core DB says they are live), and a
    # queued fire starts within the end poll (2 s) of the previous run's end.
    skip = await _overlap("skip", tells_ends=False)
    assert _starts(skip) == [("08:10", "08:10"), ("08:40", "08:40")]
    queue = await _overlap("queue", tells_ends=False)
    assert [fire for fire, _ in _starts(queue)] == ["08:10", "08:20", "08:30"]
    runs = queue.started()
    for earlier, later in itertools.pairwise(runs):
        assert earlier.ended_at is not None
        assert 0 <= later.row.created_at - earlier.ended_at <= 2.0


async def test_overlap_allow(autojump_clock) -> None:
    host = await _overlap("allow")
    assert [fire for fire, _ in _starts(host)] == ["08:10", "08:20", "08:30", "08:40", "08:50",
                                                  "09:00"]
    assert not any(run.canceled for run in host.started())


# -- jitter, @reboot, pause, manual fires, refusals --------------------------------------------
async def test_jitter_delays_each_fire_within_its_bound(autojump_clock) -> None:
    clock = FakeWall(utc(2027, 5, 3, 8, 0, 30))
    async with trio.open_nursery() as nursery:
        host = FakeHost(nursery, clock, make("spread", "*/10 * * * *", jitter=5 * MINUTE))
        async with running(host, clock):
            await advance(4 * HOUR + 5 * MINUTE)  # the 12:00 fire is due by 12:05 at most
        nursery.cancel_scope.cancel()
    runs = host.started()
    assert len(runs) == 24
    delays = [run.row.created_at - host.fire_time(run) for run in runs]
    assert all(0 <= delay < 5 * MINUTE for delay in delays)
    assert delays == pytest.approx([jitter_for("spread", host.fire_time(run), 5 * MINUTE)
                                   for run in runs])
    assert len(set(delays)) == 24


async def test_reboot_fires_once_per_start(autojump_clock) -> None:
    clock = FakeWall(T0)
    async with trio.open_nursery() as nursery:
        host = FakeHost(nursery, clock, make("boot", "@reboot"), make("off", "@reboot",
                                                                     enabled=False))
        async with running(host, clock):
            await advance(HOUR)
        assert len(host.started("boot")) == 1
        async with running(host, clock):
            await advance(HOUR)
        host.saved["boot"] = ScheduleState("boot", paused=True)
        async with running(host, clock):
            await advance(HOUR)
        nursery.cancel_scope.cancel()
    assert [format_fire(host.fire_time(run)) for run in host.started("boot")] == [
        "2027-05-03T08:00:30Z", "2027-05-03T09:00:30Z"]
    assert host.started("off") == []


async def test_a_paused_schedule_skips_and_resumes_without_a_burst(autojump_clock) -> None:
    clock = FakeWall(T0)
    async with trio.open_nursery() as nursery:
        host = FakeHost(nursery, clock, make("tick", "*/10 * * * *"))
        async with running(host, clock) as scheduler:
            await advance(15 * MINUTE)
            host.saved["tick"] = ScheduleState("tick", host.saved["tick"].watermark, paused=True)
            await advance(HOUR)
            host.saved["tick"] = replace_paused(host.saved["tick"], False)
            assert scheduler.lanes  # resumed through a poke, as Engine.pause_schedule does
            await (await _ref(scheduler)).cast(Poke())
            await advance(10 * MINUTE)
        nursery.cancel_scope.cancel()
    assert [text[11:16] for text in host.fire_times("tick")] == ["08:10", "09:20"]
    skipped = host.of_type("schedule.skip")
    assert {skip["reason"] for skip in skipped} == {"paused"}
    assert sum(skip.get("count", 1) for skip in skipped) == 6  # 08:20 … 09:10


async def test_a_manual_fire_starts_now_and_is_marked(autojump_clock) -> None:
    clock = FakeWall(T0)
    async with trio.open_nursery() as nursery:
        host = FakeHost(nursery, clock, make("nightly", "30 2 * * *"))
        async with running(host, clock) as scheduler:
            ref = await _ref(scheduler)
            run = await ref.call(lambda reply: FireNow("nightly", reply))
            with pytest.raises(ScheduleNotFound):
                await ref.call(lambda reply: FireNow("nope", reply))
            await advance(MINUTE)
        nursery.cancel_scope.cancel()
    (started,) = host.started()
    assert started.row.id == run.id
    assert started.detail == {"kind": "schedule", "name": "nightly",
                              "fire_at": "2027-05-03T08:00:30Z", "manual": True}
    assert host.of_type("schedule.fire")[0]["manual"] is True
    assert host.saved["nightly"].last_outcome == "manual"


async def test_a_refused_fire_is_a_skip_with_its_error(autojump_clock) -> None:
    clock = FakeWall(T0)
    async with trio.open_nursery() as nursery:
        host = FakeHost(nursery, clock, make("bad", "*/10 * * * *"))
        host.refuse.add("bad")
        async with running(host, clock):
            await advance(15 * MINUTE)
        nursery.cancel_scope.cancel()
    (skip,) = host.of_type("schedule.skip")
    assert (skip["reason"], skip["code"]) == ("refused", "E_ARGS")
    assert host.saved["bad"].last_outcome == "skipped:refused"


# -- races and crashes --------------------------------------------------------------------------
async def test_a_fire_racing_a_config_reload_neither_doubles_nor_drops(autojump_clock) -> None:
    clock = FakeWall(utc(2027, 5, 3, 8, 0, 30))
    async with trio.open_nursery() as nursery:
        # Overlap allowed: the held fire's run is still live when the next is due.
        host = FakeHost(nursery, clock, make("tick", "@every 60s", overlap="allow"))
        host.hold = trio.Event()
        async with running(host, clock) as scheduler:
            await host.holding.wait()  # the 08:01 fire is being started …
            # … when the config is reloaded (an equal schedule, a new catalog object) and
            # the scheduler is poked to look again, twice.
            host.schedules = [make("tick", "@every 60s", overlap="allow")]
            ref = await _ref(scheduler)
            ref.cast_nowait(Poke())
            ref.cast_nowait(Poke())
            await advance(90)
            hold, host.hold = host.hold, None
            hold.set()
            await advance(3 * MINUTE + 5)
            # A reload that changes the schedule takes effect from the next fire on.
            host.schedules = [make("tick", "@every 120s", overlap="allow")]
            await advance(5 * MINUTE)
        nursery.cancel_scope.cancel()
    fired = [text[11:19] for text in host.fire_times("tick")]
    assert fired == ["08:01:00", "08:02:00", "08:03:00", "08:04:00", "08:05:00",
                     "08:06:00", "08:08:00", "08:10:00"]
    assert len(host.of_type("schedule.fire")) == len(fired)


async def test_a_crash_between_the_run_and_the_watermark_starts_no_second_run(autojump_clock
                                                                            ) -> None:
    clock = FakeWall(T0)
    async with trio.open_nursery() as nursery:
        # misfire: skip: a fire whose run was not recorded must not come back as missed.
        host = FakeHost(nursery, clock, make("tick", "*/10 * * * *", misfire="skip"))

        real_record = host.record

        async def crash_on_record(name: str, *, outcome: str | None = None, **rest) -> None:
            if outcome is not None:
                raise ProcessDied  # the run is there, the watermark does not move
            await real_record(name, **rest)

        host.record = crash_on_record  # type: ignore[method-assign]
        with pytest.RaisesGroup(ProcessDied, flatten_subgroups=True):
            async with running(host, clock):
                await advance(15 * MINUTE)
        host.record = real_record  # type: ignore[method-assign]
        assert len(host.started()) == 1 and host.saved["tick"].watermark == T0
        await advance(3 * MINUTE)  # down a while: 08:10 is a missed fire now, but it ran
        async with running(host, clock):
            await advance(MINUTE)
        nursery.cancel_scope.cancel()
    assert [text[11:16] for text in host.fire_times("tick")] == ["08:10"]
    assert len(host.of_type("schedule.fire")) == 1
    assert host.of_type("schedule.skip") == [] and host.of_type("schedule.catchup") == []
    assert host.saved["tick"].watermark == utc(2027, 5, 3, 8, 10)


async def test_a_fire_whose_run_exists_is_counted_not_journaled(autojump_clock) -> None:
    clock = FakeWall(T0)
    async with trio.open_nursery() as nursery:
        host = FakeHost(nursery, clock, make("tick", "*/10 * * * *"))
        async with running(host, clock):
            await advance(15 * MINUTE)
        # The Core DB lost the watermark (an older backup…): the key still guards the fire.
        host.saved["tick"] = ScheduleState("tick", utc(2027, 5, 3, 8, 0))
        async with running(host, clock) as scheduler:
            scheduler.lanes.clear()
            await advance(MINUTE)
        nursery.cancel_scope.cancel()
    assert len(host.started()) == 1 and len(host.of_type("schedule.fire")) == 1


class ProcessDied(BaseException):
    pass


def replace_paused(state: ScheduleState, paused: bool) -> ScheduleState:
    from dataclasses import replace

    return replace(state, paused=paused)


async def _ref(scheduler: Scheduler):
    await trio.lowlevel.checkpoint()
    assert scheduler._inbox is not None
    return scheduler._inbox.ref

