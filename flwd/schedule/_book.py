"""Every schedule of a catalog by name: :class:`ScheduleBook` (sans-IO).

Names are unique across the catalog: a schedule is found, paused and keyed
(``schedule:<name>@<fire time>``) by its name alone. When several schedules claim a
name none of them is scheduled (firing one would be a guess): each is reported,
naming the others, as the catalog does for a job id claimed twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from ._spec import Schedule

__all__ = ["ScheduleBook", "ScheduleIssue"]


@dataclass(frozen=True, slots=True)
class ScheduleIssue:
    """Why a schedule is not scheduled: its config file, its name and the message."""

    path: str
    name: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"path": self.path, "name": self.name, "error": self.message}


@dataclass
class ScheduleBook:
    """The schedules of a catalog (sorted by name) and the names claimed twice."""

    schedules: dict[str, Schedule] = field(default_factory=dict)
    issues: list[ScheduleIssue] = field(default_factory=list)

    @classmethod
    def of(cls, schedules: Iterable[Schedule]) -> ScheduleBook:
        claims: dict[str, list[Schedule]] = {}
        for schedule in schedules:
            claims.setdefault(schedule.name, []).append(schedule)
        book = cls()
        for name in sorted(claims):
            claimants = claims[name]
            if len(claimants) == 1:
                book.schedules[name] = claimants[0]
                continue
            for schedule in claimants:
                others = ", ".join(f"{other.job_id} (schedule[{other.index}])"
                                   for other in claimants if other is not schedule)
                book.issues.append(ScheduleIssue(
                    schedule.path, name,
                    f"schedule[{schedule.index}] of job {schedule.job_id}: the name "
                    f"{name!r} is also the name of a schedule of {others}; none of them is "
                    "scheduled (give each a distinct name:)"))
        return book

    def __iter__(self) -> Iterator[Schedule]:
        return iter(self.schedules.values())

    def __len__(self) -> int:
        return len(self.schedules)

    def get(self, name: str) -> Schedule | None:
        return self.schedules.get(name)

    def of_job(self, job_id: str) -> list[Schedule]:
        """The schedules of one job, in the order of its ``schedule:`` list."""
        return sorted((schedule for schedule in self.schedules.values()
                       if schedule.job_id == job_id), key=lambda schedule: schedule.index)
