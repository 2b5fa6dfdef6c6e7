"""Restart policy, intensity window and backoff arithmetic: no event loop involved."""

import pytest

from actors import Backoff, BackoffSchedule, RestartPolicy, RestartWindow


@pytest.mark.parametrize(
    ("policy", "crashed", "expected"),
    [
        (RestartPolicy.PERMANENT, True, True),
        (RestartPolicy.PERMANENT, False, True),
        (RestartPolicy.TRANSIENT, True, True),
        (RestartPolicy.TRANSIENT, False, False),
        (RestartPolicy.TEMPORARY, True, False),
        (RestartPolicy.TEMPORARY, False, False),
    ],
)
def test_policy_decides_restart(policy: RestartPolicy, crashed: bool, expected: bool) -> None:
    assert policy.should_restart(crashed=crashed) is expected


def test_window_allows_max_restarts_then_refuses() -> None:
    window = RestartWindow(max_restarts=3, max_seconds=5.0)
    assert [window.try_record(t) for t in (0.0, 1.0, 2.0)] == [True, True, True]
    assert window.try_record(3.0) is False
    # A refused restart is not recorded: it does not extend the blackout.
    assert window.restarts_in_window(3.0) == 3


def test_window_slides() -> None:
    window = RestartWindow(max_restarts=2, max_seconds=5.0)
    assert window.try_record(0.0)
    assert window.try_record(1.0)
    assert not window.try_record(4.9)
    # At exactly max_seconds the oldest restart leaves the window.
    assert window.try_record(5.0)
    assert not window.try_record(5.5)
    assert window.restarts_in_window(100.0) == 0


def test_window_with_zero_restarts_always_refuses() -> None:
    window = RestartWindow(max_restarts=0, max_seconds=1.0)
    assert not window.try_record(0.0)
    assert not window.try_record(1000.0)


@pytest.mark.parametrize(("max_restarts", "max_seconds"), [(-1, 1.0), (1, 0.0)])
def test_window_rejects_nonsense(max_restarts: int, max_seconds: float) -> None:
    with pytest.raises(ValueError):
        RestartWindow(max_restarts, max_seconds)


def test_backoff_doubles_up_to_the_cap() -> None:
    backoff = Backoff(base=0.1, cap=1.0)
    delays = [backoff.delay(attempt, jitter=1.0) for attempt in range(6)]
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])


def test_backoff_jitter_scales_within_half_to_full() -> None:
    backoff = Backoff(base=1.0, cap=10.0)
    assert backoff.delay(2, jitter=0.5) == pytest.approx(2.0)
    assert backoff.delay(2, jitter=0.75) == pytest.approx(3.0)
    for jitter in (0.49, 1.01):
        with pytest.raises(ValueError):
            backoff.delay(0, jitter=jitter)


def test_backoff_survives_huge_attempts() -> None:
    assert Backoff(base=0.1, cap=30.0).delay(10_000, jitter=1.0) == 30.0


def test_schedule_grows_and_resets_after_a_stable_run() -> None:
    schedule = BackoffSchedule(Backoff(base=0.1, cap=10.0), stable_after=5.0)
    assert schedule.next_delay(uptime=0.0, jitter=1.0) == pytest.approx(0.1)
    assert schedule.next_delay(uptime=1.0, jitter=1.0) == pytest.approx(0.2)
    assert schedule.next_delay(uptime=4.9, jitter=1.0) == pytest.approx(0.4)
    assert schedule.next_delay(uptime=5.0, jitter=1.0) == pytest.approx(0.1)
    assert schedule.next_delay(uptime=0.0, jitter=0.5) == pytest.approx(0.1)
