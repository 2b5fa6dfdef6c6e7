"""The notifier actor on trio's autojump clock (issue 16 item 3): ``running_longer_than``
once per run while it runs, retries with backoff and jitter, ``after_failures`` counted from
the Core DB across restarts, the per-sink bound, the queue's bound, and the drain at stop.

A real Core DB (the deliveries' rows are written with their events) and the real notifier;
the sinks are a script (real ones are tested end to end in tests/e2e/test_notify_*.py),
so that virtual time is the only time there is.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio
import trio.testing

from flwd.events import NOTIFY_DELIVERY, RUN_FINISH, RUN_START, EventRecord, RunRow
from flwd.jobs import NotifyRule, parse_config
from flwd.notify import QUEUE, SINK_PENDING, Attempt, Notification, Notifier, WorkspaceRules
from flwd.store import SqliteStore

MINUTE = 60.0
HOUR = 3600.0
WORKSPACE = "/ws"


def rules_of(text: str) -> list[NotifyRule]:
    return parse_config(text, path="config.yaml").config.notify


class Script:
    """A sender answering from a script (the last answer repeats); a rule named ``slow``
    never answers. Records each call: (rule name, event, run id, trio time)."""

    def __init__(self, *answers: Attempt) -> None:
        self.answers = list(answers) or [Attempt(True, status=200)]
        self.calls: list[tuple[str | None, str, str, float]] = []
        self.notes: list[Notification] = []

    async def send(self, rule: NotifyRule, note: Notification) -> Attempt:
        self.calls.append((rule.name, note.event, note.run_id, trio.current_time()))
        self.notes.append(note)
        if rule.name == "slow":
            await trio.sleep_forever()
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


class Counted:
    """An observer of deliveries (the rest of the Observer is not called here)."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], int] = {}

    def notification(self, sink_kind: str, outcome: str) -> None:
        self.counts[sink_kind, outcome] = self.counts.get((sink_kind, outcome), 0) + 1

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args: None


class Harness:
    """A Core DB, a notifier journaling into it, and runs told to the notifier as the
    engine tells it (armed, then each committed run.start and run.finish)."""

    def __init__(self, tmp: Path, sender: Script) -> None:
        self.store = SqliteStore(tmp / "flwd.db")
        self.store.migrate()
        self.sender = sender
        self.root = tmp / "scripts"
        self.root.mkdir(exist_ok=True)
        self.observer = Counted()
        self.journaled: list[EventRecord] = []
        self._changed = trio.Event()
        self.count = 0

    def notifier(self, **options: Any) -> Notifier:
        async def journal(records: Sequence[EventRecord]) -> None:
            await trio.lowlevel.checkpoint()
            self.journaled += self.store.append(list(records))
            self._changed.set()
            self._changed = trio.Event()

        @asynccontextmanager
        async def sinks() -> AsyncIterator[Script]:
            yield self.sender

        return Notifier(self.store, journal, sinks, rules=WorkspaceRules(self.root),
                        observer=self.observer,
                        rng=random.Random(16), **{"offload": inline, **options})

    async def start(self, notifier: Notifier, rules: Sequence[NotifyRule], *,
                    job_id: str = "backup") -> RunRow:
        self.count += 1
        run = RunRow(id=f"run-{self.count:04d}", job_id=job_id, status="queued",
                     created_at=1_800_000_000.0 + self.count, workspace=WORKSPACE)
        self.store.append([run])
        notifier.arm(run, rules)
        notifier.observe(self.store.append([EventRecord(
            run.id, job_id, RUN_START, 1_800_000_000.0 + self.count, {})]))
        await trio.lowlevel.checkpoint()
        return run

    async def finish(self, notifier: Notifier, run: RunRow, status: str) -> None:
        notifier.observe(self.store.append([EventRecord(
            run.id, run.job_id, RUN_FINISH, 1_800_000_000.5 + self.count, {"status": status})]))
        await trio.lowlevel.checkpoint()

    async def run(self, notifier: Notifier, rules: Sequence[NotifyRule], status: str) -> RunRow:
        run = await self.start(notifier, rules)
        await self.finish(notifier, run, status)
        return run

    def outcomes(self, run_id: str | None = None) -> list[tuple[str, int, str]]:
        return [(r.data["event"], r.data["attempt"], r.data["outcome"]) for r in self.journaled
                if r.type == NOTIFY_DELIVERY and run_id in (None, r.run_id)]

    async def until(self, holds: Callable[[], bool]) -> None:
        # Virtual time: a wait that never ends fails at once (the clock jumps to it).
        with trio.fail_after(24 * HOUR):
            while not holds():
                await self._changed.wait()


