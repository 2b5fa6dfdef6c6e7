"""Which notifications a run sends: the rules of its job and of its workspace (sans-IO).

A rule is *armed* for a run when the run starts (its job's rules as planned, and the
rules of ``flwd.yaml`` whose ``jobs`` patterns take it). When the run finishes, each
armed rule sends at most one event:

- ``failure`` — the run failed; with ``after_failures: N``, only the run that makes
  N failures in a row (once per streak, not the N+1th);
- ``recovery`` — the run completed and ended a streak of failures (of at least
  ``after_failures``, else of one); it is sent instead of ``success``;
- ``success`` — the run completed;
- ``canceled`` — the run was canceled.

A streak counts the job's ``failed`` and ``interrupted`` runs (of the same workspace)
in the order they finished; a canceled run neither breaks nor extends it. It is read
from the Core DB (:meth:`flwd.store.Store.recent_outcomes`), so a restart forgets
nothing. ``running_longer_than`` is the notifier's timer: once per run, while it runs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from flwd.jobs import NotifyRule

#: The statuses a streak counts as failures (the store's ``recent_outcomes`` lists them).
FAILED = frozenset({"failed", "interrupted"})


@dataclass(frozen=True, slots=True)
class Armed:
    """A rule as it applies to one run."""

    rule: NotifyRule
    #: What deliveries call the sink (its ``name``, else where it is written).
    name: str
    #: Which sink it is, across runs: the bound on pending deliveries is per sink.
    key: str

    @property
    def kind(self) -> str:
        return self.rule.kind


def arm(job_id: str, job_rules: Sequence[NotifyRule],
        workspace_rules: Sequence[NotifyRule]) -> list[Armed]:
    """The rules that apply to a run of ``job_id``: the job's own (``notify[i]``), then
    the workspace's that take it (``flwd.yaml notify[i]``)."""
    armed = [Armed(rule, rule.name or f"notify[{index}]", f"job:{job_id}:{index}")
             for index, rule in enumerate(job_rules) if rule.applies_to(job_id)]
    armed += [Armed(rule, rule.name or f"flwd.yaml notify[{index}]", f"workspace:{index}")
              for index, rule in enumerate(workspace_rules) if rule.applies_to(job_id)]
    return armed


@dataclass(frozen=True, slots=True)
class Streaks:
    """Failures in a row: ending with this run (0 unless it failed), and just before it."""

    current: int
    before: int


def history_depth(armed: Sequence[Armed]) -> int:
    """How many of the job's latest outcomes (this run's included) decide the events of
    ``armed``: 0 when no rule looks at the history."""
    needs = [rule.after_failures or 1 for rule in (a.rule for a in armed)
             if "recovery" in rule.events or rule.after_failures is not None]
    # N + 1: the streak is exactly N (not more) when the outcome before it is no failure.
    return max(needs) + 1 if needs else 0


def streaks(outcomes: Sequence[str]) -> Streaks:
    """The streaks of ``outcomes`` (this run's first, then the earlier ones, newest first)."""

    def leading(statuses: Sequence[str]) -> int:
        count = 0
        for status in statuses:
            if status not in FAILED:
                break
            count += 1
        return count

    return Streaks(current=leading(outcomes), before=leading(outcomes[1:]))


def finish_event(rule: NotifyRule, status: str, history: Streaks) -> str | None:
    """The event ``rule`` sends for a run that finished ``status``, if any."""
    events = rule.events
    if status in FAILED:
        if "failure" not in events:
            return None
        if rule.after_failures is None or history.current == rule.after_failures:
            return "failure"
        return None
    if status == "completed":
        if "recovery" in events and history.before >= (rule.after_failures or 1):
            return "recovery"
        return "success" if "success" in events else None
    if status == "canceled" and "canceled" in events:
        return "canceled"
    return None


def delivery_id(run_id: str, event: str, key: str) -> str:
    """The id of one notification (the same for all its attempts): a receiver that got
    it twice (a retry after a lost answer) can tell."""
    sink = hashlib.sha256(key.encode()).hexdigest()[:10]
    return f"{run_id}.{event}.{sink}"
