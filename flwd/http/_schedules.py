"""Schedules: ``GET /schedules``, ``GET /schedules/<name>``, and
``POST /schedules/<name>:pause|:resume|:trigger``.

A schedule's document (:func:`flwd.schedule.schedule_view`) says what it is, in which
zone (named), whether it is active, its next three fires on that zone's clock and its
last fire. A pause is kept in the Core DB (it survives a restart); a trigger starts a
run now through the server's scheduler, recorded as a manual fire of the schedule.
"""

from __future__ import annotations

import time
from typing import Any

from quart import Blueprint, Response, jsonify
from werkzeug.routing import BaseConverter

from flwd.engine import Engine
from flwd.schedule import Schedule, schedule_view

from ._state import current_state

blueprint = Blueprint("schedules", __name__)


class ScheduleName(BaseConverter):
    """A schedule's name: a job id (``/`` for a source's), ``#`` and an index for a
    default name; never a ``:`` (``/schedules/<name>:pause``)."""

    regex = r"[A-Za-z0-9][A-Za-z0-9_.#/-]{0,199}"
    part_isolating = False


async def schedule_documents(engine: Engine, names: list[str] | None = None
                             ) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """The documents of the schedules (all, or those ``names``), and the book's issues.

    Cancellation: nothing is left behind (it only reads).
    """
    book = await engine.schedules()
    states = await engine.schedule_states()
    chosen = [schedule for schedule in book if names is None or schedule.name in names]
    runs = [state.last_run_id for state in states.values() if state.last_run_id]
    statuses = await engine.run_statuses(runs) if runs else {}
    now = time.time()

    def view(schedule: Schedule) -> dict[str, Any]:
        state = states.get(schedule.name)
        run_id = state.last_run_id if state is not None else None
        return schedule_view(schedule, state, now,
                             run_status=statuses.get(run_id) if run_id else None)

    return [view(schedule) for schedule in chosen], [issue.to_json() for issue in book.issues]


@blueprint.get("/schedules")
async def list_schedules() -> Response:
    """Every schedule, by name, with the names claimed twice (not scheduled).

    Cancellation: nothing is left behind (here as in every read below).
    """
    engine = current_state().engine
    documents, errors = await schedule_documents(engine)
    return jsonify({"timezone": engine.root.zone, "schedules": documents, "errors": errors})


async def _one(name: str) -> dict[str, Any]:
    engine = current_state().engine
    await engine.find_schedule(name)  # ScheduleNotFound: 404
    documents, _ = await schedule_documents(engine, [name])
    return documents[0]


@blueprint.get("/schedules/<schedule_name:name>")
async def get_schedule(name: str) -> Response:
    return jsonify(await _one(name))


@blueprint.post("/schedules/<schedule_name:name>:pause")
async def pause_schedule(name: str) -> Response:
    """Pause: its fires are skipped (journaled) until it is resumed; kept across restarts.

    Cancellation: the pause may be written all the same; only the answer is lost.
    """
    await current_state().engine.pause_schedule(name, True)
    return jsonify(await _one(name))


@blueprint.post("/schedules/<schedule_name:name>:resume")
async def resume_schedule(name: str) -> Response:
    """Resume: the fires that came while paused stay skipped; the next one runs.

    Cancellation: as ``pause_schedule``.
    """
    await current_state().engine.pause_schedule(name, False)
    return jsonify(await _one(name))


@blueprint.post("/schedules/<schedule_name:name>:trigger")
async def trigger_schedule(name: str) -> Response:
    """Fire now, by hand: 201 and the run (``trigger: {kind: schedule, …, manual: true}``).

    Cancellation: the run may be started all the same; only the answer is lost.
    """
    run = await current_state().engine.trigger_schedule(name)
    response = jsonify(run.to_json())
    response.status_code = 201
    response.headers["Location"] = f"/runs/{run.id}"
    return response
