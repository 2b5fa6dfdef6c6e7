"""The root of the actor tree and the :class:`Engine` client the CLI and HTTP layer use.

::

    Root supervisor "flwd" (one_for_one)
    ├── journal    owns the Core DB writer thread; batches events; publishes to the hub
    ├── runs       dynamic supervisor; one TEMPORARY run actor per run
    └── commands   the root's inbox: StartRun, CancelRun (clients only send messages)

The event hub is a plain object owned by the root (publishing is a synchronous
``send_nowait`` fan-out done by the journal right after each commit), not an
actor: an extra hop would add latency and a queue to every batch for nothing.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial

import outcome
import trio

from actors import (
    Actor,
    ActorRef,
    ActorStopped,
    ChildSpec,
    DynamicSupervisor,
    ReplySlot,
    RestartPolicy,
    Supervisor,
)
from flwd import store
from flwd.events import EventRecord, RunRow, now
from flwd.ids import new_run_id
from flwd.plan import Plan
from flwd.settings import Settings
from flwd.store import JournalWriter

from ._hub import EventHub
from ._journal import Append, JournalRef, run_journal
from ._run import Cancel, RunActor, RunRef
from ._stream import stream_events

_log = logging.getLogger("flwd.engine")


@dataclass(frozen=True, slots=True)
class StartRun:
    plan: Plan
    reply: ReplySlot[RunRow]


@dataclass(frozen=True, slots=True)
class CancelRun:
    run_id: str
    reason: str
    by: str
    force: bool
    #: "requested" (the run is live and was asked to stop), or "not-live".
    reply: ReplySlot[str]


Command = StartRun | CancelRun


class _Commands(Actor[Command]):
    """The root's inbox: turns client requests into journal records and run actors."""

    name = "commands"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def handle(self, message: Command) -> None:
        if isinstance(message, StartRun):
            try:
                message.reply.reply(await self.engine._start_run(message.plan))
            except Exception as exc:
                message.reply.fail(exc)
        else:
            ref = self.engine._live.get(message.run_id)
            if ref is None:
                message.reply.reply("not-live")
                return
            try:
                await ref.cast(Cancel(message.reason, message.by, message.force))
            except ActorStopped:
                message.reply.reply("not-live")
            else:
                message.reply.reply("requested")


class Engine:
    """What a client holds: start and cancel runs, stream their events.

    Create it with :func:`open_engine`. Methods send messages to the root; the
    caller owns timeouts.
    """

    def __init__(self, settings: Settings, hub: EventHub, writer: JournalWriter) -> None:
        self.settings = settings
        self.hub = hub
        self.writer = writer
        self.runs = DynamicSupervisor("runs", on_child_exit=self._run_exited,
                                      max_restarts=1_000_000)
        self.supervisor = Supervisor("flwd", [
            ChildSpec("journal", partial(run_journal, writer, hub), shutdown_timeout=60.0),
            ChildSpec("runs", self.runs.run, shutdown_timeout=settings.grace + 10.0),
            ChildSpec.for_actor("commands", lambda: _Commands(self)),
        ])
        self._live: dict[str, RunRef] = {}
        self._accepting = True

    # -- client API ----------------------------------------------------------
    @property
    def _root(self) -> ActorRef[Command]:
        ref: ActorRef[Command] = self.supervisor.child_value("commands")
        return ref

    async def start_run(self, plan: Plan) -> RunRow:
        """Journal a new run of ``plan`` and start its actor; returns the run row.

        Raises:
            ActorStopped: the engine is shutting down.
        """
        return await self._root.call(lambda reply: StartRun(plan, reply))

    async def cancel_run(self, run_id: str, *, reason: str, by: str, force: bool = False) -> str:
        """Ask a live run to stop; ``"requested"`` or ``"not-live"`` (finished or elsewhere)."""
        return await self._root.call(
            lambda reply: CancelRun(run_id, reason, by, force, reply))

    def is_live(self, run_id: str) -> bool:
        return run_id in self._live

    def events(self, run_id: str | None, *, after: int = 0,
               follow: bool = True) -> AsyncGenerator[list[EventRecord], None]:
        """The run's events (or all events) in order, replayed then live; see ``stream_events``."""
        live = run_id is None or run_id in self._live
        return stream_events(self.settings.db_path, run_id, after=after,
                             hub=self.hub if live else None, follow=follow)

    # -- inside the root -----------------------------------------------------
    async def _start_run(self, plan: Plan) -> RunRow:
        if not self._accepting:
            raise ActorStopped("commands", "is shutting down")
        journal: JournalRef = self.supervisor.child_value("journal")
        pid, start_time, host = store.owner_identity()
        run = RunRow(id=new_run_id(), job_id=plan.job.id, status="queued", created_at=now(),
                     profile=plan.profile, args=plan.binding.redacted(), plan=plan.to_json(),
                     provenance=plan.provenance(), owner_pid=pid, owner_start=start_time,
                     owner_host=host)
        await journal.call(lambda reply: Append([run], reply))
        actor = RunActor(run.id, plan, journal, runs_dir=self.settings.runs_dir,
                         grace=self.settings.grace)
        ref: RunRef = await self.runs.start_child(ChildSpec(
            run.id, actor.run, restart=RestartPolicy.TEMPORARY,
            shutdown_timeout=self.settings.grace + 5.0,
            stop=lambda ref: _cancel_nowait(ref, "flwd is shutting down", "shutdown"),
        ))
        self._live[run.id] = ref
        return run

    def _run_exited(self, name: str, result: outcome.Outcome[None]) -> None:
        self._live.pop(name, None)
        if isinstance(result, outcome.Error):
            _log.error("run %s crashed: %r", name, result.error)

    async def _shutdown(self) -> None:
        """Cancel every live run (they finish within the grace), then stop the tree in order."""
        self._accepting = False
        for ref in list(self._live.values()):
            _cancel_nowait(ref, "flwd is shutting down", "shutdown")
        await self.supervisor.aclose()
        self.hub.close()


def _cancel_nowait(ref: RunRef, reason: str, by: str) -> None:
    try:
        ref.cast_nowait(Cancel(reason, by))
    except (trio.WouldBlock, ActorStopped):
        pass


def recover(settings: Settings) -> list[str]:
    """Mark runs of dead processes ``interrupted`` (blocking; cheap when there are none)."""
    conn = store.connect(settings.db_path)
    try:
        return store.recover_interrupted(conn)
    finally:
        conn.close()


@asynccontextmanager
async def open_engine(settings: Settings) -> AsyncIterator[Engine]:
    """Run the actor tree for the duration of the block.

    On entry, runs left unfinished by dead processes are marked ``interrupted``.
    On exit, live runs are cancelled (TERM → grace → KILL), then the tree stops
    in reverse order and the journal is flushed last.

    Cancellation: if the block is cancelled, the shutdown still runs shielded
    (bounded by the grace period plus a few seconds).
    """
    await trio.to_thread.run_sync(recover, settings)
    writer = JournalWriter(settings.db_path)
    await trio.to_thread.run_sync(writer.start)
    hub = EventHub()
    engine = Engine(settings, hub, writer)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(engine.supervisor.run)
            try:
                yield engine
            finally:
                with trio.CancelScope(shield=True):
                    await engine._shutdown()
    finally:
        hub.close()
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(writer.close)

