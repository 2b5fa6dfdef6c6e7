"""Actor-level tests of the engine: a real journal (SQLite file), real processes, real trio."""

from __future__ import annotations

import os
from contextlib import aclosing
from pathlib import Path

import trio

from flwd.engine import open_engine
from flwd.events import EventRecord
from flwd.jobs import bind_cli, discover
from flwd.plan import Plan, build_plan
from flwd.settings import Settings
from tests.conftest import processes_under, write_job


def make_plan(settings: Settings, job_id: str, **args: str) -> Plan:
    catalog = discover(settings.scripts_root)
    job = catalog.get(job_id)
    binding = bind_cli(job.config.args, {k: [v] for k, v in args.items()}, job_id=job.id)
    return build_plan(job, binding, profile="secure", workspace=settings.workspace,
                      scripts_root=settings.scripts_root)


def settings_for(workspace: Path, data_dir: Path, grace: float = 2.0) -> Settings:
    return Settings(workspace=workspace, scripts_root=workspace / "scripts", data_dir=data_dir,
                    grace=grace)


def expand(batches: list[list[EventRecord]]) -> list[dict]:
    return [event for batch in batches for record in batch for event in record.iter_events()]


async def collect(engine, run_id: str) -> list[dict]:
    batches = [batch async for batch in engine.events(run_id)]
    return expand(batches)


async def test_run_streams_every_event_once_in_order(workspace: Path, data_dir: Path) -> None:
    settings = settings_for(workspace, data_dir)
    async with open_engine(settings) as engine:
        run = await engine.start_run(make_plan(settings, "demo", name="ann"))
        events = await collect(engine, run.id)
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "one run alone: no gaps"
    assert events[0]["type"] == "run.start" and events[-1]["type"] == "run.finish"
    assert events[-1]["data"]["status"] == "completed"
    assert "demo: Hello, ann!" in [e["data"].get("message") for e in events]


async def test_cancel_terminates_the_tree_and_is_journaled(workspace: Path, data_dir: Path) -> None:
    settings = settings_for(workspace, data_dir, grace=1.0)
    async with open_engine(settings) as engine:
        run = await engine.start_run(make_plan(settings, "examples.long", ignore_term="true"))
        seen: list[dict] = []
        async for batch in engine.events(run.id):
            for event in expand([batch]):
                seen.append(event)
                if str(event["data"].get("message", "")).startswith("long: grandchild"):
                    assert await engine.cancel_run(run.id, reason="test", by="test") == \
                        "requested"
        assert await engine.cancel_run(run.id, reason="again", by="test") == "not-live"
    types = [e["type"] for e in seen]
    assert types.count("run.canceled") == 1
    assert seen[-1]["type"] == "run.finish" and seen[-1]["data"]["status"] == "canceled"
    assert not processes_under(f"FLWD_RUN_ID={run.id}")


async def test_lagging_subscriber_never_slows_a_run(workspace: Path, data_dir: Path) -> None:
    write_job(workspace, "chatty", "interpreter: bash\n",
              {"100_chatty.sh": "for i in $(seq 1 200000); do echo \"line $i\"; done\n"})
    settings = settings_for(workspace, data_dir)
    async with open_engine(settings) as engine:
        run = await engine.start_run(make_plan(settings, "chatty"))
        # A subscriber that never reads: the hub must drop it, not block the journal.
        stuck = engine.hub.subscribe(run.id)
        events = await collect(engine, run.id)
        assert stuck.lagged
    lines = [e["data"]["message"] for e in events if e["type"] == "step.log"]
    assert lines == [f"line {i}" for i in range(1, 200001)]
    assert events[-1]["data"]["status"] == "completed"


