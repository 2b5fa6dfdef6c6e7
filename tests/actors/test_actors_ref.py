"""Refs, reply slots and inboxes: request/reply never hangs on a dead actor."""

from dataclasses import dataclass

import pytest
import trio
import trio.testing

from actors import Actor, ActorRef, ActorStopped, Inbox, ReplySlot, start_actor
from actors.testing import RecordingActor


@dataclass(frozen=True)
class Echo:
    value: int
    reply: ReplySlot[int]


@dataclass(frozen=True)
class Refuse:
    reply: ReplySlot[int]


@dataclass(frozen=True)
class Boom:
    reply: ReplySlot[int]


@dataclass(frozen=True)
class Hold:
    """The actor keeps the slot to answer later, and never does."""

    reply: ReplySlot[int]


@dataclass(frozen=True)
class Block:
    release: trio.Event


Msg = Echo | Refuse | Boom | Hold | Block


class Server(Actor[Msg]):
    name = "server"
    # Tiny on purpose: tests fill it to see queued and blocked senders.
    inbox_capacity = 2

    def __init__(self) -> None:
        self.held: list[ReplySlot[int]] = []
        self.blocked = trio.Event()
        self.stopped = False

    async def handle(self, message: Msg) -> None:
        match message:
            case Echo(value, reply):
                reply.reply(value)
            case Refuse(reply):
                reply.fail(KeyError("no such thing"))
            case Boom():
                raise ValueError("boom")
            case Hold(reply):
                self.held.append(reply)
            case Block(release):
                self.blocked.set()
                await release.wait()

    def on_stop(self) -> None:
        self.stopped = True


async def run_catching_crash(
    actor: Server, *, task_status: trio.TaskStatus[ActorRef[Msg]] = trio.TASK_STATUS_IGNORED
) -> None:
    try:
        await actor.run(task_status=task_status)
    except ValueError:
        pass


async def call_echo(ref: ActorRef[Msg], value: int, results: list[object]) -> None:
    try:
        answer: int = await ref.call(lambda reply: Echo(value, reply))
        results.append(answer)
    except ActorStopped as error:
        results.append(error)


# -- reply slots --------------------------------------------------------------


async def test_second_reply_raises() -> None:
    slot = ReplySlot[int]()
    assert slot.reply(1) is True
    with pytest.raises(RuntimeError):
        slot.reply(2)
    with pytest.raises(RuntimeError):
        slot.fail(ValueError("late"))
    assert await slot.wait() == 1


async def test_fail_makes_the_waiter_raise() -> None:
    slot = ReplySlot[int]()
    error = KeyError("x")
    assert slot.fail(error) is True
    with pytest.raises(KeyError) as info:
        await slot.wait()
    assert info.value is error


async def test_reply_after_the_caller_left_is_harmless(autojump_clock: trio.abc.Clock) -> None:
    slot = ReplySlot[int]()
    with trio.move_on_after(1):
        await slot.wait()
    assert slot.caller_left
    assert slot.reply(5) is False
    assert slot.done


async def test_actor_survives_a_caller_that_timed_out(autojump_clock: trio.abc.Clock) -> None:
    server = Server()
    async with trio.open_nursery() as nursery:
        ref = await start_actor(nursery, server)
        with trio.move_on_after(1):
            await ref.call(lambda reply: Hold(reply))
        (held,) = server.held
        assert held.caller_left
        assert held.reply(1) is False
        assert await ref.call(lambda reply: Echo(7, reply)) == 7
        ref.close()


# -- cast, call and backpressure ------------------------------------------------


async def test_call_cast_and_fail() -> None:
    recorder = RecordingActor[int]("recorder")
    async with trio.open_nursery() as nursery:
        ref = await start_actor(nursery, Server())
        assert ref.name == "server"
        assert await ref.call(lambda reply: Echo(3, reply)) == 3
        with pytest.raises(KeyError):
            await ref.call(lambda reply: Refuse(reply))
        # A failed request is an answer, not a crash.
        assert ref.is_alive

        recorder_ref = await start_actor(nursery, recorder)
        await recorder_ref.cast(1)
        recorder_ref.cast_nowait(2)
        assert await recorder.wait_for_messages(2) == [1, 2]
        ref.close()
        recorder_ref.close()


async def test_cast_nowait_raises_would_block_when_the_inbox_is_full() -> None:
    with Inbox[int]("idle", capacity=2) as inbox:
        inbox.ref.cast_nowait(1)
        inbox.ref.cast_nowait(2)
        with pytest.raises(trio.WouldBlock):
            inbox.ref.cast_nowait(3)
        assert inbox.ref.statistics().current_buffer_used == 2
        assert inbox.receive_nowait() == 1
        inbox.ref.cast_nowait(3)


