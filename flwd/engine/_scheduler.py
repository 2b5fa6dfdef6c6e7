"""The scheduler: one actor per ``flwd :serve`` that starts the runs schedules owe.

It holds no schedule of its own: every pass reads the catalog's schedules and their
state from the Core DB (through its :class:`SchedulerHost`), asks
:func:`flwd.schedule.due` what is owed, starts runs through the engine's one path
(``Engine.submit`` with a :class:`~flwd.events.Trigger`), and journals every fire,
skip and catch-up. So a config reload, a source refresh or a pause written by
another process is seen at the next pass, and a fire is decided once: passes never
interleave (one task), and the Core DB refuses a second run for a fire's key.

**The clocks.** It sleeps on trio's (monotonic) clock until the next fire is due,
but never longer than :data:`RECHECK`: the wall clock may jump (a laptop waking from
suspend, the time being set) while the monotonic clock does not. Each pass compares
how far both moved; when they disagree by more than :data:`JUMP_TOLERANCE`, the fires
that came due in the jump were missed, as during a downtime, and the schedules'
``misfire`` modes apply.

**Several servers on one Core DB** (PostgreSQL): only the holder of the leader lease
(:class:`Leader`, ``_leader.py``) fires. A server that does not hold it forgets its
lanes and waits; when it takes the lease over it reads every watermark again, so it
goes on where the last leader stopped (fires due meanwhile are fired late, as by a busy
host). ``@reboot`` schedules fire when a process leads from its start (not when it takes
over later, which is no start). Manual fires, pauses and
resumes work on every server (they are Core DB state).

**A crash between a fire and its record.** The run's row and its trigger key commit
together; the watermark is written after. A server that died in between finds the
run by its key when it starts again (:meth:`SchedulerHost.fired`) and moves the
watermark past it without a second run or a second journal entry.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol

import trio

from actors import ActorRef, ActorStopped, Inbox, ReplySlot
from flwd.errors import FlwdError, ScheduleNotFound, StorageError, TriggerAlreadyFired
from flwd.events import RunRow, Trigger
from flwd.ids import new_run_id
from flwd.observe import Observer
from flwd.schedule import (
    Due,
    Fire,
    Schedule,
    ScheduleBook,
    Skip,
    due,
    fire_data,
    fire_key,
    format_fire,
    manual_key,
    skip_through,
)
from flwd.store import ScheduleState

__all__ = ["JUMP_TOLERANCE", "QUEUE_LIMIT", "RECHECK", "FireNow", "Leader", "Poke", "Scheduler",
           "SchedulerHost", "SchedulerRef", "SystemClock", "WallClock"]

_log = logging.getLogger("flwd.schedule")

#: Seconds between two looks at the wall clock, at most.
RECHECK: Final = 30.0
#: Seconds between two looks at a paused schedule's state, on a shared Core DB.
RESUME_RECHECK: Final = 1.0
#: Wall and monotonic clocks drifting apart by more than this over one sleep is a jump.
JUMP_TOLERANCE: Final = 5.0
#: Fires waiting behind a live run (``overlap: queue``), per schedule; beyond, skipped.
QUEUE_LIMIT: Final = 10


class WallClock(Protocol):
    """The wall clock (Unix seconds); tests hand a fake one that can jump."""

    def now(self) -> float: ...


class SystemClock:
    def now(self) -> float:
        return time.time()


class Leader(Protocol):
    """Whether this server may fire now (``_leader.LeaderLease`` on a shared Core DB)."""

    @property
    def leading(self) -> bool: ...

    #: Called when the lease is gained or lost (the scheduler pokes itself).
    on_change: Callable[[], None] | None
    #: How many times it was gained: a new count means another server may have fired
    #: in between, whatever this one remembers.
    gained: int
    #: It was gained as this process started (a start of the cluster, or of a lone
    #: server), not by a takeover later: ``@reboot`` schedules fire only then.
    at_start: bool


class SchedulerHost(Protocol):
    """What the scheduler asks of the engine (``_schedule_host.EngineHost`` in a server)."""

    @property
    def observer(self) -> Observer: ...

    #: The workspace whose schedules these are (part of their fires' trigger keys).
    workspace: str

    async def book(self) -> ScheduleBook:
        """The schedules of the current catalog."""

    async def states(self) -> dict[str, ScheduleState]:
        """Every schedule's state in the Core DB, by name."""

    async def record(self, name: str, *, watermark: float, fire_at: float | None = None,
                     outcome: str | None = None, run_id: str | None = None) -> None:
        """Keep the watermark (never moved back) and the last fire."""

    async def fired(self, name: str, after: float, until: float) -> float | None:
        """The newest fire time of ``name`` in ``(after, until]`` that has a run."""

    async def start(self, schedule: Schedule, trigger: Trigger) -> RunRow:
        """Plan and start a run of the schedule's job with its arguments (the engine's
        submit). Raises TriggerAlreadyFired, or the FlwdError of a refused request."""

    async def cancel(self, run_id: str, reason: str) -> None:
        """Ask a live run to stop."""

    async def still_live(self, run_ids: Sequence[str]) -> list[str]:
        """Those of ``run_ids`` (runs it started) that have not finished, in order: live
        in this process — or, in a cluster, where another replica may execute them, not
        finished in the Core DB."""

    @property
    def end_poll(self) -> float | None:
        """None when :meth:`watch_ends` tells of every run's end; else how often to look
        again (:meth:`still_live`) while runs it started are live (a cluster: a run
        another replica executes ends without this process's hub seeing it)."""

    @property
    def accepting(self) -> bool:
        """The engine takes new runs (False: it is shutting down)."""

    async def journal(self, job_id: str, type_: str, data: Mapping[str, Any]) -> None:
        """Journal an event that belongs to no run (``run_id`` ``""``)."""

    def watch_ends(self, callback: Callable[[str], None]) -> Callable[[], None]:
        """Call ``callback(run_id)`` (synchronously, in trio) whenever a run finishes;
        returns the function that stops it."""


