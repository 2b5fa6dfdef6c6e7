"""A resolved schedule (:class:`Schedule`), its fire keys, and its jitter.

A :class:`Schedule` is what the jobs config's ``schedule:`` entry becomes once its
job is known: a unique name, the job, when it fires, in which zone, with which
arguments, and what to do with fires that were missed or that come while an
earlier run is still going. Sans-IO.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any, Final, Literal

from flwd.events import schedule_key_prefix

from ._when import At, Cron, Every, Reboot
from ._zone import resolve_zone

__all__ = [
    "DEFAULT_CATCHUP_WINDOW",
    "MISFIRE_MODES",
    "OVERLAP_MODES",
    "Misfire",
    "Overlap",
    "Schedule",
    "fire_data",
    "fire_key",
    "format_fire",
    "jitter_for",
    "manual_key",
]

Misfire = Literal["skip", "run_once", "all"]
Overlap = Literal["skip", "queue", "cancel_previous", "allow"]
MISFIRE_MODES: Final[tuple[Misfire, ...]] = ("skip", "run_once", "all")
OVERLAP_MODES: Final[tuple[Overlap, ...]] = ("skip", "queue", "cancel_previous", "allow")
#: How far back missed fires are caught up by default: a night's sleep of a laptop.
DEFAULT_CATCHUP_WINDOW: Final = 24 * 3600.0


def format_fire(instant: float) -> str:
    """A fire time as its key writes it: RFC 3339 UTC to the second (``2027-01-01T08:00:00Z``).

    Fixed width for the years 1000-9999, so keys of one schedule sort by time.
    """
    return datetime.fromtimestamp(math.floor(instant), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def fire_key(workspace: str | None, name: str, instant: float) -> str:
    """The trigger key of the scheduled fire of ``name`` (of ``workspace``) at ``instant``:
    the Core DB keeps one run per key, so a fire never starts two runs."""
    return schedule_key_prefix(workspace, name) + format_fire(instant)


def manual_key(workspace: str | None, name: str, run_token: str) -> str:
    """The trigger key of a manual fire (``flwd :schedules trigger``): unique per request,
    and never read as a scheduled fire (a letter follows the ``@``, never a digit)."""
    return schedule_key_prefix(workspace, name) + f"manual-{run_token}"


def fire_data(name: str, fire_at: float, run_id: str, due_at: float, created_at: float, *,
              catchup: bool = False, manual: bool = False) -> dict[str, Any]:
    """The data of a ``schedule.fire`` event (journaled with ``run_id`` ``""``, as it is
    decided outside the run, and naming the run it started)."""
    return {"name": name, "fire_at": format_fire(fire_at), "run_id": run_id,
            "due_at": format_fire(due_at), "lag_seconds": round(max(0.0, created_at - due_at), 3),
            "catchup": catchup, "manual": manual}


def jitter_for(name: str, instant: float, jitter: float) -> float:
    """Seconds ``[0, jitter)`` to delay the fire of ``name`` at ``instant``.

    Derived from the name and the fire time (SHA-256), not drawn: a restart, or
    another server, computes the same delay, and different schedules firing at the
    same minute spread out.
    """
    if jitter <= 0:
        return 0.0
    digest = hashlib.sha256(f"{name}@{format_fire(instant)}".encode()).digest()
    return jitter * (int.from_bytes(digest[:8], "big") / 2**64)


@dataclass(frozen=True, slots=True)
class Schedule:
    """One schedule of one job, resolved (see the module docstring)."""

    name: str
    job_id: str
    when: Cron | Every | At | Reboot
    #: The IANA name of the zone (the host's when the config names none).
    zone_name: str
    #: Whether the zone was written (False: the host's zone, resolved when loaded).
    zone_given: bool = True
    #: The arguments of its runs, as JSON (validated against the job's argspec).
    args: Mapping[str, Any] = field(default_factory=dict)
    #: The same with every secret replaced by ``[secret]``, for display.
    shown_args: Mapping[str, Any] = field(default_factory=dict)
    misfire: Misfire = "run_once"
    catchup_window: float = DEFAULT_CATCHUP_WINDOW
    overlap: Overlap = "skip"
    jitter: float = 0.0
    enabled: bool = True
    #: Its position in the job's ``schedule:`` list, and the config file it is in.
    index: int = 0
    path: str = ""

    @property
    def zone(self) -> tzinfo:
        return resolve_zone(self.zone_name)

    @property
    def kind(self) -> str:
        """``cron``, ``every``, ``at`` or ``reboot``."""
        return {Cron: "cron", Every: "every", At: "at", Reboot: "reboot"}[type(self.when)]

    def after(self, instant: float) -> float | None:
        """The first fire time strictly after ``instant`` (nominal, without jitter)."""
        return self.when.after(instant, self.zone)

    def due_time(self, instant: float) -> float:
        """When the fire of ``instant`` is due: the fire time plus its jitter."""
        return instant + jitter_for(self.name, instant, self.jitter)

    def next_fires(self, instant: float, count: int) -> list[float]:
        """The next ``count`` fire times after ``instant`` (fewer if it stops firing)."""
        fires: list[float] = []
        fire = self.after(instant)
        while fire is not None and len(fires) < count:
            fires.append(fire)
            fire = self.after(fire)
        return fires

    def local_text(self, instant: float) -> str:
        """``instant`` on the schedule's zone's clock, with its offset (RFC 3339)."""
        return datetime.fromtimestamp(math.floor(instant), self.zone).isoformat()

    def to_json(self) -> dict[str, Any]:
        """The schedule as configured (resolved): what ``GET /schedules`` shows of it."""
        out: dict[str, Any] = {"name": self.name, "job_id": self.job_id, "kind": self.kind}
        out["at" if isinstance(self.when, At) else "cron"] = self.when.text
        out["timezone"] = self.zone_name
        out["timezone_source"] = "config" if self.zone_given else "server"
        out["args"] = dict(self.shown_args)
        out["enabled"] = self.enabled
        out["misfire"] = self.misfire
        out["catchup_window_seconds"] = self.catchup_window
        out["overlap"] = self.overlap
        out["jitter_seconds"] = self.jitter
        out["index"] = self.index
        if self.path:
            out["path"] = self.path
        return out
