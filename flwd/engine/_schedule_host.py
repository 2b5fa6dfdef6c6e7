"""The scheduler's view of a real engine: :class:`EngineHost` (see ``_scheduler.py``).

Everything the scheduler does goes through the engine's own paths: runs through
``Engine.submit`` (planned, policy-checked and journaled like an API request),
cancels through ``Engine.cancel_run`` (``request_cancel`` for a run another replica
of a cluster executes), events through the journal actor, state
through the Store port in a worker thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import trio

from flwd.errors import FlwdError
from flwd.events import RUN_FINISH, TERMINAL_STATUSES, EventRecord, RunRow, Trigger, now
from flwd.observe import Observer
from flwd.plan import PlanRequest
from flwd.schedule import Schedule, ScheduleBook
from flwd.store import ScheduleState

if TYPE_CHECKING:
    from ._client import Engine

__all__ = ["EngineHost"]

_log = logging.getLogger("flwd.engine")

#: In a cluster, how often the scheduler looks at the Core DB for the end of runs it
#: started that another replica executes (overlap modes wait for them): their
#: ``run.finish`` is journaled by that replica and never reaches this one's hub.
CLUSTER_END_POLL = 2.0


class EngineHost:
    """A :class:`~flwd.engine._scheduler.SchedulerHost` backed by ``engine``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.workspace = engine.settings.workspace_key

    @property
    def observer(self) -> Observer:
        return self.engine.root.observer

    async def book(self) -> ScheduleBook:
        return await self.engine.schedules()

    async def states(self) -> dict[str, ScheduleState]:
        return await trio.to_thread.run_sync(self.engine.store.schedule_states, self.workspace)

    async def record(self, name: str, *, watermark: float, fire_at: float | None = None,
                     outcome: str | None = None, run_id: str | None = None) -> None:
        await trio.to_thread.run_sync(partial(
            self.engine.store.schedule_record, self.workspace, name, watermark=watermark,
            fire_at=fire_at, outcome=outcome, run_id=run_id))

    async def fired(self, name: str, after: float, until: float) -> float | None:
        return await trio.to_thread.run_sync(self.engine.store.schedule_fired, self.workspace,
                                             name, after, until)

    async def start(self, schedule: Schedule, trigger: Trigger) -> RunRow:
        run, _ = await self.engine.submit(PlanRequest(schedule.job_id, args=schedule.args),
                                          trigger=trigger)
        return run

    async def cancel(self, run_id: str, reason: str) -> None:
        if self.engine.root.cluster is None or self.engine.is_live(run_id):
            await self.engine.cancel_run(run_id, reason=reason, by="schedule")
            return
        # Queued, or claimed by another replica: cancelled through the Core DB there.
        try:
            await self.engine.request_cancel(run_id, reason=reason, by="schedule")
        except FlwdError as exc:
            _log.warning("scheduler: cannot cancel run %s: %s", run_id, exc.one_line())

    async def still_live(self, run_ids: Sequence[str]) -> list[str]:
        local = {run_id for run_id in run_ids if self.engine.is_live(run_id)}
        if self.engine.root.cluster is None:
            return [run_id for run_id in run_ids if run_id in local]
        # Queued, or claimed by another replica: what the Core DB says of it.
        statuses = await self.engine.run_statuses([run_id for run_id in run_ids
                                                   if run_id not in local])
        return [run_id for run_id in run_ids if run_id in local or (
            run_id in statuses and statuses[run_id] not in TERMINAL_STATUSES)]

    @property
    def end_poll(self) -> float | None:
        return None if self.engine.root.cluster is None else CLUSTER_END_POLL

    @property
    def accepting(self) -> bool:
        return self.engine.root.accepting

    async def journal(self, job_id: str, type_: str, data: Mapping[str, Any]) -> None:
        await self.engine.journal_events([EventRecord(run_id="", job_id=job_id, type=type_,
                                                      ts=now(), data=dict(data))])

    def watch_ends(self, callback: Callable[[str], None]) -> Callable[[], None]:
        hub = self.engine.hub

        def tap(batch: Sequence[EventRecord]) -> None:
            for record in batch:
                if record.type == RUN_FINISH:
                    callback(record.run_id)

        hub.taps.append(tap)

        def stop() -> None:
            if tap in hub.taps:
                hub.taps.remove(tap)

        return stop
