"""One-for-one supervision: restarts, policies, intensity, cancellation, ordered shutdown."""

from collections import Counter
from dataclasses import dataclass
from itertools import pairwise
from random import Random

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
    ReplySlot,
    RestartIntensityExceeded,
    RestartPolicy,
    Supervisor,
    open_supervisor,
)


class MaxJitter(Random):
    """Always the full backoff: delays become exactly base * 2**n."""

    def uniform(self, a: float, b: float) -> float:
        return b


@dataclass(frozen=True)
class Increment:
    pass


@dataclass(frozen=True)
class Crash:
    pass


@dataclass(frozen=True)
class GetCount:
    reply: ReplySlot[int]


CounterMsg = Increment | Crash | GetCount


class CounterActor(Actor[CounterMsg]):
    def __init__(self, name: str, events: list[tuple[str, str]] | None = None) -> None:
        self.name = name
        self.count = 0
        self.events = events

    async def handle(self, message: CounterMsg) -> None:
        match message:
            case Increment():
                self.count += 1
            case Crash():
                raise ValueError(f"{self.name} crashed")
            case GetCount(reply):
                reply.reply(self.count)

    def on_stop(self) -> None:
        if self.events is not None:
            self.events.append(("stopped", self.name))


def counter_spec(
    name: str, events: list[tuple[str, str]] | None = None
) -> ChildSpec[ActorRef[CounterMsg]]:
    def ask_to_stop(ref: ActorRef[CounterMsg]) -> None:
        if events is not None:
            events.append(("asked", name))
        ref.close()

    return ChildSpec.for_actor(name, lambda: CounterActor(name, events), stop=ask_to_stop)


async def get_count(ref: ActorRef[CounterMsg]) -> int:
    count: int = await ref.call(lambda reply: GetCount(reply))
    return count


# -- 1. restart one, leave the siblings alone -------------------------------------


