"""What a schedule owes (flwd.schedule.due, sans-IO): fires after the watermark, missed
fires per misfire mode, the catch-up window, jitter, and skipping a paused stretch."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from flwd.jobs import parse_duration
from flwd.schedule import Schedule, Skip, due, format_fire, parse_at, parse_when, skip_through

HOUR = 3600.0
T0 = datetime(2027, 5, 3, 8, 0, tzinfo=UTC).timestamp()  # a Monday, 08:00 UTC


def every_10_minutes(**options) -> Schedule:
    return Schedule("tick", "job", parse_when("*/10 * * * *", parse_seconds=parse_duration),
                    "UTC", **options)


def times(fires) -> list[str]:
    return [format_fire(fire.at)[11:16] for fire in fires]


def test_a_watching_scheduler_fires_each_due_time_in_order() -> None:
    s = every_10_minutes()
    decided = due(s, T0, T0 + 25 * 60, started_at=T0 - HOUR)
    assert times(decided.fires) == ["08:10", "08:20"]
    assert not any(fire.catchup for fire in decided.fires)
    assert decided.skips == ()
    assert decided.watermark == T0 + 20 * 60
    assert decided.wake == T0 + 30 * 60
    # Handled late (a busy host), a watched fire still fires: it is not a missed one.
    late = due(s, T0, T0 + 10 * 60 + 45, started_at=T0 - HOUR)
    assert times(late.fires) == ["08:10"]


def test_nothing_is_due_before_its_time_and_the_watermark_stays() -> None:
    s = every_10_minutes()
    decided = due(s, T0, T0 + 60, started_at=T0)
    assert decided.fires == () and decided.watermark == T0 and decided.wake == T0 + 600


# After a 3-hour downtime (server stopped at 08:00, started again at 11:00:30):
# 18 fires were missed (08:10 … 11:00).
DOWN_UNTIL = T0 + 3 * HOUR + 30


def test_misfire_skip_after_a_downtime() -> None:
    decided = due(every_10_minutes(misfire="skip"), T0, DOWN_UNTIL, started_at=DOWN_UNTIL)
    assert decided.fires == ()
    assert decided.skips == (Skip("misfire", T0 + 600, T0 + 3 * HOUR, 18),)
    assert decided.watermark == T0 + 3 * HOUR


def test_misfire_run_once_after_a_downtime() -> None:
    decided = due(every_10_minutes(misfire="run_once"), T0, DOWN_UNTIL, started_at=DOWN_UNTIL)
    assert times(decided.fires) == ["11:00"] and decided.fires[0].catchup
    assert decided.skips == (Skip("misfire", T0 + 600, T0 + 3 * HOUR - 600, 17),)
    assert decided.watermark == T0 + 3 * HOUR


def test_misfire_all_after_a_downtime() -> None:
    decided = due(every_10_minutes(misfire="all"), T0, DOWN_UNTIL, started_at=DOWN_UNTIL)
    assert len(decided.fires) == 18 and all(fire.catchup for fire in decided.fires)
    assert times(decided.fires)[:2] == ["08:10", "08:20"] and times(decided.fires)[-1] == "11:00"
    assert decided.skips == ()


def test_misfire_all_runs_the_newest_up_to_the_limit() -> None:
    decided = due(every_10_minutes(misfire="all"), T0, DOWN_UNTIL, started_at=DOWN_UNTIL,
                  limit=5)
    assert times(decided.fires) == ["10:20", "10:30", "10:40", "10:50", "11:00"]
    assert decided.skips == (Skip("catchup_limit", T0 + 600, T0 + 2 * HOUR + 10 * 60, 13),)


@pytest.mark.parametrize("mode", ["skip", "run_once", "all"])
def test_missed_fires_older_than_the_catchup_window_are_skipped_in_every_mode(mode) -> None:
    s = every_10_minutes(misfire=mode, catchup_window=HOUR)
    decided = due(s, T0, DOWN_UNTIL, started_at=DOWN_UNTIL)
    window = decided.skips[0]
    assert window == Skip("outside_catchup_window", T0 + 600, T0 + 2 * HOUR, 12)
    ran = {"skip": [], "run_once": ["11:00"],
           "all": ["10:10", "10:20", "10:30", "10:40", "10:50", "11:00"]}[mode]
    assert times(decided.fires) == ran
    assert sum(skip.count for skip in decided.skips) + len(ran) == 18
    assert decided.watermark == T0 + 3 * HOUR


def test_a_suspend_is_a_downtime_and_watched_fires_after_the_wake_still_fire() -> None:
    # Asleep from 08:05 to 09:33 (noticed at the wake: started_at = 09:33), then awake
    # until 09:41 before the scheduler looks again: 08:10 … 09:30 missed, 09:40 watched.
    wake = T0 + HOUR + 33 * 60
    decided = due(every_10_minutes(misfire="run_once"), T0, wake + 8 * 60, started_at=wake)
    assert times(decided.fires) == ["09:30", "09:40"]
    assert [fire.catchup for fire in decided.fires] == [True, False]
    assert decided.skips == (Skip("misfire", T0 + 600, T0 + HOUR + 20 * 60, 8),)


def test_jitter_delays_a_fire_and_holds_back_the_next() -> None:
    s = every_10_minutes(jitter=300.0)
    fire = s.after(T0)
    assert fire is not None
    delay = s.due_time(fire) - fire
    assert 0 <= delay < 300
    before = due(s, T0, fire + delay - 0.5, started_at=T0 - HOUR)
    assert before.fires == () and before.wake == s.due_time(fire)
    after = due(s, T0, fire + delay, started_at=T0 - HOUR)
    assert [f.at for f in after.fires] == [fire] and after.fires[0].due == fire + delay


def test_a_clock_set_back_fires_nothing_twice() -> None:
    s = every_10_minutes()
    decided = due(s, T0 + HOUR, T0 + 30 * 60, started_at=T0)
    assert decided.fires == () and decided.watermark == T0 + HOUR


def test_at_missed_runs_once_or_is_skipped() -> None:
    instant = parse_at("2027-05-03T09:00:00Z")
    once = Schedule("once", "job", instant, "UTC", misfire="run_once")
    decided = due(once, T0, T0 + 2 * HOUR, started_at=T0 + 2 * HOUR)
    assert [f.at for f in decided.fires] == [instant.instant] and decided.wake is None
    skipped = due(Schedule("once", "job", instant, "UTC", misfire="skip"), T0, T0 + 2 * HOUR,
                  started_at=T0 + 2 * HOUR)
    assert skipped.fires == () and skipped.skips[0].count == 1


def test_every_second_over_a_long_window_is_arithmetic() -> None:
    s = Schedule("fast", "job", parse_when("@every 1s", parse_seconds=parse_duration), "UTC",
                 misfire="all", catchup_window=30 * 24 * HOUR)
    decided = due(s, T0 - 20 * 24 * HOUR, T0, started_at=T0)
    # The newest 100 missed ones, and T0 itself: due as the scheduler started, watched.
    assert [fire.catchup for fire in decided.fires] == [True] * 100 + [False]
    assert decided.skips[0].reason == "catchup_limit"
    assert decided.skips[0].count == 20 * 24 * 3600 - 1 - 100  # (T0 - 20 days, T0)


def test_skip_through_a_paused_stretch() -> None:
    s = every_10_minutes()
    decided = skip_through(s, T0, T0 + HOUR + 5, "paused")
    assert decided.skips == (Skip("paused", T0 + 600, T0 + HOUR, 6),)
    assert decided.watermark == T0 + HOUR and decided.wake == T0 + HOUR + 600
    assert skip_through(s, T0, T0 + 5, "paused").skips == ()
