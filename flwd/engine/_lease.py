"""Lease arithmetic of a cluster replica (sans-IO: times are given, nothing is awaited).

A replica of a cluster (several ``flwd :serve`` on one PostgreSQL Core DB) holds a
lease on every run it executes: the run's row says until when (``lease_until``, on
the database's clock) and under which epoch (``lease_epoch``, bumped by every claim
and every reaping). Each heartbeat renews the leases; a replica that stopped
heartbeating has its runs reaped by the others once their lease lapsed.

The replica itself must stop its runs *before* that happens, when it cannot renew
(the database unreachable, its connection dropped): :class:`LeaseWatch` says when,
counting from the start of the last renewal that succeeded (the database set
``lease_until`` to its own clock plus the lease *after* that moment, so the lease
cannot lapse earlier) and keeping a margin for the stop itself (TERM, the grace, KILL).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Seconds between heartbeats by default (the issue's "every ~5 s").
HEARTBEAT = 5.0
#: Seconds a lease lasts by default after each renewal: six heartbeats can be missed.
LEASE = 30.0


@dataclass(frozen=True, slots=True)
class ClusterTiming:
    """How often a replica heartbeats and how long its leases last (seconds)."""

    heartbeat: float = HEARTBEAT
    lease: float = LEASE
    #: Seconds a stopping run may take (TERM → grace → KILL, and the kill's wait).
    grace: float = 10.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.heartbeat) and self.heartbeat > 0):
            raise ValueError(f"the heartbeat must be a positive number of seconds "
                             f"(got {self.heartbeat})")
        if not (math.isfinite(self.lease) and self.lease >= 3 * self.heartbeat):
            raise ValueError(f"the lease ({self.lease} s) must last at least three "
                             f"heartbeats ({self.heartbeat} s each)")

    @property
    def stop_margin(self) -> float:
        """How long before its lease lapses a replica that cannot renew stops its runs.

        Enough for a stop (the grace, plus a heartbeat for the kill to be seen), but
        never more than two thirds of the lease: a replica must first miss a
        heartbeat or two before it gives up on its runs.
        """
        return min(self.grace + self.heartbeat, self.lease * 2 / 3)

    @property
    def poll(self) -> float:
        """Seconds between looks at the queue when no notification came (the fallback
        for a lost NOTIFY; a notification wakes the claimer at once)."""
        return max(self.heartbeat / 2, 0.05)


class LeaseWatch:
    """When the leases of one replica lapse, as far as the replica can know.

    Times are the replica's monotonic clock (``trio.current_time()``); the lease
    itself is on the database's clock, which advances at the same rate.
    """

    def __init__(self, timing: ClusterTiming, started: float) -> None:
        self.timing = timing
        #: The start of the last renewal that succeeded (the registration counts).
        self.renewed_from = started

    def renewed(self, attempt_started: float) -> None:
        """A renewal sent at ``attempt_started`` succeeded."""
        self.renewed_from = max(self.renewed_from, attempt_started)

    def lapses_at(self) -> float:
        """The earliest the leases can lapse: no lease was set before the renewal began."""
        return self.renewed_from + self.timing.lease

    def stop_at(self) -> float:
        """When the replica must stop its runs if it has not renewed meanwhile."""
        return self.lapses_at() - self.timing.stop_margin

    def must_stop(self, now: float) -> bool:
        return now >= self.stop_at()


def plan_digest(plan_json: Mapping[str, Any], places: Mapping[str, str] | None = None) -> str:
    """The digest two replicas compare to know they planned the same run.

    The plan as ``POST /plan`` shows it, with the folders that differ from one replica to
    the next named by their role instead of their path (``places``: role → absolute
    path; the workspace, the job's folder, a source's checkout): replicas keep the same
    workspace at different places, and each checks a source out in its own data dir.
    The time each replica last refreshed its checkout of a source is left out too (its
    commit is compared). Everything else — steps, commands, arguments (secrets are never
    in a plan), profile, policy findings, images, a source's commit — must be equal.
    """
    plan = dict(plan_json)
    provenance = plan.get("provenance")
    source = provenance.get("source") if isinstance(provenance, dict) else None
    if isinstance(provenance, dict) and isinstance(source, dict) \
            and isinstance(source.get("metadata"), dict):
        metadata = {k: v for k, v in source["metadata"].items() if k != "refreshed_at"}
        plan["provenance"] = {**provenance, "source": {**source, "metadata": metadata}}
    text = json.dumps(plan, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    # Longest first: a checkout inside the data dir is not half-replaced by a shorter one.
    for role, path in sorted((places or {}).items(), key=lambda item: -len(item[1])):
        if path and path != "/":
            text = text.replace(json.dumps(path, ensure_ascii=False)[1:-1], f"<{role}>")
    return "sha256:" + hashlib.sha256(text.encode("utf-8", "backslashreplace")).hexdigest()


def plan_places(workspace: str, job_dir: str, roots: tuple[str, str] | None) -> dict[str, str]:
    """The folders :func:`plan_digest` names by role for a plan of this job."""
    places = {"workspace": workspace, "job": job_dir}
    if roots is not None:
        places["checkout"], places["scripts"] = roots
    return places
