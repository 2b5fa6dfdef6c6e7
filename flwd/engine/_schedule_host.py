"""The scheduler's view of a real engine: :class:`EngineHost` (see ``_scheduler.py``).

Everything the scheduler does goes through the engine's own paths: runs through
``Engine.submit`` (planned, policy-checked and journaled like an API request),
cancels through ``Engine.cancel_run``, events through the journal actor, state
through the Store port in a worker thread.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import trio

from flwd.events import RUN_FINISH, EventRecord, RunRow, Trigger, now
from flwd.observe import Observer
from flwd.plan import PlanRequest
from flwd.schedule import Schedule, ScheduleBook
from flwd.store import ScheduleState

if TYPE_CHECKING:
    from ._client import Engine

__all__ = ["EngineHost"]


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
        await self.engine.cancel_run(run_id, reason=reason, by="schedule")

    def is_live(self, run_id: str) -> bool:
        return self.engine.is_live(run_id)

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
