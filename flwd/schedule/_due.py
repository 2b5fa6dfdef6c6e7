"""What a schedule owes now: :func:`due` (sans-IO).

The scheduler keeps one **watermark** per schedule: the last fire time it handled
(started or skipped). Everything after it and due by ``now`` is decided here, in
fire-time order, in three regions of time::

    watermark ─── outside the catch-up window ─── missed ─── watched ─── now
                  (skipped)                        (misfire)  (fired)

``started_at`` is when the scheduler began watching without a break: when
``flwd :serve`` started, or when it noticed that the wall clock jumped (a laptop
woke from suspend, the clock was set). A fire time before it came while nobody
watched: it is *missed*, and the schedule's ``misfire`` mode says what to do —
``skip`` (none runs), ``run_once`` (the newest runs, the rest are skipped) or
``all`` (each runs, the newest :data:`MAX_CATCHUP` at most). Missed fires older
than ``catchup_window`` are skipped in every mode. A fire time at or after
``started_at`` is *watched*: it fires when due, however late a busy host handles it.

A fire with jitter is due at its fire time plus its jitter; fires are handled in
order, so one not yet due holds back the ones after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from ._spec import Schedule

__all__ = ["MAX_CATCHUP", "Due", "Fire", "Skip", "SkipReason", "due", "skip_through"]

#: Missed fires run at most in one catch-up (``misfire: all``); older ones are skipped.
MAX_CATCHUP: Final = 100
#: Fire times are whole seconds: a bound this far below one still counts it in.
_EPSILON: Final = 1e-6

SkipReason = Literal["misfire", "outside_catchup_window", "catchup_limit", "paused",
                     "disabled", "overlap", "queue_full", "refused"]


@dataclass(frozen=True, slots=True)
class Fire:
    """A fire to start now: its fire time, when it was due, and whether it catches up a
    missed one."""

    at: float
    due: float
    catchup: bool = False


@dataclass(frozen=True, slots=True)
class Skip:
    """Fires not run, for one reason: the first and last fire time and how many (None
    when too many to count)."""

    reason: SkipReason
    first: float
    last: float
    count: int | None


@dataclass(frozen=True, slots=True)
class Due:
    """What :func:`due` decided: the fires to start (in order), what is skipped, the new
    watermark, and when the next fire is due (None: never)."""

    fires: tuple[Fire, ...]
    skips: tuple[Skip, ...]
    watermark: float
    wake: float | None


def due(schedule: Schedule, watermark: float, now: float, started_at: float, *,
        limit: int = MAX_CATCHUP) -> Due:
    """Decide the fires of ``schedule`` after ``watermark`` up to ``now`` (see the module
    docstring). ``limit``: missed fires run at most (``misfire: all``)."""
    skips: list[Skip] = []
    fires: list[Fire] = []
    mark = watermark
    floor = now - schedule.catchup_window
    # Missed, and older than the catch-up window: skipped whatever the mode.
    outside, count = schedule.when.newest(mark, min(floor, started_at), schedule.zone, 1)
    if outside:
        first = schedule.after(mark)
        assert first is not None
        skips.append(Skip("outside_catchup_window", first, outside[0], count))
        mark = outside[0]
    # Missed within the window: as the misfire mode says. One more than is kept is
    # asked for: the newest fire skipped, when any is.
    keep = {"skip": 0, "run_once": 1, "all": limit}[schedule.misfire]
    low = max(mark, floor - _EPSILON)
    newest, count = schedule.when.newest(low, started_at, schedule.zone, keep + 1)
    if newest:
        run = newest[len(newest) - keep:] if keep else []
        if len(newest) > len(run):
            first = schedule.after(low)
            assert first is not None
            reason: SkipReason = "catchup_limit" if schedule.misfire == "all" else "misfire"
            skips.append(Skip(reason, first, newest[-len(run) - 1],
                              None if count is None else count - len(run)))
        fires.extend(Fire(at, schedule.due_time(at), catchup=True) for at in run)
        mark = newest[-1]
    # Watched: each fires when due, in order.
    fire = schedule.after(mark)
    while fire is not None and schedule.due_time(fire) <= now:
        fires.append(Fire(fire, schedule.due_time(fire)))
        mark = fire
        fire = schedule.after(fire)
    wake = None if fire is None else schedule.due_time(fire)
    return Due(tuple(fires), tuple(skips), mark, wake)


def skip_through(schedule: Schedule, watermark: float, now: float,
                 reason: SkipReason) -> Due:
    """Skip every fire after ``watermark`` up to ``now`` (a paused or disabled schedule,
    seen again): one :class:`Skip`, and the watermark moved to the last of them."""
    newest, count = schedule.when.newest(watermark, now + _EPSILON, schedule.zone, 1)
    fire = schedule.after(newest[0] if newest else watermark)
    wake = None if fire is None else schedule.due_time(fire)
    if not newest:
        return Due((), (), watermark, wake)
    first = schedule.after(watermark)
    assert first is not None
    skip = Skip(reason, first, newest[0], count)
    return Due((), (skip,), newest[0], wake)
