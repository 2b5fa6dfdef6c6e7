"""A scheduler host for tests on trio's autojump clock: runs that are trio tasks (a slow
job is a sleep on the virtual clock), a Core DB in memory with the real one's rules (the
watermark never moves back, one run per trigger key), a journal list, counted metrics,
and a wall clock that can jump while the monotonic one does not (a suspend)."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import trio

from flwd.errors import ArgsInvalid, TriggerAlreadyFired
from flwd.events import RunRow, Trigger
from flwd.jobs import parse_duration
from flwd.schedule import Schedule, ScheduleBook, parse_when
from flwd.store import ScheduleState


class FakeWall:
    """The wall clock: ``start`` plus trio's virtual time, plus every :meth:`suspend`."""

    def __init__(self, start: float) -> None:
        self.origin = trio.current_time()
        self.start = start
        self.jumped = 0.0

    def now(self) -> float:
        return self.start + (trio.current_time() - self.origin) + self.jumped

    def suspend(self, seconds: float) -> None:
        """The machine slept: the wall clock moved on, the monotonic clock did not."""
        self.jumped += seconds


def wall(zone: str, *parts: int) -> float:
    return datetime(*parts, tzinfo=ZoneInfo(zone)).timestamp()


def utc(*parts: int) -> float:
    return datetime(*parts, tzinfo=UTC).timestamp()


def make(name: str, cron: str, zone: str = "UTC", *, job: str = "job", **options: Any
         ) -> Schedule:
    return Schedule(name, job, parse_when(cron, parse_seconds=parse_duration), zone, **options)


@dataclass
class FakeRun:
    row: RunRow
    key: str
    detail: Mapping[str, Any]
    done: trio.Event = field(default_factory=trio.Event)
    canceled: str | None = None
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    ended_at: float | None = None


class Observed:
    def __init__(self) -> None:
        self.fires: Counter[str] = Counter()
        self.lags: list[float] = []

    def schedule_fires(self, outcome: str, count: int) -> None:
        self.fires[outcome] += count

    def schedule_lag(self, seconds: float) -> None:
        self.lags.append(seconds)

    def persistence(self, operation: str, outcome: str, seconds: float) -> None: ...
    def evicted(self, kind: str, count: int, size: int) -> None: ...
    def image_pulled(self, outcome: str, seconds: float) -> None: ...
    def manifest_invalid(self) -> None: ...
    def source_added(self, kind: str) -> None: ...
    def notification(self, sink_kind: str, outcome: str) -> None: ...
    def hook_request(self, hook: str, outcome: str) -> None: ...


