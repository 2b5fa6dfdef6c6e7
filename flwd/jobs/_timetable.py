"""The schedules of a catalog: :func:`schedule_book` (each job's ``schedule:`` resolved)."""

from __future__ import annotations

from flwd.schedule import Schedule, ScheduleBook

from ._discovery import Catalog, Job

__all__ = ["job_schedules", "schedule_book"]


def job_schedules(job: Job, default_zone: str) -> list[Schedule]:
    """The job's schedules, resolved (named, zoned; a zone-less one on ``default_zone``);
    none for a job whose schedules do not fire (a source's, unless it allows them)."""
    entries = job.config.schedule if job.scheduled else []
    return [entry.resolve(job.id, index, len(entries), args=job.config.args,
                          default_zone=default_zone, path=str(job.config_path))
            for index, entry in enumerate(entries)]


def schedule_book(catalog: Catalog, default_zone: str) -> ScheduleBook:
    """Every schedule of every job of ``catalog``, by name (a name claimed twice is an
    issue of the book, and neither schedule is in it)."""
    return ScheduleBook.of(schedule for job in catalog.jobs
                           for schedule in job_schedules(job, default_zone))