class _LeaseLost(Exception):
    """The leader lease lapsed during a pass: nothing more is fired."""


@dataclass(frozen=True, slots=True)
class Poke:
    """Look again now (a pause, a resume, a run that ended)."""


@dataclass(frozen=True, slots=True)
class FireNow:
    """Fire ``name`` now, by hand (``flwd :schedules trigger``); answers the run."""

    name: str
    reply: ReplySlot[RunRow]


SchedulerMessage = Poke | FireNow
#: Why a schedule runs nothing now.
Idle = Literal["paused", "disabled"]
SchedulerRef = ActorRef[SchedulerMessage]


@dataclass
class _Lane:
    """What the scheduler remembers of one schedule between passes."""

    #: The last fire time handled (None: not read from the Core DB yet).
    watermark: float | None = None
    #: The watermark the Core DB holds.
    saved: float | None = None
    #: Runs started by this schedule that may still be live, oldest first.
    active: list[str] = field(default_factory=list)
    #: Fires waiting for the live run to end (``overlap: queue``).
    queue: deque[Fire] = field(default_factory=deque)
    #: When its next fire is due (wall clock), if it is being watched.
    wake: float | None = None
    #: Why its fires are skipped now (``paused``, ``disabled``).
    idle: Idle | None = None
    #: The last fire to record: (fire time, outcome, run id).
    last: tuple[float, str, str | None] | None = None
    #: The schedule as last decided, and the watch it was decided in: while neither
    #: changes and its next fire is not due, a pass has nothing to decide for it.
    decided: tuple[Schedule, int] | None = None