class FakeHost:
    """A SchedulerHost whose runs last ``duration`` seconds of virtual time."""

    def __init__(self, nursery: trio.Nursery, clock: FakeWall, *schedules: Schedule,
                 duration: float = 1.0) -> None:
        self.nursery = nursery
        self.clock = clock
        self.schedules = list(schedules)
        self.duration = duration
        self.observer = Observed()
        self.workspace = "/fake/workspace"
        self.accepting = True
        self.saved: dict[str, ScheduleState] = {}
        self.runs: dict[str, FakeRun] = {}
        self.by_key: dict[str, FakeRun] = {}
        self.events: list[tuple[str, dict[str, Any]]] = []
        #: (type, data, wall clock) of every event journaled.
        self.journaled: list[tuple[str, dict[str, Any], float]] = []
        self.callbacks: list[Callable[[str], None]] = []
        #: False: runs end unheard of (as those another replica of a cluster executes):
        #: the scheduler looks again every ``end_poll`` seconds.
        self.tells_ends = True
        self.refuse: set[str] = set()
        #: When set, ``start`` waits for it (a fire in flight, for races).
        self.hold: trio.Event | None = None
        self.holding = trio.Event()
        self._ids = itertools.count(1)

    # -- SchedulerHost ---------------------------------------------------------------
    async def book(self) -> ScheduleBook:
        await trio.lowlevel.checkpoint()
        return ScheduleBook.of(self.schedules)

    async def states(self) -> dict[str, ScheduleState]:
        await trio.lowlevel.checkpoint()
        return dict(self.saved)

    async def record(self, name: str, *, watermark: float, fire_at: float | None = None,
                     outcome: str | None = None, run_id: str | None = None) -> None:
        await trio.lowlevel.checkpoint()
        state = self.saved.get(name, ScheduleState(name))
        mark = watermark if state.watermark is None else max(state.watermark, watermark)
        if outcome is None:
            self.saved[name] = replace(state, watermark=mark)
        else:
            self.saved[name] = replace(state, watermark=mark, last_fire_at=fire_at,
                                       last_outcome=outcome, last_run_id=run_id)

    async def fired(self, name: str, after: float, until: float) -> float | None:
        await trio.lowlevel.checkpoint()
        fires = [self.fire_time(run) for run in self.runs.values()
                 if run.detail.get("name") == name and not run.detail.get("manual")]
        inside = [fire for fire in fires if after < fire <= until]
        return max(inside) if inside else None

    async def start(self, schedule: Schedule, trigger: Trigger) -> RunRow:
        if self.hold is not None:
            self.holding.set()
            await self.hold.wait()
        await trio.lowlevel.checkpoint()
        if trigger.key in self.by_key:
            raise TriggerAlreadyFired("a run for this key exists", key=trigger.key)
        if schedule.name in self.refuse:
            raise ArgsInvalid("invalid arguments for job job: name: required",
                              errors=[{"arg": "name", "message": "required"}])
        row = RunRow(id=f"run-{next(self._ids)}", job_id=schedule.job_id, status="running",
                     created_at=self.clock.now(), trigger=dict(trigger.detail),
                     trigger_key=trigger.key)
        run = FakeRun(row, trigger.key, trigger.detail)
        self.runs[row.id] = run
        self.by_key[trigger.key] = run
        self.nursery.start_soon(self._execute, run)
        return row

    async def _execute(self, run: FakeRun) -> None:
        with run.scope:
            await trio.sleep(self.duration)
        run.ended_at = self.clock.now()
        run.done.set()
        if self.tells_ends:
            for callback in list(self.callbacks):
                callback(run.row.id)

    async def cancel(self, run_id: str, reason: str) -> None:
        await trio.lowlevel.checkpoint()
        run = self.runs[run_id]
        if not run.done.is_set():
            run.canceled = reason
            run.scope.cancel()

    async def still_live(self, run_ids: Sequence[str]) -> list[str]:
        await trio.lowlevel.checkpoint()
        return [run_id for run_id in run_ids if not self.runs[run_id].done.is_set()]

    @property
    def end_poll(self) -> float | None:
        # A cluster's host is not told of runs that end on other replicas.
        return None if self.tells_ends else 2.0

    async def journal(self, job_id: str, type_: str, data: Mapping[str, Any]) -> None:
        await trio.lowlevel.checkpoint()
        self.events.append((type_, dict(data)))
        self.journaled.append((type_, dict(data), self.clock.now()))

    def watch_ends(self, callback: Callable[[str], None]) -> Callable[[], None]:
        self.callbacks.append(callback)
        return lambda: self.callbacks.remove(callback)

    # -- for the tests -------------------------------------------------------------------
    @staticmethod
    def fire_time(run: FakeRun) -> float:
        text = str(run.detail["fire_at"])
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()

    def started(self, name: str | None = None) -> list[FakeRun]:
        """The runs started so far (of ``name``), in order."""
        return [run for run in self.runs.values()
                if name is None or run.detail.get("name") == name]

    def fire_times(self, name: str | None = None, zone: str = "UTC") -> list[str]:
        return [datetime.fromtimestamp(self.fire_time(run), ZoneInfo(zone)).isoformat()
                for run in self.started(name)]

    def of_type(self, type_: str) -> list[dict[str, Any]]:
        return [data for kind, data in self.events if kind == type_]


async def advance(seconds: float) -> None:
    """Let ``seconds`` of virtual time pass (the autojump clock skips the waiting)."""
    await trio.sleep_until(trio.current_time() + seconds)

