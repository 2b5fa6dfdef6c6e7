"""Concurrency limits in a real engine: queued runs wait, cancel while queued, no leak."""

from __future__ import annotations

from contextlib import aclosing
from pathlib import Path

import trio

from flwd.engine import open_engine
from flwd.events import EventRecord
from tests.conftest import write_job
from tests.engine.test_engine import make_plan, settings_for

GATED = 'echo "started $FLWD_RUN_ID"; while [ ! -e "{gate}" ]; do sleep 0.01; done\n'


async def wait_for(engine, run_id: str, predicate) -> list[dict]:
    seen: list[dict] = []
    async with aclosing(engine.events(run_id)) as events:
        async for batch in events:
            record: EventRecord
            for record in batch:
                for event in record.iter_events():
                    seen.append(event)
                    if predicate(event):
                        return seen
    return seen


async def finish(engine, run_id: str) -> list[dict]:
    return await wait_for(engine, run_id, lambda e: e["type"] == "run.finish")


async def test_global_limit_queues_and_cancel_while_queued(workspace: Path, data_dir: Path,
                                                           tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    write_job(workspace, "gated", "interpreter: bash\n",
              {"100_wait.sh": GATED.format(gate=gate)})
    settings = settings_for(workspace, data_dir)
    async with open_engine(settings, owner_kind="serve", max_concurrent_runs=1) as engine:
        runs = [await engine.start_run(make_plan(settings, "gated")) for _ in range(3)]
        await wait_for(engine, runs[0].id, lambda e: "started" in str(e["data"].get("message")))
        await trio.testing.wait_all_tasks_blocked()
        assert [(await engine.get_run(r.id)).status for r in runs] == [
            "running", "queued", "queued"]
        assert engine.root.slots is not None and engine.root.slots.book.position(runs[2].id) == 2
        assert await engine.cancel_run(runs[1].id, reason="not needed", by="test") == "requested"
        canceled = await finish(engine, runs[1].id)
        assert [e["type"] for e in canceled] == ["run.canceled", "run.finish"]
        assert canceled[-1]["data"]["status"] == "canceled"
        gate.touch()
        assert (await finish(engine, runs[0].id))[-1]["data"]["status"] == "completed"
        third = await finish(engine, runs[2].id)
        assert third[-1]["data"]["status"] == "completed"
        assert engine.root.slots.book.holders == {} and engine.root.slots.book.queue == []


async def test_per_job_concurrency(workspace: Path, data_dir: Path, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    write_job(workspace, "single", "interpreter: bash\nconcurrency: 1\n",
              {"100_wait.sh": GATED.format(gate=gate)})
    settings = settings_for(workspace, data_dir)
    async with open_engine(settings, owner_kind="serve") as engine:
        first = await engine.start_run(make_plan(settings, "single"))
        second = await engine.start_run(make_plan(settings, "single"))
        other = await engine.start_run(make_plan(settings, "demo", name="x"))
        # Another job is not held up by the single job's queue.
        assert (await finish(engine, other.id))[-1]["data"]["status"] == "completed"
        await wait_for(engine, first.id, lambda e: "started" in str(e["data"].get("message")))
        assert (await engine.get_run(second.id)).status == "queued"
        gate.touch()
        for run in (first, second):
            assert (await finish(engine, run.id))[-1]["data"]["status"] == "completed"