class Scheduler:
    """The scheduler actor (see the module docstring); start :meth:`run` in a nursery."""

    def __init__(self, host: SchedulerHost, clock: WallClock | None = None,
                 leader: Leader | None = None) -> None:
        self.host = host
        self.clock: WallClock = clock or SystemClock()
        #: None: this server fires alone (SQLite); else only while it leads.
        self.leader = leader
        #: ``@reboot`` schedules were handled (at the start, or when it first led).
        self._rebooted = False
        #: ``leader.gained`` when the lanes were opened.
        self._term = 0
        #: Since when it has been watching without a break (wall clock).
        self.started_at = self.clock.now()
        #: Counts the watches (a new one after each jump of the wall clock).
        self._watch = 0
        self._because = "flwd was not running"
        self._last_wall = self.started_at
        self._last_mono = trio.current_time()
        self.lanes: dict[str, _Lane] = {}
        #: Live runs it started, and their schedules (to wake when one ends).
        self._watched: dict[str, str] = {}
        self._inbox: Inbox[SchedulerMessage] | None = None

    async def run(self, *, task_status: trio.TaskStatus[SchedulerRef] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """Fire ``@reboot`` schedules, then serve passes and messages until the inbox is
        closed (a graceful stop) or the task is cancelled.

        Cancellation: stops at once; a run being started is started all the same (the
        engine's submit), its fire recorded at the next start through its trigger key.
        """
        # 64: pokes and manual fires from a handful of clients; a poke that finds
        # the inbox full is dropped (a pass is due anyway).
        with Inbox[SchedulerMessage]("scheduler", 64) as inbox:
            self._inbox = inbox
            stop_watching = self.host.watch_ends(self._run_ended)
            if self.leader is not None:
                self.leader.on_change = self._poke
            try:
                if self._leads():
                    await self._reboot()
                task_status.started(inbox.ref)
                while True:
                    await self._pass()
                    if not await self._wait(inbox):
                        return
            except ActorStopped:
                if self.host.accepting:
                    raise  # a part of the engine crashed: the supervisor restarts us
                # Shutting down: the fire being started is not recorded (the watermark
                # stays before it), so the next start treats it as missed.
                return
            finally:
                stop_watching()
                if self.leader is not None:
                    self.leader.on_change = None
                self._inbox = None

    async def _wait(self, inbox: Inbox[SchedulerMessage]) -> bool:
        """Sleep until the next fire is due (RECHECK at most) or a message comes; False
        once the inbox is closed."""
        wakes = [lane.wake for lane in self.lanes.values() if lane.wake is not None]
        if self.leader is not None and any(lane.idle for lane in self.lanes.values()):
            # A resume may be written through another server, which cannot poke this
            # one: while a schedule is paused, the leader reads the states this often.
            wakes.append(self.clock.now() + RESUME_RECHECK)
        poll = self.host.end_poll
        if poll is not None and any(lane.active or lane.queue for lane in self.lanes.values()):
            # Overlap modes wait for runs whose end this process may not hear of.
            wakes.append(self.clock.now() + poll)
        delay = min([RECHECK, *(wake - self.clock.now() for wake in wakes)])
        try:
            with trio.move_on_after(max(delay, 0.0)):
                message = await inbox.receive()
                await self._handle(message)
            while True:  # whatever else queued meanwhile, before the next pass
                await self._handle(inbox.receive_nowait())
        except trio.WouldBlock:
            return True
        except trio.EndOfChannel:
            return False

    def _run_ended(self, run_id: str) -> None:
        if self._watched.pop(run_id, None) is not None:
            self._poke()

    def _poke(self) -> None:
        if self._inbox is not None:
            try:
                self._inbox.ref.cast_nowait(Poke())
            except (trio.WouldBlock, ActorStopped):
                pass  # a pass comes soon anyway

    def _leads(self) -> bool:
        return self.leader is None or self.leader.leading

    async def _handle(self, message: SchedulerMessage) -> None:
        if isinstance(message, FireNow):
            try:
                message.reply.reply(await self.fire_now(message.name))
            except Exception as exc:
                message.reply.fail(exc)

    # -- passes ------------------------------------------------------------------
    async def _pass(self) -> None:
        now, mono = self.clock.now(), trio.current_time()
        if abs((now - self._last_wall) - (mono - self._last_mono)) > JUMP_TOLERANCE:
            # Asleep (or the clock was set): what came due meanwhile was missed.
            _log.info("scheduler: the wall clock moved %.0f s in %.0f s; fires due "
                      "meanwhile count as missed", now - self._last_wall,
                      mono - self._last_mono)
            self.started_at, self._because = now, "the wall clock jumped (suspend?)"
            self._watch += 1
        self._last_wall, self._last_mono = now, mono
        if self.leader is not None and (not self.leader.leading
                                        or self.leader.gained != self._term):
            # Another server fires (or may have, between two terms of this one): what
            # this one knew is stale; each lane is opened again from the Core DB.
            self.lanes.clear()
            self._term = self.leader.gained
            if not self.leader.leading:
                return
        if not self._rebooted:
            if self.leader is None or self.leader.at_start:
                await self._reboot()
            self._rebooted = True  # a takeover later is not a start: no @reboot
        book = await self.host.book()
        states = await self.host.states()
        for name in [name for name in self.lanes if book.get(name) is None]:
            del self.lanes[name]  # removed from the config: forgotten until it is back
        for schedule in book:
            try:
                await self._visit(schedule, states.get(schedule.name), now)
            except StorageError as exc:
                _log.warning("scheduler: %s: %s", schedule.name, exc.one_line())
            except _LeaseLost:
                self.lanes.clear()  # the next leader goes on from the Core DB
                return

    async def _visit(self, schedule: Schedule, state: ScheduleState | None, now: float) -> None:
        lane = self.lanes.get(schedule.name)
        if lane is None:
            lane = self.lanes[schedule.name] = await self._open_lane(schedule, state, now)
        assert lane.watermark is not None
        if lane.active:
            lane.active = await self.host.still_live(lane.active)
        idle: Idle | None = "paused" if state is not None and state.paused else (
            None if schedule.enabled else "disabled")
        if idle is not None or lane.idle is not None:
            await self._idle(schedule, lane, idle, now)
        if idle is None and not self._settled(schedule, lane, now):
            await self._drain(schedule, lane)
            decided = due(schedule, lane.watermark, now, self.started_at)
            await self._catch_up(schedule, decided)
            for skip in decided.skips:
                await self._skip(schedule, lane, skip)
            for fire in decided.fires:
                await self._fire(schedule, lane, fire)
            lane.watermark, lane.wake = decided.watermark, decided.wake
            lane.decided = (schedule, self._watch)
            await self._drain(schedule, lane)
        await self._save(schedule, lane)

    def _settled(self, schedule: Schedule, lane: _Lane, now: float) -> bool:
        """Nothing to decide: same schedule, same watch, nothing queued, not due yet."""
        return (lane.decided == (schedule, self._watch) and not lane.queue
                and lane.wake is not None and now < lane.wake)

    async def _open_lane(self, schedule: Schedule, state: ScheduleState | None,
                         now: float) -> _Lane:
        stored = state.watermark if state is not None else None
        watermark = now if stored is None else stored
        # A run committed by a server that died before it moved the watermark.
        fired = await self.host.fired(schedule.name, watermark, now)
        if fired is not None and fired > watermark:
            watermark = fired
        return _Lane(watermark=watermark, saved=stored)

    async def _idle(self, schedule: Schedule, lane: _Lane, idle: Idle | None,
                    now: float) -> None:
        """A paused or disabled schedule runs nothing: its fires are skipped as they come
        (recorded together, RECHECK seconds apart at most often), and those up to now
        when it runs again."""
        reason = idle or lane.idle
        assert reason is not None and lane.watermark is not None
        if idle is not None and lane.idle == idle and (lane.wake is None or now < lane.wake):
            return
        decided = skip_through(schedule, lane.watermark, now, reason)
        for skip in decided.skips:
            await self._skip(schedule, lane, skip)
        for fire in lane.queue:
            await self._skip(schedule, lane, Skip(reason, fire.at, fire.at, 1))
        lane.queue.clear()
        lane.watermark, lane.idle = decided.watermark, idle
        lane.wake = decided.wake
        if idle is not None and decided.wake is not None and decided.skips:
            # Still idle: its skips are recorded together. Resumed: its next fire is due
            # at its time (and not settled before it).
            lane.wake = max(decided.wake, now + RECHECK)

    async def _drain(self, schedule: Schedule, lane: _Lane) -> None:
        """Start the oldest queued fire once nothing of the schedule is live."""
        while lane.queue and not lane.active:
            await self._start(schedule, lane, lane.queue.popleft())

    async def _catch_up(self, schedule: Schedule, decided: Due) -> None:
        missed = [fire for fire in decided.fires if fire.catchup]
        skipped = [skip for skip in decided.skips if skip.reason != "overlap"]
        if not missed and not skipped:
            return
        count = len(missed) + sum(skip.count or 0 for skip in skipped)
        first = min([*(fire.at for fire in missed), *(skip.first for skip in skipped)])
        last = max([*(fire.at for fire in missed), *(skip.last for skip in skipped)])
        await self.host.journal(schedule.job_id, "schedule.catchup", {
            "name": schedule.name, "reason": self._because, "misfire": schedule.misfire,
            "missed": count, "started": len(missed), "first_fire_at": format_fire(first),
            "last_fire_at": format_fire(last)})

    # -- fires and skips -------------------------------------------------------------------
    async def _fire(self, schedule: Schedule, lane: _Lane, fire: Fire) -> None:
        if fire.catchup and schedule.misfire == "all" and schedule.overlap != "allow":
            # Every missed fire is owed a run: one after the other, not one over another
            # (its number is bounded by MAX_CATCHUP, not QUEUE_LIMIT).
            lane.queue.append(fire)
            return
        if (lane.active or lane.queue) and schedule.overlap != "allow":
            if schedule.overlap == "queue":
                if len(lane.queue) < QUEUE_LIMIT:
                    lane.queue.append(fire)
                    return
                await self._skip(schedule, lane, Skip("queue_full", fire.at, fire.at, 1))
                return
            if schedule.overlap == "skip":
                await self._skip(schedule, lane, Skip("overlap", fire.at, fire.at, 1),
                                 previous=lane.active[-1] if lane.active else None)
                return
            for run_id in lane.active:  # cancel_previous
                await self.host.cancel(run_id, f"schedule {schedule.name}: its fire at "
                                               f"{format_fire(fire.at)} replaces this run "
                                               "(overlap: cancel_previous)")
        await self._start(schedule, lane, fire)

    async def _start(self, schedule: Schedule, lane: _Lane, fire: Fire) -> None:
        if not self._leads():
            # Checked before each start: a leader whose lease ran out mid-pass stops at
            # once (the fire stays after the watermark, for the next leader).
            raise _LeaseLost
        detail: dict[str, Any] = {"kind": "schedule", "name": schedule.name,
                                  "fire_at": format_fire(fire.at)}
        if fire.catchup:
            detail["catchup"] = True
        try:
            run = await self.host.start(schedule, Trigger(fire_key(self.host.workspace,
                                                                   schedule.name, fire.at),
                                                          detail))
        except TriggerAlreadyFired:
            # Its run exists (a fire recorded before a crash): nothing to start or journal.
            self.host.observer.schedule_fires("duplicate", 1)
            lane.last = (fire.at, "already_started", None)
            return
        except FlwdError as exc:
            if isinstance(exc, StorageError):
                raise
            await self._skip(schedule, lane, Skip("refused", fire.at, fire.at, 1),
                             error=exc)
            return
        await self._started(schedule, lane, fire.at, run, fire.due,
                            "catchup" if fire.catchup else "fired")

    async def _started(self, schedule: Schedule, lane: _Lane, fire_at: float, run: RunRow,
                       due_at: float, outcome: str) -> None:
        lag = max(0.0, run.created_at - due_at)
        self.host.observer.schedule_lag(lag)
        self.host.observer.schedule_fires(outcome, 1)
        lane.active.append(run.id)
        self._watched[run.id] = schedule.name
        lane.last = (fire_at, "started" if outcome != "manual" else "manual", run.id)
        await self.host.journal(schedule.job_id, "schedule.fire", fire_data(
            schedule.name, fire_at, run.id, due_at, run.created_at,
            catchup=outcome == "catchup", manual=outcome == "manual"))

    async def _skip(self, schedule: Schedule, lane: _Lane, skip: Skip, *,
                    previous: str | None = None, error: FlwdError | None = None) -> None:
        self.host.observer.schedule_fires(f"skipped_{skip.reason}", skip.count or 1)
        lane.last = (skip.last, f"skipped:{skip.reason}", None)
        data: dict[str, Any] = {"name": schedule.name, "reason": skip.reason,
                                "fire_at": format_fire(skip.first)}
        if skip.last != skip.first or skip.count != 1:
            data.update(last_fire_at=format_fire(skip.last), count=skip.count)
        if previous is not None:
            data["running"] = previous
        if error is not None:
            data.update(code=error.problem.code, error=error.one_line())
        await self.host.journal(schedule.job_id, "schedule.skip", data)

    async def _save(self, schedule: Schedule, lane: _Lane) -> None:
        assert lane.watermark is not None
        # A queued fire is not handled yet: after a crash it is missed, not lost.
        mark = min(lane.watermark, lane.queue[0].at - 1) if lane.queue else lane.watermark
        if lane.last is None and lane.saved is not None and mark <= lane.saved:
            return
        last, lane.last = lane.last, None
        await self.host.record(schedule.name, watermark=mark,
                               fire_at=last[0] if last else None,
                               outcome=last[1] if last else None,
                               run_id=last[2] if last else None)
        lane.saved = mark if lane.saved is None else max(lane.saved, mark)

    # -- @reboot and manual fires ----------------------------------------------------------
    async def _reboot(self) -> None:
        self._rebooted = True
        book = await self.host.book()
        states = await self.host.states()
        for schedule in book:
            state = states.get(schedule.name)
            if schedule.kind != "reboot" or not schedule.enabled or (state and state.paused):
                continue
            fire_at = math.floor(self.started_at)
            lane = self.lanes.setdefault(schedule.name, _Lane(watermark=self.started_at))
            try:
                await self._start(schedule, lane, Fire(fire_at, fire_at))
            except _LeaseLost:
                return  # another server leads now: @reboot is its start's, not ours

    async def fire_now(self, name: str) -> RunRow:
        """Start a run of schedule ``name`` now, whatever its time and overlap mode
        (recorded as a manual fire of the schedule).

        Raises:
            ScheduleNotFound; the FlwdError of a refused request.

        Cancellation: the run may be started all the same; only the answer is lost.
        """
        book = await self.host.book()
        schedule = book.get(name)
        if schedule is None:
            raise ScheduleNotFound(f"no schedule named {name!r}",
                                   hint="'flwd :schedules' lists them")
        now = self.clock.now()
        trigger = Trigger(manual_key(self.host.workspace, name, new_run_id()), {
            "kind": "schedule", "name": name, "fire_at": format_fire(now), "manual": True})
        run = await self.host.start(schedule, trigger)
        lane = self.lanes.get(name)
        if lane is None:  # added to the config since the last pass
            states = await self.host.states()
            lane = self.lanes[name] = await self._open_lane(schedule, states.get(name), now)
        await self._started(schedule, lane, now, run, now, "manual")
        await self._save(schedule, lane)
        return run