async def test_crashing_child_is_restarted_and_siblings_are_untouched(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with open_supervisor("root", [counter_spec(name) for name in "abc"]) as supervisor:
        refs = {name: supervisor.child_value(name) for name in "abc"}
        for ref in refs.values():
            await ref.cast(Increment())
        b = supervisor.child("b")
        await refs["b"].cast(Crash())
        with trio.fail_after(10):
            new_b = await b.wait_started(newer_than=1)

        assert new_b is not refs["b"] and new_b is supervisor.child_value("b")
        assert b.incarnation == 2
        assert await get_count(new_b) == 0
        with pytest.raises(ActorStopped) as info:
            await get_count(refs["b"])
        assert isinstance(info.value.__cause__, ValueError)
        for name in "ac":
            assert supervisor.child_value(name) is refs[name]
            assert supervisor.child(name).incarnation == 1
            assert await get_count(refs[name]) == 1


async def test_child_lookup_errors() -> None:
    with pytest.raises(DuplicateChildName):
        Supervisor("root", [counter_spec("a"), counter_spec("a")])
    supervisor = Supervisor("root", [counter_spec("a")])
    with pytest.raises(ChildNotFound):
        supervisor.child("nope")
    with pytest.raises(ActorStopped):
        supervisor.child_value("a")
    await supervisor.aclose()


# -- 2. restart intensity and backoff ---------------------------------------------


async def test_restart_intensity_exceeded_escalates_after_growing_backoff(
    autojump_clock: trio.abc.Clock,
) -> None:
    start_times: list[float] = []
    sibling_stopped = trio.Event()

    async def flaky(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        start_times.append(trio.current_time())
        task_status.started()
        raise ValueError("flaky")

    async def sibling(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        try:
            await trio.sleep_forever()
        finally:
            sibling_stopped.set()

    supervisor = Supervisor(
        "root",
        [ChildSpec("sibling", sibling), ChildSpec("flaky", flaky)],
        max_restarts=3,
        max_seconds=10.0,
        backoff_base=0.1,
        random=MaxJitter(),
    )
    with pytest.raises(RestartIntensityExceeded) as info:
        await supervisor.run()

    assert (info.value.supervisor_name, info.value.child_name) == ("root", "flaky")
    assert isinstance(info.value.__cause__, ValueError)
    # One start and three restarts, each after twice the previous delay.
    gaps = [later - earlier for earlier, later in pairwise(start_times)]
    assert gaps == pytest.approx([0.1, 0.2, 0.4])
    assert sibling_stopped.is_set()


async def test_escalation_during_startup_fails_the_start(autojump_clock: trio.abc.Clock) -> None:
    attempts = 0

    async def broken(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        nonlocal attempts
        attempts += 1
        raise OSError("cannot start")

    supervisor = Supervisor("root", [ChildSpec("broken", broken)], max_restarts=2)
    async with trio.open_nursery() as nursery:
        with pytest.raises(RestartIntensityExceeded) as info:
            await nursery.start(supervisor.run)
    assert isinstance(info.value.__cause__, OSError)
    assert attempts == 3


async def test_backoff_resets_after_a_stable_incarnation(autojump_clock: trio.abc.Clock) -> None:
    start_times: list[float] = []

    async def child(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        start_times.append(trio.current_time())
        task_status.started()
        if len(start_times) == 3:
            await trio.sleep(10)  # autojump clock: 10 s of simulated uptime > stable_after
        if len(start_times) < 4:
            raise ValueError("crash")
        await trio.sleep_forever()

    async with open_supervisor(
        "root",
        [ChildSpec("child", child)],
        max_restarts=10,
        max_seconds=60.0,
        stable_after=5.0,
        random=MaxJitter(),
    ) as supervisor:
        await supervisor.child("child").wait_started(newer_than=3)
    gaps = [later - earlier for earlier, later in pairwise(start_times)]
    assert gaps == pytest.approx([0.1, 0.2, 10.1])


# -- 3. a cancelled supervisor restarts nothing -------------------------------------


async def test_cancelled_supervisor_never_restarts_anything(autojump_clock: trio.abc.Clock) -> None:
    starts: Counter[str] = Counter()

    async def raises_when_cancelled(
        *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        starts["raises"] += 1
        task_status.started()
        try:
            await trio.sleep_forever()
        finally:
            raise RuntimeError("cleanup failed")  # replaces the Cancelled

    async def obeys_cancellation(
        *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        starts["obeys"] += 1
        task_status.started()
        await trio.sleep_forever()

    async def swallows_cancellation(
        *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        starts["swallows"] += 1
        task_status.started()
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            return  # a badly behaved child: returns normally when cancelled

    async def in_backoff(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        starts["backoff"] += 1
        task_status.started()
        raise ValueError("crashed before the cancellation")

    policies = RestartPolicy.PERMANENT, RestartPolicy.TRANSIENT
    specs = [
        ChildSpec(f"{start.__name__}-{policy.value}", start, restart=policy)
        for start in (raises_when_cancelled, obeys_cancellation, swallows_cancellation, in_backoff)
        for policy in policies
    ]
    supervisor = Supervisor("root", specs, backoff_base=100.0, backoff_cap=100.0)
    with trio.CancelScope() as outer:
        async with trio.open_nursery() as nursery:
            await nursery.start(supervisor.run)
            # Everyone is parked: the crashed children sleep in their 100 s backoff.
            await trio.testing.wait_all_tasks_blocked()
            outer.cancel(reason="test: cancel the supervisor")
    assert outer.cancelled_caught
    assert starts == {"raises": 2, "obeys": 2, "swallows": 2, "backoff": 2}
    assert all(not child.running for child in supervisor.children())


# -- 5. restart policies -------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "crash", "restarted"),
    [
        (RestartPolicy.PERMANENT, True, True),
        (RestartPolicy.PERMANENT, False, True),
        (RestartPolicy.TRANSIENT, True, True),
        (RestartPolicy.TRANSIENT, False, False),
        (RestartPolicy.TEMPORARY, True, False),
        (RestartPolicy.TEMPORARY, False, False),
    ],
)
async def test_restart_policy(
    policy: RestartPolicy, crash: bool, restarted: bool, autojump_clock: trio.abc.Clock
) -> None:
    incarnations = 0
    exits: list[tuple[str, outcome.Outcome[None]]] = []

    async def child(*, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        nonlocal incarnations
        incarnations += 1
        task_status.started(incarnations)
        if incarnations == 1:
            if crash:
                raise ValueError("first incarnation crashed")
            return
        await trio.sleep_forever()

    async with open_supervisor(
        "root",
        [counter_spec("sibling"), ChildSpec("child", child, restart=policy)],
        on_child_exit=lambda name, result: exits.append((name, result)),
    ) as supervisor:
        handle = supervisor.child("child")
        sibling = supervisor.child_value("sibling")
        with trio.fail_after(10):
            if restarted:
                assert await handle.wait_started(newer_than=1) == 2
                assert exits == []
            else:
                await handle.wait_done()
                assert handle.done and not handle.running
                with pytest.raises(ActorStopped):
                    await handle.wait_started()
                ((name, result),) = exits
                assert name == "child"
                if crash:
                    assert isinstance(result, outcome.Error)
                    assert isinstance(result.error, ValueError)
                else:
                    assert result == outcome.Value(None)
        # The supervisor and the sibling carry on either way.
        assert supervisor.child_value("sibling") is sibling
        assert await get_count(sibling) == 0
    assert incarnations == (2 if restarted else 1)


# -- 6. ordered shutdown ---------------------------------------------------------------


async def test_shutdown_stops_children_in_reverse_order(autojump_clock: trio.abc.Clock) -> None:
    events: list[tuple[str, str]] = []
    supervisor = Supervisor("root", [counter_spec(name, events) for name in "abc"])
    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)
        for name in "abc":
            await supervisor.child_value(name).cast(Increment())
        before = trio.current_time()
        await supervisor.aclose()
        # Graceful requests were honoured at once: nobody waited for a grace period.
        assert trio.current_time() == before
    assert events == [
        ("asked", "c"),
        ("stopped", "c"),
        ("asked", "b"),
        ("stopped", "b"),
        ("asked", "a"),
        ("stopped", "a"),
    ]
    assert all(child.done for child in supervisor.children())


async def test_shutdown_grace_is_bounded_then_the_child_is_cancelled(
    autojump_clock: trio.abc.Clock,
) -> None:
    cancelled_at: dict[str, float] = {}
    reasons: dict[str, str | None] = {}
    asked: list[str] = []

    class IgnoresClose:
        def close(self) -> None:
            asked.append("stubborn")

    async def stubborn(
        *, task_status: trio.TaskStatus[IgnoresClose] = trio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started(IgnoresClose())
        try:
            await trio.sleep_forever()
        except trio.Cancelled as cancelled:
            cancelled_at["stubborn"] = trio.current_time()
            reasons["stubborn"] = cancelled.reason
            raise

    async def no_close(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        try:
            await trio.sleep_forever()
        except trio.Cancelled as cancelled:
            cancelled_at["no_close"] = trio.current_time()
            reasons["no_close"] = cancelled.reason
            raise

    supervisor = Supervisor(
        "root",
        [
            ChildSpec("stubborn", stubborn, shutdown_timeout=3.0),
            ChildSpec("no_close", no_close, shutdown_timeout=3.0),
        ],
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)
        start = trio.current_time()
        await supervisor.aclose()
    assert asked == ["stubborn"]
    # Without a graceful request there is nothing to wait for: cancelled at once.
    assert cancelled_at["no_close"] == start
    assert cancelled_at["stubborn"] == start + 3.0
    assert reasons == {
        "no_close": "supervisor 'root' shutting down",
        "stubborn": "supervisor 'root' shutting down: shutdown grace of 3.0s expired",
    }


async def test_a_child_supervisor_is_shut_down_in_order(autojump_clock: trio.abc.Clock) -> None:
    events: list[tuple[str, str]] = []
    inner = Supervisor("inner", [counter_spec(name, events) for name in ("x", "y")])
    async with open_supervisor(
        "outer", [counter_spec("first", events), ChildSpec("inner", inner.run)]
    ) as outer:
        assert outer.child_value("inner") is inner
        assert inner.child_value("x").is_alive
    assert [name for kind, name in events if kind == "stopped"] == ["y", "x", "first"]


async def test_a_supervisor_that_gave_up_is_restarted_by_its_parent(
    autojump_clock: trio.abc.Clock,
) -> None:
    starts = 0

    async def fragile(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        nonlocal starts
        starts += 1
        task_status.started()
        if starts <= 2:
            raise ValueError("fragile")  # twice: one restart too many for "inner"
        await trio.sleep_forever()

    inner = Supervisor("inner", [ChildSpec("fragile", fragile)], max_restarts=1)
    async with open_supervisor("outer", [ChildSpec("inner", inner.run)]) as outer:
        with trio.fail_after(10):
            assert await outer.child("inner").wait_started(newer_than=1) is inner
        # A fresh run of the same supervisor object: clean restart window and handles.
        assert inner.child("fragile").running
        assert inner.child("fragile").incarnation == 1
    assert starts == 3