async def test_slow_stream_consumer_resumes_from_the_journal(workspace: Path, data_dir: Path
                                                              ) -> None:
    write_job(workspace, "chatty", "interpreter: bash\n",
              {"100_chatty.sh": "for i in $(seq 1 100000); do echo \"line $i\"; done\n"})
    settings = settings_for(workspace, data_dir)
    async with open_engine(settings) as engine:
        run = await engine.start_run(make_plan(settings, "chatty"))
        events = []
        async for batch in engine.events(run.id):
            events.extend(expand([batch]))
            # Block the event loop now and then so the subscriber overflows and
            # has to catch up from the journal.
            if len(events) % 7 == 0:
                await trio.to_thread.run_sync(lambda: sum(range(200_000)))
    seqs = [e["seq"] for e in events]
    assert len(seqs) == len(set(seqs)) and seqs == sorted(seqs)
    lines = [e["data"]["message"] for e in events if e["type"] == "step.log"]
    assert lines == [f"line {i}" for i in range(1, 100001)]


async def test_concurrent_runs_get_unique_increasing_seqs(workspace: Path, data_dir: Path) -> None:
    settings = settings_for(workspace, data_dir)
    results: dict[str, list[dict]] = {}
    async with open_engine(settings) as engine:
        async def one(index: int) -> None:
            run = await engine.start_run(make_plan(settings, "examples.python", count="50"))
            results[run.id] = await collect(engine, run.id)

        async with trio.open_nursery() as nursery:
            for index in range(8):
                nursery.start_soon(one, index)
    all_seqs = [e["seq"] for events in results.values() for e in events]
    assert len(all_seqs) == len(set(all_seqs))
    for events in results.values():
        seqs = [e["seq"] for e in events]
        assert seqs == sorted(seqs)
        assert sum(e["type"] == "step.log" for e in events) == 50


async def test_shutdown_cancels_live_runs(workspace: Path, data_dir: Path) -> None:
    settings = settings_for(workspace, data_dir, grace=1.0)
    async with open_engine(settings) as engine:
        run = await engine.start_run(make_plan(settings, "examples.long"))
        async with aclosing(engine.events(run.id)) as stream:
            async for batch in stream:
                if any(str(e["data"].get("message", "")).startswith("long: leader")
                       for e in expand([batch])):
                    break
    # The engine is closed: the run was cancelled and journaled, its tree is gone.
    async with open_engine(settings) as engine:
        events = expand([batch async for batch in engine.events(run.id, follow=False)])
    assert events[-1]["type"] == "run.finish" and events[-1]["data"]["status"] == "canceled"
    canceled = next(e for e in events if e["type"] == "run.canceled")
    assert canceled["data"]["by"] == "shutdown"
    assert not processes_under(f"FLWD_RUN_ID={run.id}")


async def test_resume_after_cursor_has_no_gap_and_no_duplicate(workspace: Path, data_dir: Path
                                                               ) -> None:
    settings = settings_for(workspace, data_dir)
    async with open_engine(settings) as engine:
        run = await engine.start_run(make_plan(settings, "examples.python", count="30"))
        everything = await collect(engine, run.id)
        middle = everything[len(everything) // 2]["seq"]
        resumed = expand([b async for b in engine.events(run.id, after=middle)])
    assert [e["seq"] for e in resumed] == [e["seq"] for e in everything if e["seq"] > middle]


async def test_secret_files_exist_only_during_the_run(workspace: Path, data_dir: Path) -> None:
    write_job(workspace, "peek", """\
interpreter: bash
argspec: {args: [{name: key, type: string, format: secret}]}
""", {"100_peek.sh": 'stat -c %a "$ARG_KEY_FILE"; ls "$(dirname "$ARG_KEY_FILE")"\n'})
    settings = settings_for(workspace, data_dir)
    async with open_engine(settings) as engine:
        run = await engine.start_run(make_plan(settings, "peek", key="hunter2"))
        events = await collect(engine, run.id)
    lines = [e["data"]["message"] for e in events if e["type"] == "step.log"]
    assert lines == ["600", "key"]
    assert not (data_dir / "runs" / run.id / "secrets").exists()
    assert os.stat(data_dir / "runs" / run.id).st_mode & 0o777 == 0o700
