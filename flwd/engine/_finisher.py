"""Every run an engine journaled ends with a terminal record, whatever happens to its actors.

A run's ``run.finish`` is written by its run actor. Two things can prevent it:
the run actor dies without it (a crash; its journal ref gone stale), or the
journal actor crashes (the records in flight are lost, and the refs the live
runs hold point at the dead incarnation). Either way the run would stay
``running`` in the Core DB, and ``GET /runs/{id}``, SSE subscribers and cancel
would wait on a run that no actor owns.

The :class:`Finisher` closes that hole. It knows which runs are *owned* (their
run row is journaled, their ``run.finish`` not yet seen published), is told
when an owner is gone (the run becomes an *orphan*) and journals, for every
orphan still unfinished, a ``run.finish`` with status ``failed`` and an error
naming the cause. Its subscribers see that ``run.finish`` like any other.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import trio

from actors import ActorStopped, ChildHandle
from flwd.errors import RecordUnstorable, StorageError
from flwd.events import RUN_FINISH, TERMINAL_STATUSES, EventRecord, format_ts, now
from flwd.store import Store

from ._hub import EventHub
from ._journal import Append, JournalRef

_log = logging.getLogger("flwd.engine")

#: Longest cause quoted in a run's error (an exception's text is unbounded).
_CAUSE_CHARS = 200


def describe_crash(error: BaseException) -> str:
    """``Type: message`` of a crash, one bounded line fit for a run's error."""
    text = " ".join(f"{type(error).__name__}: {error}".split())
    # Storable whatever the exception quotes (a record's bad text, say).
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= _CAUSE_CHARS else text[:_CAUSE_CHARS - 1] + "…"


def resync(hub: EventHub, run_id: str | None = None) -> None:
    """Make the subscribers of ``run_id`` (of every run with None) catch up from the journal.

    For records that were committed but may never have been published (the
    journal crashed in between): each subscriber is dropped as if it lagged,
    so its stream replays from the journal after its cursor and subscribes
    again — no gap, no duplicate. Backlogs are dropped for the same reason.
    """
    if run_id is None:
        subscriptions = [*hub.everything, *(s for subs in hub.by_run.values() for s in subs)]
        for tracked in list(hub.backlogs):
            hub.untrack(tracked)
    else:
        subscriptions = list(hub.by_run.get(run_id, ()))
        hub.untrack(run_id)
    for subscription in subscriptions:
        subscription.lagged = True
        # The hub forgets it at its next delivery (the channel is closed).
        subscription.send.close()


