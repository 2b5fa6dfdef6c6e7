"""The scheduler on a real engine (SQLite Core DB, real processes, real trio clock; the wall
clock set by the test): a fire whose run committed before the server died is not run
again, pauses survive a restart, a manual fire is marked, and every decision is in the
journal with run_id ''."""

from __future__ import annotations

from pathlib import Path

import trio

from flwd.engine import open_engine
from flwd.events import Trigger
from flwd.schedule import fire_key
from tests.conftest import write_job
from tests.engine.scheduler_host import utc
from tests.engine.test_engine import collect, make_plan, settings_for

#: Seconds between two looks at the Core DB while waiting for the scheduler.
POLL = 0.05


class SetWall:
    """A wall clock that reads ``start`` plus the real time since it was made."""

    def __init__(self, start: float) -> None:
        self.start, self.origin = start, trio.current_time()

    def now(self) -> float:
        return self.start + trio.current_time() - self.origin


async def wait_for(condition) -> None:
    """Until ``condition()`` holds: 30 s at most (a bounded loop, no fixed sleep)."""
    for _ in range(int(30 / POLL)):
        if await condition():
            return
        await trio.sleep(POLL)
    raise AssertionError("the scheduler did not get there within 30 s")


def tick_job(workspace: Path, **options: str) -> None:
    extra = "".join(f", {key}: {value}" for key, value in options.items())
    write_job(workspace, "tick", f'schedule:\n  - {{cron: "*/10 * * * *", misfire: skip{extra}}}\n',
              {"100_tick.sh": "echo tick\n"})


async def test_a_fire_committed_before_a_crash_is_not_run_again(workspace: Path, data_dir: Path
                                                                ) -> None:
    tick_job(workspace)
    settings = settings_for(workspace, data_dir)
    store = settings.open_store()
    fire = utc(2027, 5, 3, 8, 10)
    # The server that died: its watermark at 08:00:30, yet the 08:10 run committed.
    async with open_engine(settings, owner_kind="serve") as engine:
        store.schedule_record(settings.workspace_key, "tick", watermark=utc(2027, 5, 3, 8, 0, 30))
        run = await engine.start_run(make_plan(settings, "tick"), trigger=Trigger(
            fire_key(settings.workspace_key, "tick", fire), {"kind": "schedule", "name": "tick",
                                     "fire_at": "2027-05-03T08:10:00Z"}))
        await collect(engine, run.id)
    # Started again at 08:15:30: the 08:10 fire is missed (misfire: skip) — but it ran.
    async with open_engine(settings, owner_kind="serve", schedules=True,
                           clock=SetWall(utc(2027, 5, 3, 8, 15, 30))) as engine:
        async def moved() -> bool:
            state = (await engine.schedule_states()).get("tick")
            return state is not None and state.watermark == fire

        await wait_for(moved)
        runs, total = await engine.list_runs()
    assert total == 1 and runs[0].id == run.id
    schedule_events = [record for record in store.read_events(None)
                       if record.type.startswith("schedule.")]
    assert schedule_events == [], "nothing journaled twice, no misfire for a fire that ran"


async def test_pause_survives_a_restart_and_a_manual_fire_is_marked(workspace: Path,
                                                                    data_dir: Path) -> None:
    tick_job(workspace)
    settings = settings_for(workspace, data_dir)
    async with open_engine(settings, owner_kind="serve", schedules=True,
                           clock=SetWall(utc(2027, 5, 3, 8, 9, 59))) as engine:
        schedule, changed = await engine.pause_schedule("tick", True)
        assert changed and schedule.name == "tick"
        assert (await engine.pause_schedule("tick", True))[1] is False
        # 08:10 comes while paused: skipped (journaled), not run.
        async def skipped() -> bool:
            return any(record.type == "schedule.skip"
                       for record in engine.store.read_events(None))

        await wait_for(skipped)
        run = await engine.trigger_schedule("tick")
        events = await collect(engine, run.id)
        assert events[-1]["data"]["status"] == "completed"
    async with open_engine(settings, owner_kind="serve", schedules=True,
                           clock=SetWall(utc(2027, 5, 3, 8, 20, 30))) as engine:
        state = (await engine.schedule_states())["tick"]
        assert state.paused
        runs, total = await engine.list_runs()
    assert total == 1
    assert runs[0].trigger == {"kind": "schedule", "name": "tick",
                               "fire_at": runs[0].trigger["fire_at"], "manual": True}
    journaled = [(record.run_id, record.type, record.data)
                 for record in engine.store.read_events(None)
                 if record.type.startswith("schedule.")]
    skip = next(data for run_id, kind, data in journaled if kind == "schedule.skip")
    assert (skip["reason"], skip["fire_at"]) == ("paused", "2027-05-03T08:10:00Z")
    fire = next(data for run_id, kind, data in journaled if kind == "schedule.fire")
    assert fire["run_id"] == run.id and fire["manual"] is True
    assert {run_id for run_id, _, _ in journaled} == {""}
    # The pause is journaled once (a second pause changes nothing and journals nothing).
    assert [data for _, kind, data in journaled if kind == "schedule.pause"] == [{"name": "tick"}]
