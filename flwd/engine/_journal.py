"""The journal actor: batches events from every run into Core DB transactions.

Messages arrive from run actors (output chunks, lifecycle events) through one
bounded inbox. The actor takes whatever has queued up while the previous
transaction was committing, commits it as one batch in the writer thread,
then publishes the committed records to the hub — so an event is always
journaled before anyone sees it, and batch size adapts to load without a timer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import outcome
import trio

from actors import ActorRef, Inbox, ReplySlot
from flwd.events import EventRecord
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


async def run_journal(writer: JournalWriter, hub: EventHub, *,
                      task_status: trio.TaskStatus[JournalRef] = trio.TASK_STATUS_IGNORED
                      ) -> None:
    """Serve ``Append`` messages until the inbox is closed and drained.

    Cancellation: an in-flight transaction still completes and is published
    (shielded, bounded by one commit); queued messages are then dropped and
    their callers get ``ActorStopped``. Close the inbox instead of cancelling
    to flush everything (that is what ordered shutdown does).
    """
    with Inbox[Append]("journal", JOURNAL_INBOX) as inbox:
        task_status.started(inbox.ref)
        while True:
            try:
                batch = [await inbox.receive()]
            except trio.EndOfChannel:
                return
            # One pass of the scheduler first: a run emits its events in bursts
            # (run.start then step.start; step.finish then run.finish) and
            # other runs' producers are often ready too. Taking them into this
            # transaction saves a commit and two thread wake-ups each, for the
            # latency of one scheduling round (no timer). Shielded: a message
            # taken from the inbox is committed or failed, never dropped.
            await trio.lowlevel.cancel_shielded_checkpoint()
            count = len(batch[0].items)
            while count < MAX_BATCH_ITEMS:
                try:
                    message = inbox.receive_nowait()
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
                batch.append(message)
                count += len(message.items)
            items = [item for message in batch for item in message.items]
            try:
                committed = await _commit(writer, items)
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
