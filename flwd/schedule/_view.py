"""A schedule as ``GET /schedules`` and ``flwd :schedules`` show it (sans-IO).

What it is (its expression, its zone — named, whether written or the server's —, its
modes), whether it is active, its next fire times on its zone's clock, and its last
fire: one document, built here once for the HTTP API, the CLI and the web UI.
"""

from __future__ import annotations

from typing import Any, Final, Protocol

from ._spec import Schedule, format_fire
from ._when import At

__all__ = ["NEXT_FIRES", "next_fire", "schedule_view", "status_of"]

#: Next fire times a view lists.
NEXT_FIRES: Final = 3


class StateLike(Protocol):
    """What the Core DB keeps of a schedule (``flwd.store.ScheduleState``)."""

    @property
    def paused(self) -> bool: ...
    @property
    def watermark(self) -> float | None: ...
    @property
    def last_fire_at(self) -> float | None: ...
    @property
    def last_outcome(self) -> str | None: ...
    @property
    def last_run_id(self) -> str | None: ...


def status_of(schedule: Schedule, state: StateLike | None) -> str:
    """``active``, ``paused`` (by hand: survives a restart) or ``disabled`` (``enabled:
    false`` in its config)."""
    if not schedule.enabled:
        return "disabled"
    return "paused" if state is not None and state.paused else "active"


def _utc(instant: float | None) -> str | None:
    return None if instant is None else format_fire(instant)


def schedule_view(schedule: Schedule, state: StateLike | None, now: float, *,
                  run_status: str | None = None, count: int = NEXT_FIRES) -> dict[str, Any]:
    """The document of ``schedule`` at ``now``; ``run_status``: the status of its last run."""
    after = now if state is None or state.watermark is None else max(now, state.watermark)
    fires = schedule.next_fires(after, count)
    last: dict[str, Any] | None = None
    if state is not None and state.last_outcome is not None:
        last = {"fire_at": _utc(state.last_fire_at),
                "at": None if state.last_fire_at is None
                else schedule.local_text(state.last_fire_at),
                "outcome": state.last_outcome, "run_id": state.last_run_id,
                "run_status": run_status}
    return {
        "name": schedule.name, "job_id": schedule.job_id, "kind": schedule.kind,
        "cron": None if isinstance(schedule.when, At) else schedule.when.text,
        "at": schedule.when.text if isinstance(schedule.when, At) else None,
        "timezone": schedule.zone_name,
        "timezone_source": "config" if schedule.zone_given else "server",
        "args": dict(schedule.shown_args), "status": status_of(schedule, state),
        "enabled": schedule.enabled, "paused": bool(state is not None and state.paused),
        "misfire": schedule.misfire, "catchup_window_seconds": schedule.catchup_window,
        "overlap": schedule.overlap, "jitter_seconds": schedule.jitter,
        "next_fires": [{"at": schedule.local_text(fire), "utc": format_fire(fire)}
                       for fire in fires],
        "last_fire": last,
        "watermark": _utc(state.watermark if state is not None else None),
        "path": schedule.path,
    }


def next_fire(schedules: list[Schedule], states: dict[str, Any], now: float
              ) -> dict[str, Any] | None:
    """The soonest next fire among the active ``schedules`` of one job (``GET /jobs``):
    ``{at, utc, timezone, schedule}``, or None when none will fire."""
    best: tuple[float, Schedule] | None = None
    for schedule in schedules:
        if status_of(schedule, states.get(schedule.name)) != "active":
            continue
        fires = schedule.next_fires(now, 1)
        if fires and (best is None or fires[0] < best[0]):
            best = (fires[0], schedule)
    if best is None:
        return None
    fire, schedule = best
    return {"at": schedule.local_text(fire), "utc": format_fire(fire),
            "timezone": schedule.zone_name, "schedule": schedule.name}

