"""``flwd :schedules [list] | pause NAME | resume NAME | trigger NAME``.

Written once against the backend: locally the data dir's Core DB is read and changed
(a server running on it sees a pause or a resume at its next look, within 30 s), and a
manual fire runs in this process — refused while a server owns the data dir, whose
scheduler must see the run; with ``--server``, the same verbs go through
``/schedules``, with the same output and exit statuses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cyclopts import App

from ._mode import open_backend
from ._render import RunOutput, dumps

schedules_app = App(name=":schedules", backend="trio",
                    help="List the schedules of the jobs (their next three fires, on their "
                         "zone's clock), pause, resume or fire one by hand.")


@schedules_app.default
async def default_command(*, json: bool = False) -> int:
    """List the schedules (as `:schedules list`).

    Parameters
    ----------
    json
        Print GET /schedules's document.
    """
    return await list_command(json=json)


@schedules_app.command(name="list")
async def list_command(*, json: bool = False) -> int:
    """List the schedules: when each fires (its next three fires on its zone's clock,
    the zone named), whether it is active, paused or disabled, and its last fire.

    Parameters
    ----------
    json
        Print GET /schedules's document.
    """
    async with open_backend() as backend:
        document = await backend.list_schedules()
    print(dumps(document) if json else render_schedules(document))
    return 0


@schedules_app.command(name="pause")
async def pause_command(name: str, /, *, json: bool = False) -> int:
    """Pause a schedule: its fires are skipped (and journaled) until it is resumed. The
    pause is kept in the Core DB: it survives a restart of the server.

    Parameters
    ----------
    name
        The schedule (`flwd :schedules` lists them).
    json
        Print the schedule's document.
    """
    return await _change(name, True, json)


@schedules_app.command(name="resume")
async def resume_command(name: str, /, *, json: bool = False) -> int:
    """Resume a paused schedule. The fires that came while it was paused stay skipped.

    Parameters
    ----------
    name
        The schedule.
    json
        Print the schedule's document.
    """
    return await _change(name, False, json)


async def _change(name: str, paused: bool, as_json: bool) -> int:
    async with open_backend() as backend:
        document = await backend.pause_schedule(name, paused)
    print(dumps(document) if as_json else
          f"Schedule {document['name']} {'paused' if paused else 'resumed'}"
          + ("" if paused else f"; next fire {_next(document)}"))
    return 0


@schedules_app.command(name="trigger")
async def trigger_command(name: str, /, *, json: bool = False) -> int:
    """Fire a schedule now, by hand: a run of its job with its arguments, recorded as a
    manual fire of the schedule (trigger: {kind: schedule, manual: true}). Its output is
    shown and the command exits like the run (0 completed, 1 failed, 130/143 canceled).

    Parameters
    ----------
    name
        The schedule.
    json
        Print the run's events as NDJSON.
    """
    output = RunOutput(json)
    async with open_backend() as backend:
        return await backend.trigger_schedule(name, output)


def _local(instant: str) -> str:
    # 2027-05-04T02:30:00+02:00 → 2027-05-04 02:30:00 +02:00
    return f"{instant[:10]} {instant[11:19]} {instant[19:]}".rstrip()


def _next(document: Mapping[str, Any]) -> str:
    fires = document.get("next_fires") or []
    if not fires:
        return "(none)" if document.get("kind") != "reboot" else "(when flwd :serve starts)"
    return f"{_local(str(fires[0]['at']))} {document.get('timezone')}"


def render_schedules(document: Mapping[str, Any]) -> str:
    """The ``:schedules`` listing: one block per schedule (its name, job, expression,
    zone and status; its next three fires; its last fire), then the names claimed twice."""
    schedules: Sequence[Mapping[str, Any]] = document.get("schedules") or []
    lines: list[str] = []
    for schedule in schedules:
        when = schedule.get("cron") or f"at {schedule.get('at')}"
        zone = str(schedule.get("timezone"))
        if schedule.get("timezone_source") == "server":
            zone += " (host zone)"
        lines.append(f"{schedule['name']}  job {schedule['job_id']}  {when}  {zone}  "
                     f"{schedule['status']}")
        fires = [_local(str(fire["at"])) for fire in schedule.get("next_fires") or []]
        if schedule.get("kind") == "reboot":
            fires = ["when flwd :serve starts"]
        lines.append(f"  next  {', '.join(fires) if fires else '(none)'}")
        last = schedule.get("last_fire")
        if last:
            run = f"  {last['run_id']}" if last.get("run_id") else ""
            status = f" ({last['run_status']})" if last.get("run_status") else ""
            when = _local(str(last["at"])) if last.get("at") else "-"
            lines.append(f"  last  {when}  {last['outcome']}{run}{status}")
    for issue in document.get("errors") or []:
        lines.append(f"flwd: error: {issue.get('path')}: {issue.get('error')}")
    if not schedules and not lines:
        return "(no schedules: add a schedule: list to a job's config.yaml)"
    return "\n".join(lines)
