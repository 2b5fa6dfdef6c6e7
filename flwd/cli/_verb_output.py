"""What ``:jobs``, ``:plan``, ``:runs`` and ``:cancel`` print, as text (sans-IO).

The verbs print it in their own process (:mod:`flwd.cli._app`); ``flwd :serve`` sends it
to a thin client that handed it the command line (:mod:`flwd.cli._served`), which writes
it as it comes: one piece of code says what both print.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from flwd.errors import UsageError
from flwd.store import RunFilter, run_filter

from ._backend import CancelAnswer, JobListing, RunListing
from ._render import (
    Style,
    dumps,
    render_cancel,
    render_discovery_problems,
    render_jobs,
    render_plan,
    render_runs,
)

#: How many runs ``:runs`` shows without ``--limit``.
RUNS_LIMIT = 20


@dataclass(slots=True)
class Printed:
    """A verb's output: each piece with its stream (``stdout``, ``stderr``), in order."""

    pieces: list[tuple[str, str]] = field(default_factory=list)

    def out(self, text: str) -> None:
        """A line (or lines) on stdout, as ``print`` writes it."""
        self.pieces.append(("stdout", text + "\n"))

    def err(self, text: str) -> None:
        """Text on stderr, as it is."""
        if text:
            self.pieces.append(("stderr", text))

    def emit(self) -> None:
        """Write it to this process's stdout and stderr."""
        for stream, text in self.pieces:
            (sys.stdout if stream == "stdout" else sys.stderr).write(text)


def jobs_printed(listing: JobListing, *, as_json: bool) -> Printed:
    """``:jobs``: the problems on stderr (the JSON lists them, the table does not), then
    the table or the document."""
    printed = Printed()
    if not as_json:
        printed.err(render_discovery_problems(listing.document))
    printed.out(dumps(listing.document) if as_json else render_jobs(listing))
    return printed


def plan_printed(plan: dict[str, Any], *, as_json: bool, color: bool) -> Printed:
    """``:plan``: the plan's preview or its document."""
    printed = Printed()
    printed.out(dumps(plan) if as_json else render_plan(plan, Style(color)))
    return printed


def runs_where(*, job: str | None, status: str | None, arg: Sequence[str] | None,
               since: str | None, until: str | None, limit: int) -> RunFilter:
    """``:runs``' filter from its options.

    Raises:
        UsageError: a limit out of range, an ``--arg`` that is not NAME=VALUE, a time or
        status that is none.
    """
    if not 1 <= limit <= 1000:
        raise UsageError(f"--limit must be between 1 and 1000 (got {limit})")
    return run_filter(job_id=job, statuses=[status] if status else [], since=since,
                      until=until, args=[_name_value(text) for text in arg or ()])


def _name_value(text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not equals:
        raise UsageError(f"--arg {text!r} is not NAME=VALUE",
                         hint="e.g. --arg name=world (an argument of the job, and its value)")
    return name, value


def runs_printed(listing: RunListing, *, as_json: bool, every: bool, color: bool) -> Printed:
    """``:runs``: the table (``every``: with its WORKSPACE column) or the documents."""
    printed = Printed()
    if as_json:
        printed.out(dumps(listing.documents))
    else:
        printed.out(render_runs(listing.runs, Style(color), workspaces=every,
                                empty=listing.empty))
    return printed


def cancel_printed(answer: CancelAnswer) -> Printed:
    """``:cancel``: what became of the run."""
    printed = Printed()
    printed.out(render_cancel(answer))
    return printed
