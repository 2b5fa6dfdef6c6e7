"""Actor-level tests of the journal's failure boundaries (issue 11 items 1 and 14).

- Poison-record isolation: records the Core DB cannot store are injected right
  into the journal actor (below the HTTP layer and the argument checks) while
  other runs stream; only the poisoned run or request fails.
- A crashed journal actor: every run it served still reaches a terminal state,
  and its subscribers see ``run.finish``.

Real SQLite files, real processes, real trio; no sleeps (gates are files).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import trio

from flwd.engine import EventHub, open_engine
from flwd.engine._journal import Append, JournalRef, run_journal
from flwd.errors import RecordUnstorable
from flwd.events import RUN_FINISH, STEP_LOG, EventRecord, RunRow
from flwd.store import JournalWriter, db_path, open_reader, read_events
from tests.conftest import processes_under, write_job

from .test_engine import expand, make_plan, settings_for

#: Streams numbered lines until its gate file exists, then 50 more, then exits 0.
GATED = """#!/bin/bash
i=0
while [ ! -e "$ARG_GATE" ]; do echo "line $i"; i=$((i + 1)); sleep 0.01; done
for j in $(seq 1 50); do echo "after $j"; done
"""


def write_gated(workspace: Path) -> None:
    write_job(workspace, "gated", """\
job: {id: gated}
argspec: {args: [{name: gate, type: string, required: true}]}
""", {"100_main.sh": GATED})


def assert_full_output(events: list[dict], *, gated: bool = True) -> None:
    """The gated job's whole output, in order, ending ``completed``."""
    lines = [e["data"]["message"] for e in events if e["type"] == STEP_LOG]
    before = [line for line in lines if line.startswith("line ")]
    assert before == [f"line {i}" for i in range(len(before))]
    assert bool(before) == gated
    assert lines[len(before):] == [f"after {j}" for j in range(1, 51)]
    assert events[-1]["type"] == RUN_FINISH and events[-1]["data"]["status"] == "completed"
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(set(seqs))


class Watched:
    """A run's event stream, collected in the background; ``streaming`` once it printed."""

    def __init__(self, engine, run_id: str) -> None:
        self.engine = engine
        self.run_id = run_id
        self.events: list[dict] = []
        self.streaming = trio.Event()
        self.done = trio.Event()

    async def collect(self) -> None:
        async for batch in self.engine.events(self.run_id):
            self.events += expand([batch])
            if any(e["type"] == STEP_LOG for e in self.events):
                self.streaming.set()
        self.done.set()


async def start_watched(engine, settings, nursery, gate: Path) -> Watched:
    run = await engine.start_run(make_plan(settings, "gated", gate=str(gate)))
    watched = Watched(engine, run.id)
    nursery.start_soon(watched.collect)
    return watched


async def test_poison_records_fail_only_their_run_or_request(workspace: Path, data_dir: Path
                                                             ) -> None:
    write_gated(workspace)
    gate = workspace / "gate"
    settings = settings_for(workspace, data_dir, grace=1.0)
    async with open_engine(settings) as engine, trio.open_nursery() as nursery:
        bystanders = [await start_watched(engine, settings, nursery, gate) for _ in range(3)]
        poisoned = await start_watched(engine, settings, nursery, gate)
        for watched in [*bystanders, poisoned]:
            with trio.fail_after(30):
                await watched.streaming.wait()
        journal: JournalRef = engine.root.supervisor.child_value("journal")
        # In one tick, so that they share a batch (and a transaction) with each
        # other and with the output the runs have queued meanwhile: a lone
        # surrogate in a live run's event, then a good record, then a run row
        # with an integer SQLite cannot hold.
        journal.cast_nowait(Append([EventRecord(
            run_id=poisoned.run_id, job_id="gated", type="step.start", ts=1.0,
            data={"step": "x\udc80y"})]))
        witness = EventRecord(run_id="", job_id="gated", type="policy.decision", ts=1.0,
                              data={"note": "a good record in the same batch"})
        huge = RunRow(id="run-poison", job_id="gated", status="queued", created_at=1.0,
                      exit_code=2**63)
        async with trio.open_nursery() as calls:
            results: dict[str, object] = {}

            async def call(name: str, items: Sequence[EventRecord | RunRow]) -> None:
                try:
                    results[name] = await journal.call(lambda reply: Append(items, reply))
                except RecordUnstorable as exc:
                    results[name] = exc

            calls.start_soon(call, "witness", [witness])
            calls.start_soon(call, "huge", [huge])
        assert isinstance(results["huge"], RecordUnstorable)
        assert "64-bit" in results["huge"].detail
        assert results["witness"] == [witness] and witness.seq > 0
        with trio.fail_after(30):
            await poisoned.done.wait()
        gate.touch()
        for watched in bystanders:
            with trio.fail_after(30):
                await watched.done.wait()
        finish = poisoned.events[-1]
        assert finish["type"] == RUN_FINISH and finish["data"]["status"] == "failed"
        assert "cannot store a step.start event" in finish["data"]["error"]
        assert "not valid Unicode" in finish["data"]["error"]
        assert (await engine.get_run(poisoned.run_id)).status == "failed"
        for watched in bystanders:
            assert_full_output(watched.events)
            assert (await engine.get_run(watched.run_id)).status == "completed"
        # The journal never crashed: one incarnation from start to end.
        assert engine.root.supervisor.child("journal").incarnation == 1
    assert not processes_under(f"FLWD_RUN_ID={poisoned.run_id}")
    with open_reader(db_path(data_dir)) as conn:
        stored = read_events(conn, poisoned.run_id, after=0, limit=10_000)
    assert all("\udc80" not in str(record.data) for record in stored)


