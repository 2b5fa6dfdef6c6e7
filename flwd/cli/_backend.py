"""The seam between the CLI's verbs and where their work is done.

A verb (``flwd JOB``, ``:plan``, ``:jobs``, ``:runs``, ``:logs``, ``:cancel``,
``:sources …``) is written once against :class:`Backend`: it parses its words,
asks the backend, and renders the answer (:mod:`flwd.cli._render`). Two backends
implement it:

- ``LocalBackend`` (:mod:`flwd.cli._local`): this process is the engine; it reads
  the workspace and the data dir, and reaches the Core DB through the Store port;
- ``RemoteBackend`` (:mod:`flwd.cli._remote`): a running ``flwd :serve`` does the
  work, over its HTTP API.

:func:`flwd.cli._mode.open_backend` picks one (``--server`` / ``FLWD_SERVER``).
A backend answers in the same shapes either way, so both modes print the same
bytes and exit with the same statuses.

A backend's methods block where the verb they serve blocked before it had a
backend: a CLI verb runs nothing else meanwhile, and a Ctrl-C raises
``KeyboardInterrupt`` where it lands, as in plain code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from flwd.errors import SourceNotFound
from flwd.events import EventRecord, RunRow
from flwd.jobs import Arg, Binding

# The exit statuses are flwd.output's (the thin client's renderer computes them too).
from flwd.output import EXIT_FAILED as EXIT_FAILED
from flwd.output import EXIT_OK as EXIT_OK
from flwd.output import EXIT_SIGINT as EXIT_SIGINT
from flwd.output import EXIT_SIGTERM as EXIT_SIGTERM
from flwd.output import EXIT_USAGE as EXIT_USAGE
from flwd.output import exit_status as exit_status

if TYPE_CHECKING:
    from flwd.sources import SourceSpec
    from flwd.store import RunFilter



def source_not_found(name: str) -> SourceNotFound:
    """The error for a source name nothing is registered under (in both modes)."""
    return SourceNotFound(f"no source named {name!r}", hint="'flwd :sources list' lists them")


# -- answers -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JobRow:
    """One line of the ``:jobs`` table."""

    id: str
    name: str
    summary: str
    #: The source the job comes from; None for a job of the workspace.
    source: str | None = None
    #: When its schedules fire it next (on the schedule's zone's clock, zone named).
    next_fire: str | None = None


@dataclass(frozen=True, slots=True)
class AliasRow:
    """One line of the ``:jobs`` alias table."""

    name: str
    target_id: str
    description: str = ""


def next_fire_text(document: Any) -> str | None:
    """A ``next_fire`` of ``GET /jobs`` as ``:jobs`` shows it: ``2027-05-04 02:30:00
    +02:00 Europe/Berlin``."""
    if not isinstance(document, dict) or not isinstance(document.get("at"), str):
        return None
    at = document["at"]
    return f"{at[:10]} {at[11:19]} {at[19:]} {document.get('timezone', '')}".strip()


@dataclass(frozen=True, slots=True)
class JobListing:
    """What ``:jobs`` shows: the table rows, the ``--json`` document, and what to say
    when there is no job."""

    jobs: list[JobRow]
    aliases: list[AliasRow]
    document: dict[str, Any]
    empty: str


@dataclass(frozen=True, slots=True)
class RunListing:
    """What ``:runs`` shows: the runs (newest first), each as ``--json`` prints it, and
    what to say when there is none (None: the renderer's default)."""

    runs: list[RunRow]
    documents: list[dict[str, Any]]
    empty: str | None = None


@dataclass(frozen=True, slots=True)
class CancelAnswer:
    """What became of ``:cancel RUN``.

    ``requested``: the run's owner was asked to cancel it; ``finished``: the run had
    already ended with ``status``; ``recovered``: its owner (pid ``owner_pid``) had
    exited, and the run was marked ``interrupted`` now.
    """

    run_id: str
    outcome: Literal["requested", "finished", "recovered"]
    status: str = ""
    owner_pid: int | None = None


# -- the seam --------------------------------------------------------------------


class EventSink(Protocol):
    """Where a run's events go as they arrive (:class:`flwd.cli._render.RunOutput`)."""

    @property
    def as_json(self) -> bool: ...

    @property
    def broken(self) -> bool:
        """The output was closed (a broken pipe): the run is to be cancelled."""

    @property
    def canceled_by_sigterm(self) -> bool:
        """The run it showed was canceled by SIGTERM (exit 143, not 130)."""

    def write(self, records: list[EventRecord]) -> None: ...

    def error(self, text: str) -> None:
        """One line on stderr, whatever the output mode."""


class Launch(Protocol):
    """A run planned and accepted, ready to start."""

    @property
    def prefix_steps(self) -> bool:
        """Its output lines carry their step (``[build] …``): a ``composition: steps`` job."""

    async def run(self, output: EventSink, *, detach: bool) -> int:
        """Start the run, stream its events to ``output`` until it ends; its exit status.

        Ctrl-C (SIGINT) and SIGTERM cancel the run; a second one stops at once.

        **Cancellation:** not expected (the verb owns the process); the run goes on
        being cancelled by the engine that owns it.
        """


class JobTarget(Protocol):
    """The job a command line names, as its backend resolved it."""

    @property
    def job_id(self) -> str: ...

    @property
    def rest(self) -> list[str]:
        """The words after the job's name: its flags and flwd's common flags."""

    @property
    def words(self) -> list[str]:
        """The words that name it (an alias's name, when reached through one)."""

    @property
    def name(self) -> str: ...

    @property
    def summary(self) -> str | None: ...

    def args(self) -> Sequence[Arg]:
        """Its argspec.

        Raises:
            ServerUnreachable: the server's argspec cannot be used by this flwd.
        """

    async def plan(self, binding: Binding, profile: str | None) -> dict[str, Any]:
        """A preview of the run (``:plan``; the plan's JSON document). Journals nothing.

        **Cancellation:** leaves nothing behind.
        """

    async def prepare_run(self, binding: Binding, profile: str | None) -> Launch:
        """Plan the run; a request the policy refuses is journaled, then raised.

        **Cancellation:** leaves nothing behind but a journaled refusal.
        """


class Backend(Protocol):
    """What the CLI's verbs ask of flwd, in this process or of a server.

    Every method may raise the :class:`~flwd.errors.FlwdError` the verb shows
    (a usage error, an unknown run, an unreachable server…).
    """

    async def aclose(self) -> None:
        """Release what the backend holds (a server connection).

        **Cancellation:** shielded: closes anyway.
        """

    # -- jobs ------------------------------------------------------------------
    async def list_jobs(self, *, report_problems: bool) -> JobListing:
        """The jobs and aliases, and what is wrong with the others (``document``: the
        ``--json`` of ``:jobs``, from which its stderr lines are made); with
        ``report_problems``, what only this backend knows goes to stderr as it is met
        (a local source whose files are gone).

        **Cancellation:** leaves nothing behind.
        """

    async def find_job(self, tokens: Sequence[str]) -> JobTarget:
        """The job the leading words of ``tokens`` name (directly or through an alias).

        **Cancellation:** leaves nothing behind.
        """

    # -- runs ------------------------------------------------------------------
    async def list_runs(self, where: RunFilter, *, limit: int, every: bool) -> RunListing:
        """Recent runs ``where`` selects, newest first (``every``: of every workspace of the
        data dir; a local backend sets ``where.workspace`` itself).

        **Cancellation:** leaves nothing behind (runs of dead processes may have been
        marked ``interrupted``).
        """

    async def show_events(self, run_ref: str, write: Callable[[list[EventRecord]], None], *,
                          follow: bool) -> str:
        """Write a run's journaled events (with ``follow``, until it ends); its last status.

        **Cancellation:** leaves nothing behind.
        """

    async def cancel(self, run_ref: str) -> CancelAnswer:
        """Ask the owner of a run to cancel it.

        **Cancellation:** the request may have reached the owner, which goes on.
        """

    # -- sources ---------------------------------------------------------------
    async def list_sources(self) -> list[dict[str, Any]]:
        """The documents of the registered sources (as ``GET /sources``).

        **Cancellation:** leaves nothing behind.
        """

    async def add_source(self, body: Mapping[str, Any], spec: SourceSpec, *,
                         allow_paths: Sequence[str], git_hosts: Sequence[str]
                         ) -> tuple[dict[str, Any], bool]:
        """Register (or update) a source; its document, and True when it is new.

        ``body`` is the request as ``POST /sources`` takes it, ``spec`` the same
        checked; ``allow_paths`` and ``git_hosts`` widen a local allow-list.

        **Cancellation:** a new source is left unregistered, without files.
        """

    async def refresh_source(self, name: str) -> dict[str, Any]:
        """Resolve a source's ref again and re-index it; its new document.

        **Cancellation:** the source is left as it was, unless the change had reached
        the server, which goes on.
        """

    async def remove_source(self, name: str) -> str:
        """Unregister a source; the name it was registered under.

        **Cancellation:** the change may have been made.
        """

    # -- Rule-Y KV ---------------------------------------------------------------
    # Answers are the API's documents: an entry is {key, value (base64), timestamp};
    # a page is {items, nextCursor?}.
    async def kv_get(self, namespace: str, key: str) -> dict[str, Any]:
        """The entry under ``key`` (KvKeyNotFound when there is none).

        **Cancellation:** leaves nothing behind.
        """

    async def kv_put(self, namespace: str, key: str, value: bytes) -> None:
        """Store ``value`` under ``key``.

        **Cancellation:** the value may have been stored.
        """

    async def kv_delete(self, namespace: str, key: str) -> None:
        """Remove ``key`` (KvKeyNotFound when there is none).

        **Cancellation:** the key may have been removed.
        """

    async def kv_list(self, namespace: str, *, prefix: str, cursor: str | None,
                      limit: int) -> dict[str, Any]:
        """One page of entries whose key starts with ``prefix``, after the base64
        ``cursor`` (the ``nextCursor`` of the page before).

        **Cancellation:** leaves nothing behind.
        """

    async def list_schedules(self) -> dict[str, Any]:
        """``GET /schedules``'s document: ``{timezone, schedules, errors}``.

        **Cancellation:** leaves nothing behind.
        """

    async def pause_schedule(self, name: str, paused: bool) -> dict[str, Any]:
        """Pause (or resume) the schedule ``name``; its document after.

        **Cancellation:** the change may have been made.
        """

    async def trigger_schedule(self, name: str, output: EventSink) -> int:
        """Fire ``name`` now, by hand; stream the run's events to ``output``; the run's
        exit status (as :func:`exit_status`).

        **Cancellation:** the run may have been started.
        """
