"""A trigger (a schedule's fire, a webhook's delivery) starts one run at most: the Core DB
refuses a second run with the same key, in the transaction that would create it, and
nothing of the refused run is kept or executed."""

from __future__ import annotations

from pathlib import Path

import pytest

from flwd.engine import open_engine
from flwd.errors import TriggerAlreadyFired
from flwd.events import Trigger
from tests.engine.test_engine import collect, make_plan, settings_for


async def test_a_second_run_for_the_same_trigger_is_refused(workspace: Path, data_dir: Path
                                                           ) -> None:
    settings = settings_for(workspace, data_dir)
    fire = Trigger("schedule:nightly@2027-01-01T09:00:00Z",
                   {"kind": "schedule", "name": "nightly", "fire_at": "2027-01-01T09:00:00Z"})
    async with open_engine(settings) as engine:
        first = await engine.start_run(make_plan(settings, "demo", name="ann"), trigger=fire)
        with pytest.raises(TriggerAlreadyFired) as info:
            await engine.start_run(make_plan(settings, "demo", name="bob"), trigger=fire)
        assert info.value.key == fire.key
        other = await engine.start_run(make_plan(settings, "demo", name="cy"),
                                       trigger=Trigger("schedule:nightly@later", {"kind": "x"}))
        await collect(engine, first.id)
        await collect(engine, other.id)
        runs, total = await engine.list_runs()
    assert total == 2, "the refused run left no row"
    stored = {run.id: run for run in runs}
    assert stored[first.id].trigger == fire.detail
    assert stored[first.id].trigger_key == fire.key
    assert stored[first.id].to_json()["trigger"] == fire.detail
    assert "trigger" not in (await _plain_run(settings)).to_json()


async def _plain_run(settings):  # an API or CLI run has no trigger
    async with open_engine(settings) as engine:
        run = await engine.start_run(make_plan(settings, "demo", name="dee"))
        await collect(engine, run.id)
    return run
