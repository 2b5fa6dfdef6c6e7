"""When a schedule fires (flwd.schedule, sans-IO): cron on a zone's wall clock with Debian
cron's daylight-saving rules, @every, at:, @reboot, and the jitter of a fire."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from flwd.jobs import parse_duration
from flwd.schedule import (
    At,
    Every,
    Reboot,
    Schedule,
    format_fire,
    jitter_for,
    parse_at,
    parse_when,
    resolve_zone,
    system_zone,
)


def schedule(cron: str, zone: str, **options) -> Schedule:
    return Schedule("s", "job", parse_when(cron, parse_seconds=parse_duration), zone, **options)


def local(zone: str, *parts: int, fold: int = 0) -> float:
    return datetime(*parts, tzinfo=ZoneInfo(zone), fold=fold).timestamp()


def fires_on(s: Schedule, zone: str, year: int, month: int, day: int) -> list[str]:
    """Every fire of ``s`` whose wall-clock date is that day, as local RFC 3339 texts."""
    start = local(zone, year, month, day) - 1
    end = datetime(year, month, day, tzinfo=ZoneInfo(zone)) + timedelta(days=1)
    out = []
    fire = s.after(start)
    while fire is not None and fire < end.timestamp():
        out.append(s.local_text(fire))
        fire = s.after(fire)
    return out


# -- daylight saving time: fixed-time expressions fire once, after a gap or in a repeat --
@pytest.mark.parametrize(("zone", "day", "cron", "expected"), [
    # Spring forward: 02:00 → 03:00. 02:30 does not exist: it fires once, right after the gap.
    ("Europe/Berlin", (2027, 3, 28), "30 2 * * *", ["2027-03-28T03:00:00+02:00"]),
    ("America/New_York", (2027, 3, 14), "30 2 * * *", ["2027-03-14T03:00:00-04:00"]),
    # Lord Howe moves by 30 minutes: 02:00 → 02:30.
    ("Australia/Lord_Howe", (2027, 10, 3), "15 2 * * *", ["2027-10-03T02:30:00+11:00"]),
    # Fall back: the repeated time fires once (its first occurrence).
    ("Europe/Berlin", (2027, 10, 31), "30 2 * * *", ["2027-10-31T02:30:00+02:00"]),
    ("America/New_York", (2027, 11, 7), "30 1 * * *", ["2027-11-07T01:30:00-04:00"]),
    ("Australia/Lord_Howe", (2027, 4, 4), "45 1 * * *", ["2027-04-04T01:45:00+11:00"]),
    # A time outside the change is untouched.
    ("Europe/Berlin", (2027, 3, 28), "30 4 * * *", ["2027-03-28T04:30:00+02:00"]),
])
def test_a_fixed_time_fires_once_on_a_change_day(zone, day, cron, expected) -> None:
    s = schedule(cron, zone)
    assert fires_on(s, zone, *day) == expected
    # … and on the days around it, once at its time.
    before, after = (datetime(*day) - timedelta(days=1)), (datetime(*day) + timedelta(days=1))
    for other in (before, after):
        assert len(fires_on(s, zone, other.year, other.month, other.day)) == 1


@pytest.mark.parametrize(("zone", "spring", "fall"), [
    ("Europe/Berlin", (2027, 3, 28), (2027, 10, 31)),
    ("America/New_York", (2027, 3, 14), (2027, 11, 7)),
])
def test_a_wildcard_hour_follows_real_time(zone, spring, fall) -> None:
    # Debian cron: a job with '*' in its hour runs by the clock as it is: once per
    # real hour, so 23 times on a spring-forward day and 25 on a fall-back day.
    s = schedule("@hourly", zone)
    assert len(fires_on(s, zone, *spring)) == 23
    assert len(fires_on(s, zone, *fall)) == 25
    start = local(zone, *fall) - 1
    fires = s.next_fires(start, 25)
    assert all(later - earlier == 3600 for earlier, later in itertools.pairwise(fires))


def test_every_fifteen_minutes_across_the_gap_keeps_its_real_spacing() -> None:
    s = schedule("*/15 * * * *", "Europe/Berlin")
    fires = s.next_fires(local("Europe/Berlin", 2027, 3, 28, 1, 30) - 1, 4)
    assert [s.local_text(fire)[11:19] for fire in fires] == [
        "01:30:00", "01:45:00", "03:00:00", "03:15:00"]
    assert {later - earlier for earlier, later in itertools.pairwise(fires)} == {900}


def test_after_an_instant_in_the_second_half_of_a_repeated_hour_no_time_repeats() -> None:
    # 01:10 EST is after 01:30 EDT (the first 01:30, already fired): the next fire is
    # the next day's, never the 01:30 of the first half again.
    zone = "America/New_York"
    s = schedule("30 1 * * *", zone)
    second_half = local(zone, 2027, 11, 7, 1, 10, fold=1)
    first_fire = local(zone, 2027, 11, 7, 1, 30, fold=0)
    assert second_half > first_fire
    assert s.local_text(s.after(second_half)) == "2027-11-08T01:30:00-05:00"


def test_fires_are_strictly_increasing_through_a_year_of_changes() -> None:
    for zone in ("Europe/Berlin", "America/New_York", "Australia/Lord_Howe"):
        for cron in ("30 2 * * *", "0,30 1-3 * * *", "*/20 * * * *", "@daily"):
            s = schedule(cron, zone)
            fires = s.next_fires(local(zone, 2027, 1, 1), 2000 if "*" in cron[:5] else 400)
            assert fires == sorted(set(fires)), (zone, cron)


def test_newest_walking_back_matches_walking_forward() -> None:
    # A region too long to count is read backwards from its end: the same fires.
    s = schedule("30 2 * * *", "Europe/Berlin")
    low, high = local("Europe/Berlin", 2027, 3, 20), local("Europe/Berlin", 2027, 4, 5)
    forward, count = s.when.newest(low, high, s.zone, 5)
    assert count == 16
    assert s.when._newest_back(low, high, s.zone, 5) == forward


# -- @every, at:, @reboot, macros -------------------------------------------------------------
def test_every_fires_on_multiples_of_its_interval_since_the_epoch() -> None:
    s = schedule("@every 90s", "Europe/Berlin")
    assert isinstance(s.when, Every) and s.when.seconds == 90
    assert s.next_fires(1000.5, 3) == [1080.0, 1170.0, 1260.0]
    assert s.when.newest(1000.0, 1500.0, s.zone, 2) == ([1350.0, 1440.0], 5)


def test_at_fires_once() -> None:
    at = parse_at("2027-01-01T09:00:00+01:00")
    assert isinstance(at, At) and format_fire(at.instant) == "2027-01-01T08:00:00Z"
    s = Schedule("s", "job", at, "Europe/Berlin")
    assert s.next_fires(0, 3) == [at.instant]
    assert s.after(at.instant) is None


def test_reboot_has_no_fire_time() -> None:
    s = schedule("@reboot", "UTC")
    assert isinstance(s.when, Reboot) and s.after(0) is None


@pytest.mark.parametrize(("macro", "expression"), [
    ("@hourly", "0 * * * *"), ("@daily", "0 0 * * *"), ("@weekly", "0 0 * * 0"),
    ("@monthly", "0 0 1 * *"), ("@yearly", "0 0 1 1 *"), ("@DAILY", "0 0 * * *")])
def test_macros(macro, expression) -> None:
    when = parse_when(macro, parse_seconds=parse_duration)
    assert when.expression == expression and when.text == macro


@pytest.mark.parametrize(("text", "message"), [
    ("61 * * * *", "bad minute (field 1)"),
    ("0 25 * * *", "bad hour (field 2)"),
    ("0 0 30 2 *", "bad day of month (field 3)"),
    ("* * *", "has 3 fields; a cron expression has 5"),
    ("0 * * * * *", "has 6 fields"),
    ("@fortnightly", "is not a cron shorthand"),
    ("@every 0.5s", "a whole number of seconds, at least 1s"),
    ("@every soon", "is not a duration"),
    ("", "is empty"),
])
def test_bad_expressions_say_what_is_wrong(text, message) -> None:
    with pytest.raises(ValueError) as info:
        parse_when(text, parse_seconds=parse_duration)
    assert message in str(info.value)


@pytest.mark.parametrize("text", ["2027-01-01T09:00:00", "tomorrow", "2027-01-01T09:00:00.5Z"])
def test_bad_instants(text) -> None:
    with pytest.raises(ValueError):
        parse_at(text)


# -- zones -------------------------------------------------------------------------------------
def test_zones_by_iana_name() -> None:
    assert resolve_zone("Europe/Berlin") is resolve_zone("Europe/Berlin")
    with pytest.raises(ValueError, match="did you mean 'Europe/Berlin'"):
        resolve_zone("Europe/Berln")
    with pytest.raises(ValueError, match="not an IANA time zone name"):
        resolve_zone("../../etc/passwd")


def test_the_system_zone_is_named(tmp_path) -> None:
    link = tmp_path / "localtime"
    link.symlink_to("/usr/share/zoneinfo/America/New_York")
    assert system_zone({"TZ": ":Europe/Berlin"}, link) == "Europe/Berlin"
    assert system_zone({"TZ": "CET-1CEST"}, link) == "America/New_York"
    assert system_zone({}, tmp_path / "none", tmp_path / "none") == "UTC"
    (tmp_path / "timezone").write_text("Asia/Tokyo\n")
    assert system_zone({}, tmp_path / "none", tmp_path / "timezone") == "Asia/Tokyo"


# -- jitter -------------------------------------------------------------------------------------
def test_jitter_is_bounded_deterministic_and_spread() -> None:
    base = datetime(2027, 1, 1, tzinfo=UTC).timestamp()
    delays = [jitter_for("nightly", base + 60 * index, 30.0) for index in range(500)]
    assert all(0.0 <= delay < 30.0 for delay in delays)
    assert delays == [jitter_for("nightly", base + 60 * index, 30.0) for index in range(500)]
    assert min(delays) < 3.0 and max(delays) > 27.0, "spread over the whole range"
    assert jitter_for("nightly", base, 30.0) != jitter_for("weekly", base, 30.0)
    assert jitter_for("nightly", base, 0.0) == 0.0
    s = schedule("@every 60s", "UTC", jitter=30.0)
    assert s.due_time(base) == base + jitter_for("s", base, 30.0)
