"""Journaling policy decisions that did not become a run (a refused request).

Decisions of a run are emitted by its run actor before ``run.start``. A
refusal starts nothing, so its decisions are journaled here with an empty
``run_id`` (CONTRACT §6: every decision is journaled, denials included); the
global event stream and the denial metric see them like any other event.
"""

from __future__ import annotations

from collections.abc import Sequence

from flwd.events import POLICY_DECISION, EventRecord, now
from flwd.policy import Decision
from flwd.store import Store


def decision_records(run_id: str, job_id: str, profile: str,
                     decisions: Sequence[Decision]) -> list[EventRecord]:
    ts = now()
    return [EventRecord(run_id=run_id, job_id=job_id, type=POLICY_DECISION, ts=ts, data={
        "run_id": run_id or None, **decision.to_json(), "level": decision.level,
        "security_profile": profile}) for decision in decisions]


def journal_refusal_sync(target: Store, job_id: str, profile: str,
                         decisions: Sequence[Decision]) -> None:
    """Journal the decisions of a refused run request without an engine (a CLI run is
    refused before it starts its actor tree); blocking. ``Engine.journal_refusal`` is
    the same through the journal actor."""
    if decisions:
        target.append(decision_records("", job_id, profile, decisions))
