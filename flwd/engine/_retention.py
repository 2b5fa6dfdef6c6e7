"""The retention actor of a long-lived engine: keeps the Core DB within its limits."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from flwd.observe import UNOBSERVED, Observer
from flwd.store import GcResult, RetentionPolicy, Store

_log = logging.getLogger("flwd.retention")

#: How often the limits are applied; also once right after start.
INTERVAL = 60.0


@dataclass(slots=True)
class RetentionState:
    policy: RetentionPolicy
    last: GcResult | None = None
    last_at: float | None = None
    errors: list[str] = field(default_factory=list)


def collect_once(store: Store, runs_dir: Path, policy: RetentionPolicy) -> GcResult:
    """One pass of :meth:`Store.collect <flwd.store.Store.collect>` (blocking)."""
    return store.collect(policy, runs_dir=runs_dir)


def report_evictions(observer: Observer, result: GcResult) -> None:
    """Tell ``observer`` what one pass evicted: journal rows (events) and idempotency keys."""
    if result.events_deleted:
        observer.evicted("journal", result.events_deleted, result.event_bytes_deleted)
    if result.keys_deleted:
        observer.evicted("idempotency", result.keys_deleted, result.key_bytes_deleted)


async def run_retention(state: RetentionState, store: Store, runs_dir: Path, *,
                        interval: float = INTERVAL, observer: Observer = UNOBSERVED,
                        task_status: trio.TaskStatus[RetentionState] = trio.TASK_STATUS_IGNORED
                        ) -> None:
    """Apply ``state.policy`` now and every ``interval`` seconds until cancelled;
    ``observer`` is told what each pass evicted.

    A failing pass (say, a full disk) is logged and kept in ``state.errors``; the
    next pass tries again. Cancellation: a pass in its worker thread finishes
    its current transaction (the Core DB rolls back an interrupted one).
    """
    task_status.started(state)
    while True:
        try:
            result = await trio.to_thread.run_sync(collect_once, store, runs_dir,
                                                   state.policy)
        except Exception as exc:
            _log.warning("retention pass failed: %s", exc)
            state.errors = [*state.errors[-9:], str(exc)]
        else:
            state.last, state.last_at = result, trio.current_time()
            report_evictions(observer, result)
            if result.evicted:
                _log.info("retention evicted %d runs (%d events)", len(result.evicted),
                          result.events_deleted)
        await trio.sleep(interval)


def storage_health(usage: dict[str, Any], state: RetentionState | None) -> dict[str, Any]:
    """``GET /health/storage``: the store's ``usage`` with retention's state (sans-IO).

    The reference's ``ok``, ``journal_max_bytes`` and ``eviction_active`` are read
    in flwd's terms. flwd's event journal has no byte budget of its own: its
    events are evicted with their runs, so it can hold what the database may:
    ``--max-db-mb`` when set (retention evicts the oldest finished runs, events
    and all, above it), else ``max_bytes``. Eviction is active while retention
    evicts: its last pass evicted runs, or the database is over ``--max-db-mb``
    (the next pass will). The store is ``ok`` while the database can grow
    (``bytes_used < max_bytes``): a full disk is what stops its writes.
    """
    used, most = usage["bytes_used"], usage["max_bytes"]
    policy = state.policy if state is not None else None
    budget = (int(policy.max_db_mb * 1024 * 1024)
              if policy is not None and policy.max_db_mb is not None else None)
    evicting = state is not None and state.last is not None and bool(state.last.evicted)
    if budget is not None and usage["used_bytes"] > budget:
        evicting = True
    health: dict[str, Any] = {
        "driver": usage["driver"], "ok": used < most, "bytes_used": used, "max_bytes": most,
        "journal_bytes": usage["journal_bytes"],
        "journal_max_bytes": most if budget is None else min(budget, most),
        "eviction_active": evicting, "schema_version": usage["schema_version"]}
    health.update((key, value) for key, value in usage.items() if key not in health)
    health["retention"] = policy.to_json() if policy is not None else None
    if state is not None and state.last is not None:
        health["last_gc"] = {k: v for k, v in state.last.to_json().items() if k != "evicted"}
    if state is not None and state.errors:
        health["gc_errors"] = state.errors[-3:]
    return health
