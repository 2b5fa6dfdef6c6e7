"""The schedules of this workspace and data dir, read and changed in this process
(``flwd :schedules`` without ``--server``).

A pause or a resume is written to the Core DB, where a server running on the data dir
sees it at its next look (within 30 s). A manual fire runs here, like ``flwd JOB``
(``LocalBackend.trigger_schedule``) — unless a server owns the data dir: its scheduler
must see the run (its overlap mode), so the fire is refused with the command that
sends it there.
"""

from __future__ import annotations

import time
from typing import Any

from flwd.daemon import DataDirBusy, read_owner
from flwd.errors import ScheduleNotFound
from flwd.events import Trigger
from flwd.ids import new_run_id
from flwd.jobs import Binding, Catalog, Job, bind_json, schedule_book
from flwd.schedule import (
    Schedule,
    ScheduleBook,
    format_fire,
    manual_key,
    next_fire,
    schedule_view,
    system_zone,
)
from flwd.settings import Settings

from ._context import load_workspace

__all__ = ["list_local", "manual_fire", "next_fires", "pause_local"]


def _book(settings: Settings) -> tuple[Catalog, ScheduleBook, str]:
    catalog, _ = load_workspace(settings, quiet=True)
    zone = system_zone()
    return catalog, schedule_book(catalog, zone), zone


def _find(book: ScheduleBook, name: str) -> Schedule:
    schedule = book.get(name)
    if schedule is None:
        raise ScheduleNotFound(f"no schedule named {name!r}", hint="'flwd :schedules' lists them")
    return schedule


def _documents(settings: Settings, schedules: list[Schedule]) -> list[dict[str, Any]]:
    store = settings.open_store()
    states = store.schedule_states(settings.workspace_key)
    statuses = store.run_statuses([state.last_run_id for state in states.values()
                                   if state.last_run_id])
    now = time.time()
    documents = []
    for schedule in schedules:
        state = states.get(schedule.name)
        run_id = state.last_run_id if state is not None else None
        documents.append(schedule_view(schedule, state, now,
                                       run_status=statuses.get(run_id) if run_id else None))
    return documents


def next_fires(settings: Settings, catalog: Catalog) -> dict[str, dict[str, Any]]:
    """Each scheduled job's next fire (``:jobs``), as ``GET /jobs`` says it."""
    book = schedule_book(catalog, system_zone())
    if not len(book):
        return {}
    states = settings.open_store().schedule_states(settings.workspace_key)
    now = time.time()
    fires = {job_id: next_fire(book.of_job(job_id), states, now)
             for job_id in {schedule.job_id for schedule in book}}
    return {job_id: fire for job_id, fire in fires.items() if fire is not None}


def list_local(settings: Settings) -> dict[str, Any]:
    """``GET /schedules``'s document, from this workspace and data dir."""
    _, book, zone = _book(settings)
    return {"timezone": zone, "schedules": _documents(settings, list(book)),
            "errors": [issue.to_json() for issue in book.issues]}


def pause_local(settings: Settings, name: str, paused: bool) -> dict[str, Any]:
    """Pause (or resume) ``name`` in the Core DB; its document after."""
    _, book, _ = _book(settings)
    schedule = _find(book, name)
    settings.open_store().schedule_pause(settings.workspace_key, name, paused)
    return _documents(settings, [schedule])[0]


def manual_fire(settings: Settings, name: str) -> tuple[Job, Binding, Trigger, float]:
    """What firing ``name`` now in this process runs: its job, its arguments bound, the
    trigger of a manual fire, and the time of the fire.

    Raises:
        DataDirBusy: a server owns the data dir (the command to send it there instead).
        ScheduleNotFound; ArgsInvalid (its job's argspec changed since it was read).
    """
    owner = read_owner(settings.data_dir)
    if owner is not None and owner.kind == "serve":
        raise DataDirBusy(f"{owner.describe()} schedules the jobs of this data dir; fire it "
                          f"there: flwd --server {owner.url or 'URL'} :schedules trigger {name}")
    catalog, book, _ = _book(settings)
    schedule = _find(book, name)
    job = catalog.get(schedule.job_id)
    binding = bind_json(job.config.args, schedule.args, job_id=job.id)
    fire_at = time.time()
    trigger = Trigger(manual_key(settings.workspace_key, name, new_run_id()), {
        "kind": "schedule", "name": name, "fire_at": format_fire(fire_at), "manual": True})
    return job, binding, trigger, fire_at