class Finisher:
    """Journals a ``failed`` ``run.finish`` for every owned run whose owner is gone.

    Run it as a child of the root supervisor (``run``), between the journal and
    the runs supervisor, so that it stops after the last run actor and before
    the journal. ``journal`` returns the journal child's handle (its current
    ref survives restarts).
    """

    def __init__(self, store: Store, hub: EventHub,
                 journal: Callable[[], ChildHandle[JournalRef]]) -> None:
        self.store = store
        self.hub = hub
        self._journal = journal
        #: run id → job id: run row journaled, ``run.finish`` not seen published yet.
        self.owned: dict[str, str] = {}
        #: run id → why it ends: owners gone, terminal record still to write.
        self._orphans: dict[str, str] = {}
        #: run id → why its live actor is being stopped (used when the actor exits).
        self._causes: dict[str, str] = {}
        self._wake = trio.Event()
        self._closing = False
        hub.taps.append(self._observe)

    # -- bookkeeping (synchronous: called from the journal, the root and supervisors) --
    def own(self, run_id: str, job_id: str) -> None:
        """``run_id``'s row is journaled: from now on it must end with a terminal record."""
        self.owned[run_id] = job_id

    def owns(self, run_id: str) -> bool:
        return run_id in self.owned

    def stopping(self, run_id: str, cause: str) -> None:
        """``run_id``'s actor is being stopped because of ``cause`` (its error if it
        exits without a ``run.finish``)."""
        if run_id in self.owned:
            self._causes[run_id] = cause

    def orphan(self, run_id: str, cause: str, *, override: bool = False) -> None:
        """Nothing will journal ``run_id``'s ``run.finish`` any more; ``cause`` becomes its error.

        A no-op for a run that is not owned (finished, or never journaled).
        ``override``: replace the cause given earlier (a journal crash is what
        the run's error should say, whatever happened before).
        """
        if run_id not in self.owned:
            return
        if override or run_id not in self._orphans:
            self._orphans[run_id] = cause
        self._wake.set()

    def actor_exited(self, run_id: str, crash: BaseException | None) -> None:
        """``run_id``'s actor exited: unless it journaled a ``run.finish``, the run is an orphan."""
        cause = self._causes.pop(run_id, None)
        if cause is None:
            cause = (f"the run actor crashed: {describe_crash(crash)}" if crash is not None
                     else "the run actor exited before journaling run.finish")
        self.orphan(run_id, cause)

    def _observe(self, batch: Sequence[EventRecord]) -> None:
        # A hub tap: runs whose run.finish is published need nothing more.
        if not self.owned:
            return
        for record in batch:
            if record.type == RUN_FINISH:
                self.owned.pop(record.run_id, None)
                self._causes.pop(record.run_id, None)

    def close(self) -> None:
        """Finish the orphans known so far, then return from :meth:`run`."""
        self._closing = True
        self._wake.set()

    # -- the actor -----------------------------------------------------------------
    async def run(self, *, task_status: trio.TaskStatus[Finisher] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """Journal the terminal record of every orphan, until :meth:`close`.

        Cancellation: orphans not yet written stay pending; a restarted
        finisher takes them up.
        """
        task_status.started(self)
        while True:
            if not self._orphans:
                if self._closing:
                    return
                await self._wake.wait()
                self._wake = trio.Event()
                continue
            try:
                await self._finish_orphans()
            except ActorStopped:
                # The journal is gone for good (its supervisor gave up): nothing
                # can be journaled any more; the next start's recovery marks them.
                _log.error("flwd: runs left without a terminal record: %s",
                           ", ".join(sorted(self._orphans)))
                return

    async def _finish_orphans(self) -> None:
        handle = self._journal()
        journal = await handle.wait_started()
        incarnation = handle.incarnation
        # Only orphans known *before* the barrier below: a run actor casts its
        # run.finish before it exits, so theirs is ahead of the barrier.
        candidates = list(self._orphans)
        try:
            # One inbox, served in order: when this empty message is answered,
            # everything sent before it is committed and published (a run whose
            # run.finish was still queued is no orphan after all).
            await journal.call(lambda reply: Append([], reply))
        except ActorStopped:
            # The journal crashed meanwhile: wait for its next incarnation.
            await handle.wait_started(newer_than=incarnation)
            return
        causes = {run_id: self._orphans.pop(run_id) for run_id in candidates
                  if run_id in self._orphans}
        causes = {run_id: cause for run_id, cause in causes.items() if run_id in self.owned}
        if not causes:
            return
        statuses = await trio.to_thread.run_sync(self.store.run_statuses, list(causes))
        records = []
        ts = now()
        for run_id, cause in causes.items():
            status = statuses.get(run_id)
            if status is None or status in TERMINAL_STATUSES:
                # Never journaled, or finished by a record that missed the hub.
                self.owned.pop(run_id, None)
                resync(self.hub, run_id)
                continue
            records.append(EventRecord(
                run_id=run_id, job_id=self.owned[run_id], type=RUN_FINISH, ts=ts,
                data={"status": "failed", "finished_at": format_ts(ts), "error": cause}))
        async with trio.open_nursery() as nursery:
            for record in records:
                nursery.start_soon(self._write, journal, record)

    async def _write(self, journal: JournalRef, record: EventRecord) -> None:
        try:
            await journal.call(lambda reply: Append([record], reply))
        except ActorStopped:
            self.orphan(record.run_id, record.data["error"])  # again, after the restart
        except (StorageError, RecordUnstorable) as exc:
            # The journal has ended the run's streams (it lost a run.finish).
            self.owned.pop(record.run_id, None)
            _log.error("flwd: run %s left unfinished: %s", record.run_id, exc.one_line())
        else:
            _log.warning("flwd: run %s failed: %s", record.run_id, record.data["error"])
