"""What a Core DB shared by several processes tells its listeners, as payloads (sans-IO).

On PostgreSQL the journal's transactions ``NOTIFY`` the replicas of a cluster (one
LISTEN connection each, :mod:`flwd.engine._listener`), so that a replica following a
run executing elsewhere reads the journal when the run moved instead of polling it.
Notifications are *hints*: they carry ids, never events (a reader reads the journal,
which alone says what happened and in what order), and a lost one only delays a reader
until its polling fallback.

- :data:`EVENTS_CHANNEL`: one payload per run per committed batch, ``"<run_id> <seq>"``
  (the last seq of the run in that batch; ``run_id`` empty for events of no run). Sent
  in the batch's transaction: PostgreSQL delivers it at commit, never before, and never
  for a rolled-back batch. Every transaction that notifies takes a global lock at
  commit, so the journal's batches (not its events) are what notify.
- :data:`CANCELS_CHANNEL`: ``"<run_id>"``, sent with a cancel request recorded for a run
  live in another replica (the request itself is a row: ``Store.request_cancel``).

On SQLite the same notes go, after the commit, to the datagram sockets of the processes
of the host that listen (the workers of ``flwd :serve --workers N``): ``flwd.store._bus``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

from flwd.events import EventRecord

EVENTS_CHANNEL: Final = "flwd_events"
CANCELS_CHANNEL: Final = "flwd_cancels"
#: PostgreSQL refuses a payload of 8,000 bytes or more; a run id is ~30.
MAX_PAYLOAD: Final = 7999


def last_seqs(events: Iterable[EventRecord]) -> dict[str, int]:
    """The last seq of each run among ``events`` (committed, numbered)."""
    last: dict[str, int] = {}
    for event in events:
        if event.last_seq > last.get(event.run_id, 0):
            last[event.run_id] = event.last_seq
    return last


def event_payloads(last: Mapping[str, int]) -> list[str]:
    """One notification payload per run of a batch (see :data:`EVENTS_CHANNEL`).

    A run id too long for a payload (never one flwd makes) is announced as ``""``: its
    readers are then woken by every run-less event, or by their polling fallback.
    """
    payloads = []
    for run_id, seq in last.items():
        payload = f"{run_id} {seq}"
        if len(payload.encode()) > MAX_PAYLOAD:
            payload = f" {seq}"
        payloads.append(payload)
    return payloads


def parse_event_payload(payload: str) -> tuple[str, int] | None:
    """``(run_id, seq)`` of an :data:`EVENTS_CHANNEL` payload; None if it is not one."""
    run_id, space, seq = payload.rpartition(" ")
    if not space or not seq.isdigit():
        return None
    return run_id, int(seq)


def cancel_payload(run_id: str) -> str:
    return run_id


def parse_cancel_payload(payload: str) -> str | None:
    """The run id of a :data:`CANCELS_CHANNEL` payload; None if it is not one."""
    return payload if payload and " " not in payload else None