async def test_a_refused_run_finish_is_replaced_by_a_plain_one(tmp_path: Path) -> None:
    writer = JournalWriter(tmp_path / "flwd.db")
    writer.start()
    hub = EventHub()
    refused: list[RecordUnstorable] = []
    try:
        async with trio.open_nursery() as nursery:
            journal: JournalRef = await nursery.start(partial_journal(writer, hub, refused))
            subscription = hub.subscribe("run-1")
            await journal.call(lambda reply: Append(
                [RunRow(id="run-1", job_id="j", status="queued", created_at=1.0)], reply))
            # A run.finish whose exit code no SQLite INTEGER holds, sent without a reply
            # as a run actor sends it.
            await journal.cast(Append([EventRecord(
                run_id="run-1", job_id="j", type=RUN_FINISH, ts=2.0,
                data={"status": "completed", "exit_code": 2**64})]))
            with trio.fail_after(10):
                batch = await subscription.receive.receive()
            journal.close()
    finally:
        writer.close()
    assert [record.type for record in batch] == [RUN_FINISH]
    assert batch[0].data["status"] == "failed"
    assert "64-bit" in batch[0].data["error"]
    assert len(refused) == 1 and "run.finish event of run run-1" in refused[0].detail
    with open_reader(tmp_path / "flwd.db") as conn:
        from flwd.store import get_run

        assert get_run(conn, "run-1").status == "failed"


def partial_journal(writer: JournalWriter, hub: EventHub, refused: list[RecordUnstorable]):
    async def start(*, task_status: trio.TaskStatus[JournalRef]) -> None:
        await run_journal(writer, hub, on_refused=lambda error, items: refused.append(error),
                          task_status=task_status)

    return start


async def test_a_crashed_journal_leaves_no_run_running(workspace: Path, data_dir: Path) -> None:
    write_gated(workspace)
    gate = workspace / "gate"  # never opened: the runs stream until they are stopped
    settings = settings_for(workspace, data_dir, grace=1.0)
    async with open_engine(settings) as engine, trio.open_nursery() as nursery:
        runs = [await start_watched(engine, settings, nursery, gate) for _ in range(2)]
        for watched in runs:
            with trio.fail_after(30):
                await watched.streaming.wait()

        def explode(batch: Sequence[EventRecord]) -> None:
            # A hub tap that raises (once): the journal actor crashes right
            # after a commit, before it published the batch.
            engine.hub.taps.remove(explode)
            raise RuntimeError("tap exploded")

        engine.hub.taps.append(explode)
        for watched in runs:
            with trio.fail_after(30):
                await watched.done.wait()
        assert engine.root.supervisor.child("journal").incarnation == 2
        for watched in runs:
            finish = watched.events[-1]
            assert finish["type"] == RUN_FINISH and finish["data"]["status"] == "failed"
            assert finish["data"]["error"].startswith(
                "the journal crashed (RuntimeError: tap exploded)")
            # Every committed record reached the stream (the crash came between a
            # commit and its publication): the lines have no gap.
            lines = [e["data"]["message"] for e in watched.events if e["type"] == STEP_LOG]
            assert lines == [f"line {i}" for i in range(len(lines))]
            run = await engine.get_run(watched.run_id)
            assert run.status == "failed" and run.error == finish["data"]["error"]
            # A subscriber arriving now replays to the end, it does not hang.
            with trio.fail_after(10):
                late = expand([batch async for batch in engine.events(watched.run_id)])
            assert late[-1] == finish
            assert not processes_under(f"FLWD_RUN_ID={watched.run_id}")
        # The restarted journal serves new runs as before.
        gate.touch()
        after = await start_watched(engine, settings, nursery, gate)
        with trio.fail_after(30):
            await after.done.wait()
        assert_full_output(after.events, gated=False)
