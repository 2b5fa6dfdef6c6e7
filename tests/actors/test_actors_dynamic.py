"""The dynamic supervisor: children on request, temporary failures are results."""

from dataclasses import dataclass

import outcome
import pytest
import trio
import trio.testing

from actors import (
    Actor,
    ActorRef,
    ActorStopped,
    ChildNotFound,
    ChildSpec,
    DuplicateChildName,
    DynamicSupervisor,
    ReplySlot,
    RestartIntensityExceeded,
    RestartPolicy,
    TooManyChildren,
)


@dataclass(frozen=True)
class Ping:
    reply: ReplySlot[str]


@dataclass(frozen=True)
class Fail:
    pass


JobMsg = Ping | Fail


class Job(Actor[JobMsg]):
    def __init__(self, name: str, stopped: list[str] | None = None) -> None:
        self.name = name
        self.stopped = stopped

    async def handle(self, message: JobMsg) -> None:
        match message:
            case Ping(reply):
                reply.reply(f"pong from {self.name}")
            case Fail():
                raise RuntimeError(f"{self.name} failed")

    def on_stop(self) -> None:
        if self.stopped is not None:
            self.stopped.append(self.name)


def job_spec(
    name: str,
    stopped: list[str] | None = None,
    restart: RestartPolicy = RestartPolicy.TEMPORARY,
) -> ChildSpec[ActorRef[JobMsg]]:
    return ChildSpec.for_actor(name, lambda: Job(name, stopped), restart=restart)


async def ping(ref: ActorRef[JobMsg]) -> str:
    answer: str = await ref.call(lambda reply: Ping(reply))
    return answer


async def test_crashing_temporary_child_disturbs_nobody(autojump_clock: trio.abc.Clock) -> None:
    exits: list[tuple[str, outcome.Outcome[None]]] = []
    exited = trio.Event()

    def on_child_exit(name: str, result: outcome.Outcome[None]) -> None:
        exits.append((name, result))
        exited.set()

    runs = DynamicSupervisor("runs", on_child_exit=on_child_exit)
    async with trio.open_nursery() as nursery:
        assert await nursery.start(runs.run) is runs
        first = await runs.start_child(job_spec("run-1"))
        second = await runs.start_child(job_spec("run-2"))
        assert [child.name for child in runs.children()] == ["run-1", "run-2"]

        await first.cast(Fail())
        with trio.fail_after(1):
            await exited.wait()
        ((name, result),) = exits
        assert name == "run-1"
        assert isinstance(result, outcome.Error) and isinstance(result.error, RuntimeError)
        assert [child.name for child in runs.children()] == ["run-2"]
        assert await ping(second) == "pong from run-2"
        # The name is free again, and the supervisor still takes requests.
        again = await runs.start_child(job_spec("run-1"))
        assert await ping(again) == "pong from run-1"
        await runs.aclose()


async def test_stop_child_and_errors(autojump_clock: trio.abc.Clock) -> None:
    stopped: list[str] = []
    exits: list[str] = []
    runs = DynamicSupervisor(
        "runs", max_children=2, on_child_exit=lambda name, result: exits.append(name)
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(runs.run)
        ref = await runs.start_child(job_spec("a", stopped))
        with pytest.raises(DuplicateChildName):
            await runs.start_child(job_spec("a"))
        await runs.start_child(job_spec("b", stopped))
        with pytest.raises(TooManyChildren):
            await runs.start_child(job_spec("c"))

        await runs.stop_child("a")
        assert stopped == ["a"] and exits == ["a"]
        assert not ref.is_alive
        with pytest.raises(ChildNotFound):
            await runs.stop_child("a")
        with pytest.raises(ChildNotFound):
            runs.child("a")
        assert runs.child("b").running
        await runs.aclose()
    assert stopped == ["a", "b"]
    with pytest.raises(ActorStopped):
        await runs.start_child(job_spec("late"))


async def test_child_that_fails_to_start_raises_to_the_requester() -> None:
    async def broken(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        raise OSError("image not found")

    runs = DynamicSupervisor("runs")
    async with trio.open_nursery() as nursery:
        await nursery.start(runs.run)
        with pytest.raises(OSError, match="image not found"):
            await runs.start_child(ChildSpec("broken", broken, restart=RestartPolicy.TEMPORARY))
        assert runs.children() == []
        await runs.aclose()


async def test_shutdown_stops_children_in_reverse_start_order(
    autojump_clock: trio.abc.Clock,
) -> None:
    stopped: list[str] = []
    runs = DynamicSupervisor("runs")
    async with trio.open_nursery() as nursery:
        await nursery.start(runs.run)
        for name in ("one", "two", "three"):
            await runs.start_child(job_spec(name, stopped))
        runs.close()
    assert stopped == ["three", "two", "one"]


async def test_restart_policies_are_honoured(autojump_clock: trio.abc.Clock) -> None:
    runs = DynamicSupervisor("runs", max_restarts=1)
    escalated = pytest.RaisesExc(
        RestartIntensityExceeded, check=lambda error: isinstance(error.__cause__, RuntimeError)
    )
    with pytest.RaisesGroup(escalated):
        async with trio.open_nursery() as nursery:
            await nursery.start(runs.run)
            ref = await runs.start_child(job_spec("worker", restart=RestartPolicy.PERMANENT))
            handle = runs.child("worker")
            await ref.cast(Fail())
            restarted = await handle.wait_started(newer_than=1)
            assert await ping(restarted) == "pong from worker"
            # A second crash within the window is one restart too many.
            await restarted.cast(Fail())
            await trio.sleep_forever()


async def test_requests_to_a_cancelled_dynamic_supervisor_fail(
    autojump_clock: trio.abc.Clock,
) -> None:
    release = trio.Event()

    async def slow_start(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await release.wait()
        task_status.started()

    runs = DynamicSupervisor("runs")
    results: list[BaseException] = []

    async def request() -> None:
        try:
            await runs.start_child(ChildSpec("slow", slow_start))
        except ActorStopped as error:
            results.append(error)

    with trio.fail_after(1):
        async with trio.open_nursery() as callers:
            async with trio.open_nursery() as nursery:
                await nursery.start(runs.run)
                callers.start_soon(request)
                await trio.testing.wait_all_tasks_blocked()
                nursery.cancel_scope.cancel(reason="test: cancel the dynamic supervisor")
    assert len(results) == 1