async def test_cast_waits_for_buffer_space() -> None:
    sent = trio.Event()
    with Inbox[int]("slow", capacity=1) as inbox:

        async def producer() -> None:
            await inbox.ref.cast(1)
            await inbox.ref.cast(2)
            sent.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(producer)
            await trio.testing.wait_all_tasks_blocked()
            assert not sent.is_set()
            assert await inbox.receive() == 1
            await sent.wait()
        assert inbox.receive_nowait() == 2


def test_inbox_must_be_bounded() -> None:
    with pytest.raises(ValueError):
        Inbox[int]("unbounded", capacity=float("inf"))  # type: ignore[arg-type]


# -- a dead actor never leaves a caller hanging ----------------------------------


async def test_caller_of_an_actor_that_crashes_mid_handling_gets_actor_stopped(
    autojump_clock: trio.abc.Clock,
) -> None:
    server = Server()
    async with trio.open_nursery() as nursery:
        ref = await nursery.start(run_catching_crash, server)
        with trio.fail_after(1):
            with pytest.raises(ActorStopped) as info:
                await ref.call(lambda reply: Boom(reply))
    assert info.value.name == "server"
    assert isinstance(info.value.__cause__, ValueError)
    assert not ref.is_alive
    assert server.stopped


async def test_queued_and_held_calls_fail_when_the_actor_is_cancelled(
    autojump_clock: trio.abc.Clock,
) -> None:
    server = Server()
    results: list[object] = []
    held_result: list[object] = []
    with trio.fail_after(1):
        async with trio.open_nursery() as callers:
            async with trio.open_nursery() as actor_nursery:
                ref = await start_actor(actor_nursery, server)

                async def call_hold() -> None:
                    try:
                        await ref.call(lambda reply: Hold(reply))
                    except ActorStopped as error:
                        held_result.append(error)

                callers.start_soon(call_hold)
                await trio.testing.wait_all_tasks_blocked()
                await ref.cast(Block(trio.Event()))
                await server.blocked.wait()
                # Two fill the inbox, two more wait in send() for space.
                for value in range(4):
                    callers.start_soon(call_echo, ref, value, results)
                await trio.testing.wait_all_tasks_blocked()
                assert ref.statistics().current_buffer_used == 2
                actor_nursery.cancel_scope.cancel(reason="test: kill the actor")
    assert len(results) == 4
    assert all(isinstance(result, ActorStopped) for result in results)
    assert all(result.__cause__ is None for result in results if isinstance(result, BaseException))
    assert len(held_result) == 1
    with pytest.raises(ActorStopped):
        await ref.call(lambda reply: Echo(0, reply))
    with pytest.raises(ActorStopped):
        ref.cast_nowait(Block(trio.Event()))


async def test_closing_the_inbox_serves_queued_calls_and_fails_the_rest(
    autojump_clock: trio.abc.Clock,
) -> None:
    server = Server()
    release = trio.Event()
    results: list[object] = []
    held_result: list[object] = []
    with trio.fail_after(1):
        async with trio.open_nursery() as nursery:
            ref = await start_actor(nursery, server)

            async def call_hold() -> None:
                try:
                    await ref.call(lambda reply: Hold(reply))
                except ActorStopped as error:
                    held_result.append(error)

            nursery.start_soon(call_hold)
            await trio.testing.wait_all_tasks_blocked()
            await ref.cast(Block(release))
            await server.blocked.wait()
            for value in range(3):
                nursery.start_soon(call_echo, ref, value, results)
            await trio.testing.wait_all_tasks_blocked()
            ref.close()
            assert ref.closed and ref.is_alive
            await trio.testing.wait_all_tasks_blocked()
            # The third caller was still waiting for buffer space: refused at once.
            assert len(results) == 1 and isinstance(results[0], ActorStopped)
            with pytest.raises(ActorStopped):
                await ref.cast(Block(release))
            release.set()
            await ref.wait_stopped()
    # The two queued requests were served before the actor exited.
    # Which caller lost the race for buffer space is up to the scheduler.
    assert len([r for r in results if isinstance(r, int)]) == 2
    assert len(held_result) == 1
    assert server.stopped


async def test_failing_on_start_fails_the_start_and_runs_on_stop() -> None:
    class Broken(Server):
        async def on_start(self) -> None:
            raise OSError("cannot open")

    broken = Broken()
    async with trio.open_nursery() as nursery:
        with pytest.raises(OSError):
            await start_actor(nursery, broken)
    assert broken.stopped
    with pytest.raises(RuntimeError):
        _ = broken.ref
