"""The journal actor: batches events from every run into Core DB transactions.

Messages arrive from run actors (output chunks, lifecycle events) through one
bounded inbox. The actor takes whatever has queued up while the previous
transaction was committing, commits it as one batch in the writer thread,
then publishes the committed records to the hub — so an event is always
journaled before anyone sees it, and batch size adapts to load without a timer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import outcome
import trio

from actors import ActorRef, Inbox, ReplySlot
from flwd.errors import StorageError
from flwd.events import STEP_LOG, EventRecord
from flwd.store import JournalItem, JournalWriter

from ._hub import EventHub

#: Messages queued for the next transaction. A message is one event or one
#: chunk of up to 64 KiB of output lines, so this bounds what is in flight to
#: a few MiB while letting several producers keep the writer busy.
JOURNAL_INBOX = 256
#: Items committed in one transaction at most; keeps a transaction short so
#: live subscribers see output with low latency under load.
MAX_BATCH_ITEMS = 2048


@dataclass(frozen=True, slots=True)
class Append:
    """Journal ``items`` in order. With ``reply``, answer once they are committed."""

    items: Sequence[JournalItem]
    reply: ReplySlot[list[EventRecord]] | None = field(default=None)


JournalRef = ActorRef[Append]


async def _commit(writer: JournalWriter, items: list[JournalItem]) -> list[EventRecord]:
    token = trio.lowlevel.current_trio_token()
    done = trio.Event()
    box: list[outcome.Outcome[list[EventRecord]]] = []

    def finished(result: outcome.Outcome[list[EventRecord]]) -> None:
        # Runs in the writer thread: hand the result back to trio without blocking.
        def deliver() -> None:
            box.append(result)
            done.set()

        token.run_sync_soon(deliver)

    writer.submit(items, finished)
    # Shielded: the thread commits the batch whatever happens to us, and a batch
    # that is committed must also be published and acknowledged.
    with trio.CancelScope(shield=True):
        await done.wait()
    return box[0].unwrap()


#: Told which events a storage failure lost (see :func:`run_journal`); must not block.
StorageFailureHandler = Callable[[StorageError, list[EventRecord]], None]


def _is_output(item: JournalItem) -> bool:
    return isinstance(item, EventRecord) and item.type == STEP_LOG


def _muted_output(message: Append, muted: set[str]) -> bool:
    return all(isinstance(item, EventRecord) and item.type == STEP_LOG
               and item.run_id in muted for item in message.items)


async def _salvage(writer: JournalWriter, hub: EventHub, batch: list[Append],
                   error: StorageError, on_storage_error: StorageFailureHandler | None) -> None:
    # Output chunks are what fills a disk; the lifecycle records (runs,
    # run.start/finish, step events, idempotency keys) are few and small. In WAL
    # mode the frames of the failed transaction are reused by the next one, so
    # the lifecycle records alone usually fit where the whole batch did not.
    essential = [[item for item in message.items if not _is_output(item)]
                 for message in batch]
    # The ballast file goes (once): room for the lifecycle records of the runs
    # the engine is about to stop, even when the disk is completely full.
    await trio.to_thread.run_sync(writer.release_reserve)
    retry = [item for kept in essential for item in kept]
    lost = [item for message in batch for item in message.items
            if isinstance(item, EventRecord) and _is_output(item)]
    complete = False
    if retry:
        try:
            committed = await _commit(writer, retry)
        except StorageError as again:
            error = again
            lost = [item for message in batch for item in message.items
                    if isinstance(item, EventRecord)]
        else:
            complete = True
            hub.publish(committed)
    for message, kept in zip(batch, essential, strict=True):
        if message.reply is None:
            continue
        if complete and len(kept) == len(message.items):
            message.reply.reply([item for item in kept if isinstance(item, EventRecord)])
        else:
            message.reply.fail(error)
    if on_storage_error is not None:
        on_storage_error(error, lost)


async def run_journal(writer: JournalWriter, hub: EventHub, *,
                      on_storage_error: StorageFailureHandler | None = None,
                      task_status: trio.TaskStatus[JournalRef] = trio.TASK_STATUS_IGNORED
                      ) -> None:
    """Serve ``Append`` messages until the inbox is closed and drained.

    A batch the Core DB refuses (``StorageError``: disk full, I/O error) does
    not stop the actor — restarting it would free no space, and the refs live
    runs hold would go stale. Its output chunks are dropped and the rest is
    retried alone; ``on_storage_error`` is then told which events were lost
    (all of them if the retry failed too) and callers waiting for a reply on a
    message that lost anything get the ``StorageError``.

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
            count = len(batch[0].items)
            while count < MAX_BATCH_ITEMS:
                try:
                    message = inbox.receive_nowait()
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
                batch.append(message)
                count += len(message.items)
            if muted:
                batch = [message for message in batch
                         if message.reply is not None or not _muted_output(message, muted)]
                if not batch:
                    continue
            items = [item for message in batch for item in message.items]
            try:
                committed = await _commit(writer, items)
            except StorageError as exc:
                await _salvage(writer, hub, batch, exc, note_failure)
                continue
            except Exception as exc:
                for message in batch:
                    if message.reply is not None:
                        message.reply.fail(exc)
                raise
            hub.publish(committed)
            for message in batch:
                if message.reply is not None:
                    message.reply.reply(
                        [item for item in message.items if isinstance(item, EventRecord)])
