"""The journal actor: batches events from every run into Core DB transactions.

Messages arrive from run actors (output chunks, lifecycle events) through one
bounded inbox. The actor takes whatever has queued up while the previous
transaction was committing, and what the tasks already running send in the
next few scheduler ticks (a run's ``step.finish`` and ``run.finish``, see
:func:`_gather`), commits it as one batch in the writer thread, then publishes
the committed records to the hub — so an event is always journaled before
anyone sees it, and batch size adapts to load without a timer.

Each message is stored all or nothing, and independently of the others in its
batch: a message holding a record the Core DB cannot take is refused alone
(poison-record isolation, see :func:`run_journal`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import outcome
import trio

from actors import ActorRef, Inbox, ReplySlot
from flwd.errors import RecordUnstorable, StorageError, StorageFull
from flwd.events import RUN_FINISH, STEP_LOG, EventRecord, format_ts, now
from flwd.observe import UNOBSERVED, Observer
from flwd.store import GroupResult, JournalItem, JournalSink

from ._hub import EventHub

#: Messages queued for the next transaction. A message is one event or one
#: chunk of up to 64 KiB of output lines, so this bounds what is in flight to
#: a few MiB while letting several producers keep the writer busy.
JOURNAL_INBOX = 256
#: Items committed in one transaction at most; keeps a transaction short so
#: live subscribers see output with low latency under load.
MAX_BATCH_ITEMS = 2048
#: Scheduler ticks a batch always waits for the tasks already running to add to it
#: (see :func:`_gather`): what a run actor takes from ``step.finish`` to its
#: ``run.finish``, or from ``run.start`` to its first ``step.start``.
GATHER_TICKS = 3
#: Scheduler ticks a batch waits at most, while messages keep coming or other
#: tasks are runnable: a busy process still commits every few ticks.
MAX_GATHER_TICKS = 6


@dataclass(frozen=True, slots=True)
class Append:
    """Journal ``items`` in order. With ``reply``, answer once they are committed."""

    items: Sequence[JournalItem]
    reply: ReplySlot[list[EventRecord]] | None = field(default=None)


JournalRef = ActorRef[Append]


async def _commit(writer: JournalSink, groups: Sequence[Sequence[JournalItem]],
                  observer: Observer) -> list[GroupResult]:
    token = trio.lowlevel.current_trio_token()
    done = trio.Event()
    box: list[tuple[outcome.Outcome[list[GroupResult]], float]] = []
    # One batch is in the writer's hands at a time (the actor waits for each), so
    # submit → done is the batch's transaction: timed once per batch, never per event.
    started = time.perf_counter()

    def finished(result: outcome.Outcome[list[GroupResult]]) -> None:
        # Runs in the writer thread: hand the result back to trio without blocking.
        seconds = time.perf_counter() - started

        def deliver() -> None:
            box.append((result, seconds))
            done.set()

        token.run_sync_soon(deliver)

    writer.submit(groups, finished)
    # Shielded: the thread commits the batch whatever happens to us, and a batch
    # that is committed must also be published and acknowledged.
    with trio.CancelScope(shield=True):
        await done.wait()
    result, seconds = box[0]
    observer.persistence("journal_append", _append_outcome(result), seconds)
    return result.unwrap()


def _append_outcome(result: outcome.Outcome[list[GroupResult]]) -> str:
    if not isinstance(result, outcome.Error):
        return "ok"  # refused groups are their records' fault, not the journal's
    return "quota_exceeded" if isinstance(result.error, StorageFull) else "error"


#: Told which events a storage failure lost (see :func:`run_journal`); must not block.
StorageFailureHandler = Callable[[StorageError, list[EventRecord]], None]
#: Told that the records of one message were refused, and why; must not block.
RefusalHandler = Callable[[RecordUnstorable, Sequence[JournalItem]], None]


def _is_output(item: JournalItem) -> bool:
    return isinstance(item, EventRecord) and item.type == STEP_LOG


def _muted_output(message: Append, muted: set[str]) -> bool:
    return all(isinstance(item, EventRecord) and item.type == STEP_LOG
               and item.run_id in muted for item in message.items)


def _committed(results: list[GroupResult]) -> list[EventRecord]:
    return [record for result in results if not isinstance(result, RecordUnstorable)
            for record in result]


def _end_streams(hub: EventHub, run_id: str) -> None:
    # The run's run.finish will never be journaled: its subscribers must not wait for it.
    hub.untrack(run_id)
    for subscription in list(hub.by_run.get(run_id, ())):
        subscription.send.close()


async def _refused(writer: JournalSink, hub: EventHub,
                   refusals: list[tuple[Append, RecordUnstorable]],
                   on_refused: RefusalHandler | None, observer: Observer) -> None:
    """Settle the messages the Core DB refused: tell their owner; replace a lost ``run.finish``.

    A run whose ``run.finish`` was refused would stay ``running`` with its
    subscribers waiting forever: it gets a plain one (``failed``, the refusal
    as its error) instead. If even that cannot be stored, its streams are ended.
    """
    replacements: list[EventRecord] = []
    for message, error in refusals:
        if on_refused is not None:
            on_refused(error, message.items)
        ts = now()
        replacements += [
            EventRecord(run_id=item.run_id, job_id=item.job_id, type=RUN_FINISH, ts=ts, data={
                "status": "failed", "finished_at": format_ts(ts), "error": error.detail})
            for item in message.items if isinstance(item, EventRecord) and item.type == RUN_FINISH]
    if not replacements:
        return
    try:
        results = await _commit(writer, [[record] for record in replacements], observer)
    except StorageError:
        for record in replacements:
            _end_streams(hub, record.run_id)
        return
    hub.publish(_committed(results))
    for record, result in zip(replacements, results, strict=True):
        if isinstance(result, RecordUnstorable):
            _end_streams(hub, record.run_id)


async def _salvage(writer: JournalSink, hub: EventHub, batch: list[Append],
                   error: StorageError, on_storage_error: StorageFailureHandler | None,
                   on_refused: RefusalHandler | None, observer: Observer) -> None:
    # Output chunks are what fills a disk; the lifecycle records (runs,
    # run.start/finish, step events, idempotency keys) are few and small. In WAL
    # mode the frames of the failed transaction are reused by the next one, so
    # the lifecycle records alone usually fit where the whole batch did not.
    essential = [[item for item in message.items if not _is_output(item)]
                 for message in batch]
    # The ballast file goes (once): room for the lifecycle records of the runs
    # the engine is about to stop, even when the disk is completely full.
    await trio.to_thread.run_sync(writer.release_reserve)
    lost = [item for message in batch for item in message.items
            if isinstance(item, EventRecord) and _is_output(item)]
    results: list[GroupResult] | None = None
    if any(essential):
        try:
            results = await _commit(writer, essential, observer)
        except StorageError as again:
            error = again
            lost = [item for message in batch for item in message.items
                    if isinstance(item, EventRecord)]
        else:
            hub.publish(_committed(results))
    refusals: list[tuple[Append, RecordUnstorable]] = []
    for index, (message, kept) in enumerate(zip(batch, essential, strict=True)):
        result = None if results is None else results[index]
        if isinstance(result, RecordUnstorable):
            refusals.append((message, result))
            if message.reply is not None:
                message.reply.fail(result)
        elif message.reply is None:
            continue
        elif result is not None and len(kept) == len(message.items):
            message.reply.reply(result)
        else:
            message.reply.fail(error)
    if refusals:
        await _refused(writer, hub, refusals, on_refused, observer)
    if on_storage_error is not None:
        on_storage_error(error, lost)


def _take_queued(inbox: Inbox[Append], batch: list[Append]) -> int:
    """Add what is queued to ``batch`` (up to :data:`MAX_BATCH_ITEMS`); how many messages."""
    count = sum(len(message.items) for message in batch)
    taken = 0
    while count < MAX_BATCH_ITEMS:
        try:
            message = inbox.receive_nowait()
        except (trio.WouldBlock, trio.EndOfChannel):
            break
        batch.append(message)
        count += len(message.items)
        taken += 1
    return taken


async def _gather(inbox: Inbox[Append], batch: list[Append]) -> None:
    """Fill ``batch`` with what is queued, and with what the tasks already running send next.

    A run's events come in bursts a few scheduler ticks apart (``run.start`` then
    its first ``step.start``; ``step.finish`` then ``run.finish``), and runs
    submitted together journal their rows together. Committing the first message
    alone would cost a transaction, a hand-off to the writer thread and back, and
    a publication (a wake-up of each stream) per message. So the batch gives the
    other runnable tasks a few turns first — :data:`GATHER_TICKS` scheduler
    ticks, more while messages keep coming or tasks are runnable, never more than
    :data:`MAX_GATHER_TICKS`, never on a clock: nobody waits for a task that waits
    for something itself (a process's output, a socket, a timer). Every promise
    stands: a record is published, and a ``call`` answered, only once committed.

    Cancellation: not a cancellation point (the checkpoints are shielded): the
    messages taken from the inbox are committed and answered like those of a
    batch in flight.
    """
    _take_queued(inbox, batch)
    for tick in range(MAX_GATHER_TICKS):
        if sum(len(message.items) for message in batch) >= MAX_BATCH_ITEMS:
            return
        await trio.lowlevel.cancel_shielded_checkpoint()
        arrived = _take_queued(inbox, batch)
        # ``tasks_runnable`` counts the tasks woken during this tick, not those of
        # this tick still to run after us: hence the first ticks whatever it says.
        if (tick + 1 >= GATHER_TICKS and not arrived
                and not trio.lowlevel.current_statistics().tasks_runnable):
            return


async def run_journal(writer: JournalSink, hub: EventHub, *,
                      on_storage_error: StorageFailureHandler | None = None,
                      on_refused: RefusalHandler | None = None,
                      observer: Observer = UNOBSERVED,
                      task_status: trio.TaskStatus[JournalRef] = trio.TASK_STATUS_IGNORED
                      ) -> None:
    """Serve ``Append`` messages until the inbox is closed and drained.

    Each message is all or nothing. A message the Core DB cannot store — a
    record holding text that is not UTF-8, an integer beyond 64 bits, a value
    it cannot bind (``RecordUnstorable``) — is left out of its batch and the
    rest is committed: one bad record never costs anyone else's. Its caller
    gets the ``RecordUnstorable`` and ``on_refused`` is told (to fail the run
    it belongs to); a refused ``run.finish`` is replaced by a plain ``failed``
    one, so no run is left ``running``.

    A batch the Core DB refuses as a whole (``StorageError``: disk full, I/O
    error) does not stop the actor either — restarting it would free no
    space, and the refs live runs hold would go stale. Its output chunks are
    dropped and the rest is retried alone; ``on_storage_error`` is then told
    which events were lost (all of them if the retry failed too) and callers
    waiting for a reply on a message that lost anything get the ``StorageError``.

    ``observer`` is told how long each batch's transaction took, and how it
    ended (``journal_append``: ``ok``, ``quota_exceeded`` on a full disk, ``error``).

    Cancellation: an in-flight transaction still completes and is published
    (shielded, bounded by one commit); queued messages are then dropped and
    their callers get ``ActorStopped``. Close the inbox instead of cancelling
    to flush everything (that is what ordered shutdown does).
    """
    # Runs that lost output to a storage error lose the rest of it too (a gap
    # in the middle would be worse); their lifecycle records are still kept.
    muted: set[str] = set()

    def note_failure(error: StorageError, lost: list[EventRecord]) -> None:
        muted.update(record.run_id for record in lost)
        if on_storage_error is not None:
            on_storage_error(error, lost)

    with Inbox[Append]("journal", JOURNAL_INBOX) as inbox:
        task_status.started(inbox.ref)
        while True:
            try:
                batch = [await inbox.receive()]
            except trio.EndOfChannel:
                return
            await _gather(inbox, batch)
            if muted:
                batch = [message for message in batch
                         if message.reply is not None or not _muted_output(message, muted)]
                if not batch:
                    continue
            if not any(message.items for message in batch):
                # Nothing to store (a barrier: see the finisher): no transaction.
                for message in batch:
                    if message.reply is not None:
                        message.reply.reply([])
                continue
            try:
                results = await _commit(writer, [message.items for message in batch], observer)
            except StorageError as exc:
                await _salvage(writer, hub, batch, exc, note_failure, on_refused, observer)
                continue
            except Exception as exc:
                for message in batch:
                    if message.reply is not None:
                        message.reply.fail(exc)
                raise
            hub.publish(_committed(results))
            refusals: list[tuple[Append, RecordUnstorable]] = []
            for message, result in zip(batch, results, strict=True):
                if isinstance(result, RecordUnstorable):
                    refusals.append((message, result))
                    if message.reply is not None:
                        message.reply.fail(result)
                elif message.reply is not None:
                    message.reply.reply(result)
            if refusals:
                await _refused(writer, hub, refusals, on_refused, observer)