async def inline(call: Callable[[], Any]) -> Any:
    # The Core DB's reads, in trio's thread: a worker thread's wait would let the
    # autojump clock run ahead of what the notifier has done.
    await trio.lowlevel.checkpoint()
    return call()


@asynccontextmanager
async def running(notifier: Notifier) -> AsyncIterator[Notifier]:
    async with trio.open_nursery() as nursery:
        await nursery.start(notifier.run)
        yield notifier
        notifier.close()


async def test_running_longer_than_fires_once_per_run_while_it_runs(
        tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    harness = Harness(tmp_path, Script())
    rules = rules_of("notify: {running_longer_than: 10m, command: [x]}")
    async with running(harness.notifier()) as notifier:
        started = trio.current_time()
        slow = await harness.start(notifier, rules)
        quick = await harness.start(notifier, rules)
        await trio.sleep(5 * MINUTE)
        await harness.finish(notifier, quick, "completed")  # before its 10 minutes
        await trio.sleep(5 * MINUTE - 1)
        assert harness.sender.calls == []
        await harness.until(lambda: len(harness.outcomes()) == 1)
        [(_, event, run_id, at)] = harness.sender.calls
        assert (event, run_id, at - started) == ("running_longer_than", slow.id, 10 * MINUTE)
        note = harness.sender.notes[0].document
        assert note["running_seconds"] == 600 and note["run"]["status"] == "running"
        await trio.sleep(HOUR)
        await harness.finish(notifier, slow, "completed")
        await trio.sleep(HOUR)
    assert len(harness.sender.calls) == 1, "once per run, and never for the run that ended"
    assert harness.outcomes(slow.id) == [("running_longer_than", 1, "delivered")]


async def test_failed_attempts_are_retried_with_backoff_and_jitter_then_delivered(
        tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    harness = Harness(tmp_path, Script(Attempt(False, status=500, error="HTTP 500", retry=True),
                                       Attempt(False, error="timed out", retry=True),
                                       Attempt(False, status=429, retry=True, retry_after=90),
                                       Attempt(True, status=200)))
    rules = rules_of("notify: {on: [failure], webhook: {url: 'http://h.example', "
                     "backoff: 10s, attempts: 6}}")
    async with running(harness.notifier()) as notifier:
        run = await harness.run(notifier, rules, "failed")
        await harness.until(lambda: ("failure", 4, "delivered") in harness.outcomes())
    times = [at for *_, at in harness.sender.calls]
    waits = [later - earlier for earlier, later in itertools.pairwise(times)]
    # 10 s doubled per attempt, times a factor in [0.5, 1]; at least the Retry-After.
    assert 5 <= waits[0] <= 10 and 10 <= waits[1] <= 20 and waits[2] == 90
    assert harness.outcomes() == [("failure", 1, "retrying"), ("failure", 2, "retrying"),
                                  ("failure", 3, "retrying"), ("failure", 4, "delivered")]
    announced = [r.data["next_retry_in"] for r in harness.journaled]
    assert announced[:3] == [round(wait, 3) for wait in waits] and announced[3] is None
    # One notification: every attempt carries the same body and delivery id.
    assert len({note.body for note in harness.sender.notes}) == 1
    rows = harness.store.notify_deliveries(run.id)
    assert [(row.attempt, row.outcome, row.detail["status"]) for row in rows] == [
        (1, "retrying", 500), (2, "retrying", None), (3, "retrying", 429), (4, "delivered", 200)]
    assert rows[0].to_json()["sink_kind"] == "webhook" and rows[0].sink == "notify[0]"
    assert harness.observer.counts == {("webhook", "retrying"): 3, ("webhook", "delivered"): 1}


async def test_a_delivery_gives_up_after_its_attempts_and_at_once_when_refused(
        tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    harness = Harness(tmp_path, Script(Attempt(False, status=503, retry=True)))
    rules = rules_of("notify: {on: [failure], command: {argv: [x], attempts: 3}}")
    refused = rules_of("notify: {on: [failure], command: [x]}")  # one attempt by default
    async with running(harness.notifier()) as notifier:
        first = await harness.run(notifier, rules, "failed")
        await harness.until(lambda: ("failure", 3, "failed") in harness.outcomes(first.id))
        harness.sender.answers = [Attempt(False, status=404, error="HTTP 404")]
        second = await harness.run(notifier, refused, "failed")
        await harness.until(lambda: bool(harness.outcomes(second.id)))
    assert harness.outcomes(first.id) == [("failure", 1, "retrying"), ("failure", 2, "retrying"),
                                          ("failure", 3, "failed")]
    assert harness.outcomes(second.id) == [("failure", 1, "failed")]
    assert harness.journaled[-1].data["error"] == "HTTP 404"
    assert harness.journaled[-1].data["next_retry_in"] is None


async def test_after_failures_counts_the_job_s_runs_in_the_core_db_across_restarts(
        tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    harness = Harness(tmp_path, Script())
    rules = rules_of("notify: {after_failures: 3, on: [recovery, canceled], command: [x]}")
    async with running(harness.notifier()) as notifier:
        for status in ("failed", "failed", "canceled"):
            await harness.run(notifier, rules, status)
        await harness.until(lambda: len(harness.outcomes()) == 1)
    assert harness.outcomes() == [("canceled", 1, "delivered")]
    # A new notifier (a restarted server) knows nothing but what the Core DB holds.
    async with running(harness.notifier()) as notifier:
        third = await harness.run(notifier, rules, "failed")
        await harness.until(lambda: bool(harness.outcomes(third.id)))
        await harness.run(notifier, rules, "failed")  # the 4th: already told
        recovered = await harness.run(notifier, rules, "completed")
        await harness.until(lambda: bool(harness.outcomes(recovered.id)))
    assert [(event, run_id) for _, event, run_id, _ in harness.sender.calls] == [
        ("canceled", "run-0003"), ("failure", third.id), ("recovery", recovered.id)]
    assert harness.sender.notes[1].document["consecutive_failures"] == 3


async def test_a_hanging_sink_holds_its_bound_the_others_deliver_and_stopping_abandons(
        tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    harness = Harness(tmp_path, Script())
    rules = rules_of("notify: [{name: slow, on: [failure], command: [x]}, "
                     "{name: fine, on: [failure], command: [y]}]")
    notifier = harness.notifier(drain_timeout=30.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(notifier.run)
        runs = [await harness.run(notifier, rules, "failed") for _ in range(SINK_PENDING + 1)]
        await harness.until(lambda: sum(o == "delivered" for *_, o in harness.outcomes())
                            == SINK_PENDING + 1)
        await harness.until(lambda: ("failure", 0, "dropped") in harness.outcomes())
        last = [row for row in harness.journaled if row.run_id == runs[-1].id]
        assert {(r.data["sink"], r.data["outcome"]) for r in last} == {
            ("slow", "dropped"), ("fine", "delivered")}
        assert "32 deliveries of this sink were pending already" in str(
            [r.data["error"] for r in last])
        closed = trio.current_time()
        notifier.close()
    assert trio.current_time() - closed == 30.0, "stopping waits drain_timeout, no more"
    abandoned = [r for r in harness.journaled if r.data.get("outcome") == "abandoned"]
    assert len(abandoned) == SINK_PENDING
    assert {(r.data["sink"], r.data["attempt"], r.data["error"]) for r in abandoned} == {
        ("slow", 1, "flwd stopped: attempt 1 did not finish")}
    assert harness.observer.counts[("command", "abandoned")] == SINK_PENDING


async def test_a_full_queue_drops_the_run_s_notifications_and_counts_them(
        tmp_path: Path) -> None:
    harness = Harness(tmp_path, Script())
    notifier = harness.notifier()  # not running: nothing takes from its queue
    rules = rules_of("notify: {on: [failure], command: [x]}")
    for index in range(QUEUE + 1):
        notifier.arm(RunRow(id=f"run-{index}", job_id="j", status="queued", created_at=0.0),
                     rules)
    assert harness.observer.counts == {("unknown", "dropped"): 1}


async def test_the_workspace_rules_are_read_in_a_thread_only_when_flwd_yaml_changed(
        tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    # Every run asks for them: a stat in trio's thread when nothing changed, not a hand-off
    # to a worker thread and back per run; a change is still read (away from trio) and used.
    harness = Harness(tmp_path, Script())
    path = harness.root / "flwd.yaml"
    path.write_text("notify:\n  name: first\n  on: [failure]\n  command: [x]\n")
    offloaded: list[str] = []

    async def counting(call: Callable[[], Any]) -> Any:
        offloaded.append(getattr(call, "__name__", repr(call)))
        return await inline(call)

    async with running(harness.notifier(offload=counting)) as notifier:
        for _ in range(3):
            await harness.run(notifier, [], "failed")
        await harness.until(lambda: len(harness.outcomes()) == 3)
        assert offloaded.count("current") == 1
        path.write_text("notify:\n  name: second\n  on: [failure]\n  command: [x, y]\n")
        await harness.run(notifier, [], "failed")
        await harness.until(lambda: len(harness.outcomes()) == 4)
        assert offloaded.count("current") == 2
        path.unlink()
        await harness.run(notifier, [], "failed")
        await harness.run(notifier, [], "failed")
        await trio.sleep(HOUR)
    assert [call[0] for call in harness.sender.calls] == ["first"] * 3 + ["second"]
    assert offloaded.count("current") == 2
