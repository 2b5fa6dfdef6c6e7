"""``LocalBackend``: the verbs' work done in this process (no ``--server``).

Jobs come from the workspace's ``scripts/`` and the sources registered in the data
dir; a run is planned here (:func:`flwd.plan.plan_request`), *before* the engine
starts, so a refused or malformed request neither creates the Core DB nor runs
recovery; then this process runs the engine and owns the run. Everything else
reads the Core DB through the Store port (``settings.open_store()``).

A run's Ctrl-C: the first press asks the run to cancel gracefully (TERM, grace,
KILL; journaled ``run.canceled``; exit 130), a second press kills at once. A run
of another flwd process is cancelled through its owner (see :meth:`LocalBackend.cancel`).
"""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING, Any

import trio

from flwd.engine import Engine, journal_refusal_sync, open_engine, recover, stream_events
from flwd.errors import FlwdError, UsageError
from flwd.events import RUN_FINISH, TERMINAL_STATUSES, EventRecord, RunRow, Trigger, now
from flwd.execute import prelaunch_keeper, process_alive, signal_owner
from flwd.jobs import Alias, Arg, Binding, Job, discovery_problems
from flwd.plan import Plan, Planning, PlanRequest, plan_request, uses_container
from flwd.policy import decisions_of, load_policy, resolve_profile
from flwd.schedule import fire_data
from flwd.settings import Settings
from flwd.store import POSTGRES_SCHEMES

from ._backend import (
    AliasRow,
    CancelAnswer,
    EventSink,
    JobListing,
    JobRow,
    RunListing,
    exit_status,
    next_fire_text,
)
from ._context import Context, load_workspace, resolve_job
from ._local_schedules import list_local, manual_fire, next_fires, pause_local
from ._run_index import discover_for_run, lookup

if TYPE_CHECKING:
    from flwd.kv import KvSpace
    from flwd.sources import SourceSpec
    from flwd.store import RunFilter


class LocalBackend:
    """The :class:`~flwd.cli._backend.Backend` of this process and its data dir.

    Settings are resolved by each verb when it starts, as each needs them (a
    ``scripts/`` directory only where jobs are read).
    """

    def __init__(self, context: Context) -> None:
        self.context = context

    async def aclose(self) -> None:
        """Nothing to release.

        **Cancellation:** no checkpoint.
        """

    def _settings(self, *, require_scripts: bool = True) -> Settings:
        return self.context.settings(require_scripts=require_scripts)

    # -- jobs ------------------------------------------------------------------
    async def list_jobs(self, *, report_problems: bool,
                        warnings: list[str] | None = None) -> JobListing:
        """The workspace's jobs and those of registered sources (``report_problems``: a
        source whose files are gone is said on stderr, or in ``warnings`` when given).

        **Cancellation:** no checkpoint.
        """
        from flwd.hooks import load_hooks  # only :jobs reports the hooks' problems

        settings = self._settings()
        catalog, aliases = load_workspace(settings, quiet=not report_problems,
                                          warnings=warnings)
        hooks = load_hooks(settings.scripts_root, settings.workspace, catalog, dev=None)
        fires = next_fires(settings, catalog)
        document = {
            "jobs": [{
                "id": job.id, "name": job.name,
                **({"summary": job.summary} if job.summary else {}),
                "path": job.rel_dir if job.source else (
                    job.rel_dir and f"{settings.scripts_root.name}/{job.rel_dir}"),
                "args": [arg.to_json() for arg in job.config.args],
                **({"source": job_source(job)} if job.source else {}),
                **({"next_fire": fires[job.id]} if job.id in fires else {}),
            } for job in catalog.jobs],
            **aliases.to_json(),
            **discovery_problems(catalog, aliases, hooks.issues),
        }
        return JobListing(
            jobs=[JobRow(job.id, job.name, job.summary or "(no summary)", job.source or None,
                         next_fire_text(fires.get(job.id)))
                  for job in catalog.jobs],
            aliases=[AliasRow(alias.name, alias.target_id, alias.description or "")
                     for alias in aliases.listing()],
            document=document, empty=f"(no jobs found under {settings.scripts_root})")

    async def find_job(self, tokens: Sequence[str]) -> LocalTarget:
        """The job (or alias) ``tokens`` name in the workspace or a source.

        **Cancellation:** no checkpoint.
        """
        settings = self._settings()
        found = lookup(settings, tokens)
        if found is None:
            catalog, aliases = discover_for_run(settings)
            found = resolve_job(catalog, tokens, settings, aliases)
        job, rest, alias = found
        return LocalTarget(settings, job, alias, rest)

    # -- runs ------------------------------------------------------------------
    async def list_runs(self, where: RunFilter, *, limit: int, every: bool) -> RunListing:
        """The runs of this workspace (``every``: of the whole data dir).

        **Cancellation:** no checkpoint.
        """
        settings = self._settings(require_scripts=False)
        store = settings.open_store()
        # The data dir is per user, the history is per workspace.
        workspace = None if every else settings.workspace_key
        runs: list[RunRow] = []
        if store.exists():
            recover(settings)
            runs = store.list_runs(replace(where, workspace=workspace), limit=limit)
        return RunListing(runs, [run.to_json() for run in runs],
                          empty=None if every else "(no runs yet in this workspace; "
                                                   "flwd :runs --all lists every workspace's)")

    async def show_events(self, run_ref: str, write: Callable[[list[EventRecord]], None], *,
                          follow: bool) -> str:
        """Replay the run from the journal; with ``follow``, poll it until the run ends
        (a run whose owner died is recovered, and so ends ``interrupted``).

        **Cancellation:** leaves nothing behind.
        """
        run, events = await self.open_events(run_ref, follow=follow)
        final = run.status
        async with aclosing(events):
            async for records in events:
                write(records)
                if records[-1].type == RUN_FINISH:
                    final = records[-1].data.get("status", final)
        return final

    async def open_events(self, run_ref: str, *, follow: bool
                          ) -> tuple[RunRow, AsyncGenerator[list[EventRecord], None]]:
        """The run ``run_ref`` names (``last``: this workspace's last run), and its events
        from the journal in batches (see :meth:`show_events`; the caller closes them).

        **Cancellation:** leaves nothing behind.
        """
        settings = self._settings(require_scripts=False)
        store = settings.open_store()
        if not store.exists():
            raise UsageError(f"no runs yet (no Core DB at {store.location})")
        await trio.to_thread.run_sync(recover, settings)
        run = await trio.to_thread.run_sync(
            partial(store.get_run, run_ref, workspace=settings.workspace_key))

        def owner_gone() -> None:
            if run.owner_pid and not process_alive(run.owner_pid, run.owner_start):
                recover(settings)

        return run, stream_events(store, run.id,
                                  follow=follow and run.status not in TERMINAL_STATUSES,
                                  on_idle=owner_gone)

    async def cancel(self, run_ref: str) -> CancelAnswer:
        """Cancel a run of another flwd process on this host, without an engine.

        A second engine would own nothing: the run's row says who owns it. A live
        CLI owner is sent SIGTERM, its graceful Ctrl-C path; a run of a live server
        can only be cancelled through that server (a server of a PostgreSQL Core DB,
        on any host, takes the request recorded there); a run whose owner died is
        marked ``interrupted`` and its processes reaped (``recover``). This is the
        logic of the engine's own cancel for a process that owns no runs.

        **Cancellation:** no checkpoint.
        """
        settings = self._settings(require_scripts=False)
        store = settings.open_store()
        if not store.exists():
            raise UsageError(f"no runs yet (no Core DB at {store.location})")
        # ``last`` is this workspace's last run, as for :logs.
        run = store.get_run(run_ref, workspace=settings.workspace_key)
        if run.status in TERMINAL_STATUSES:
            return CancelAnswer(run.id, "finished", run.status)
        host = socket.gethostname()
        replica = run.owner_kind in ("serve", "cluster") and settings.db is not None and \
            settings.db.startswith(POSTGRES_SCHEMES)
        # A cluster's run (queued, or leased by a replica) is always its replicas' to end.
        if replica and (run.owner_kind == "cluster" or run.owner_host not in (None, host) or (
                run.owner_pid and process_alive(run.owner_pid, run.owner_start)
                and not _serves(settings, run.owner_pid))):
            # A server of a PostgreSQL Core DB takes the requests recorded there
            # (flwd/engine/_listener.py), on this host or another.
            store.request_cancel(run.id, reason="canceled by request", by="cli", force=False)
            return CancelAnswer(run.id, "requested")
        if run.owner_host not in (None, host):
            raise UsageError(f"run {run.id} belongs to a flwd process on host {run.owner_host}",
                             hint="cancel it on that host")
        if run.owner_pid and process_alive(run.owner_pid, run.owner_start):
            if run.owner_kind != "cli":
                # The server of this data dir, through its socket (a thin client's run is
                # then cancelled by that client, as a CLI's run by its CLI).
                from flwd.thin import cancel_through_server

                answer = cancel_through_server(settings.data_dir, run.id, run.owner_pid)
                if answer is not None:
                    status = str(answer.get("status"))
                    return (CancelAnswer(run.id, "finished", status)
                            if status in TERMINAL_STATUSES else CancelAnswer(run.id, "requested"))
                raise UsageError(f"run {run.id} is live in a flwd server (pid {run.owner_pid})",
                                 hint=f"cancel it through the server: flwd --server URL :cancel "
                                      f"{run.id}")
            if signal_owner(run.owner_pid):
                return CancelAnswer(run.id, "requested")
            # It just exited: recovery below decides.
        recover(settings)
        run = store.get_run(run.id, workspace=settings.workspace_key)
        if run.status == "interrupted":
            return CancelAnswer(run.id, "recovered", run.status, owner_pid=run.owner_pid)
        return CancelAnswer(run.id, "finished", run.status)

    # -- sources ---------------------------------------------------------------
    # The source lifecycle (git, OCI images, the data dir's lock) is imported only
    # by the verbs that change sources: every other command starts without it.

    async def list_sources(self) -> list[dict[str, Any]]:
        """The sources registered in the data dir, each indexed.

        **Cancellation:** no checkpoint.
        """
        from ._local_sources import list_local

        return list_local(self._settings(require_scripts=False))

    async def add_source(self, body: Mapping[str, Any], spec: SourceSpec, *,
                         allow_paths: Sequence[str], git_hosts: Sequence[str]
                         ) -> tuple[dict[str, Any], bool]:
        """Materialise, index, then register a source (see :func:`add_local`).

        **Cancellation:** a new source is left unregistered, without files.
        """
        from ._local_sources import add_local

        settings = self._settings(require_scripts=False)
        words = [":sources", "add"]
        for key, value in body.items():
            words += [f"--{key.replace('_', '-')}"] if value is True else \
                [f"--{key.replace('_', '-')}", str(value)]
        return await add_local(settings, spec, allow_paths, git_hosts, command=words)

    async def refresh_source(self, name: str) -> dict[str, Any]:
        """Materialise a source again from its ref (see :func:`refresh_local`).

        **Cancellation:** the source is left as it was.
        """
        from ._local_sources import refresh_local

        return await refresh_local(self._settings(require_scripts=False), name)

    async def remove_source(self, name: str) -> str:
        """Unregister a source and delete its files (see :func:`remove_local`).

        **Cancellation:** no checkpoint.
        """
        from ._local_sources import remove_local

        return remove_local(self._settings(require_scripts=False), name).name

    # -- Rule-Y KV ---------------------------------------------------------------
    # The data dir's Core DB through the Store, in the namespaces FLWD_KV_NAMESPACES
    # allows (what the engine hands every host step; the reference's two otherwise).
    # No token: the data dir's owner may open its Core DB anyway.
    def _kv(self) -> KvSpace:
        from flwd.kv import KvNamespaces, KvSpace

        return KvSpace(self._settings(require_scripts=False).open_store(),
                       KvNamespaces.from_env(os.environ))

    async def kv_get(self, namespace: str, key: str) -> dict[str, Any]:
        """**Cancellation:** no checkpoint."""
        from flwd.kv import item_document

        return item_document(self._kv().get(namespace, key))

    async def kv_put(self, namespace: str, key: str, value: bytes) -> None:
        """**Cancellation:** no checkpoint."""
        self._kv().put(namespace, key, value)

    async def kv_delete(self, namespace: str, key: str) -> None:
        """**Cancellation:** no checkpoint."""
        self._kv().delete(namespace, key)

    # -- schedules -------------------------------------------------------------
    async def list_schedules(self) -> dict[str, Any]:
        """The schedules of the workspace's (and sources') jobs, with their state.

        **Cancellation:** no checkpoint.
        """
        return list_local(self._settings())

    async def pause_schedule(self, name: str, paused: bool) -> dict[str, Any]:
        """Pause or resume ``name`` in the Core DB.

        **Cancellation:** no checkpoint.
        """
        return pause_local(self._settings(), name, paused)

    async def trigger_schedule(self, name: str, output: EventSink) -> int:
        """Fire ``name`` now, in this process; the run's exit status.

        **Cancellation:** not expected; as ``LocalLaunch.run``.
        """
        settings = self._settings()
        job, binding, trigger, fire_at = manual_fire(settings, name)
        launch = await LocalTarget(settings, job, None, []).prepare_run(binding, None)
        return await launch.triggered(trigger, fire_at).run(output, detach=False)

    async def kv_list(self, namespace: str, *, prefix: str, cursor: str | None,
                      limit: int) -> dict[str, Any]:
        """**Cancellation:** no checkpoint."""
        from flwd.kv import decode_cursor

        space = self._kv()
        space.check(namespace)  # a forbidden namespace before a bad cursor
        after = decode_cursor(cursor) if cursor is not None else None
        return space.scan(namespace, prefix=prefix, cursor=after, limit=limit).document()


def job_source(job: Job) -> dict[str, str]:
    """The ``source`` block of a source's job in ``:jobs --json`` (as in ``GET /jobs``)."""
    return {"name": str(job.source), "type": str((job.origin or {}).get("type", "local"))}


@dataclass(frozen=True, slots=True)
class LocalTarget:
    """A job of the workspace or of a source, and the words after its name."""

    settings: Settings
    job: Job
    alias: Alias | None
    rest: list[str]

    @property
    def job_id(self) -> str:
        return self.job.id

    @property
    def words(self) -> list[str]:
        return [self.alias.name] if self.alias else list(self.job.words)

    @property
    def name(self) -> str:
        return self.job.name

    @property
    def summary(self) -> str | None:
        if self.alias is not None:
            return f"alias of {self.job.id}" + (
                f": {self.alias.description}" if self.alias.description else "")
        return self.job.summary

    def args(self) -> Sequence[Arg]:
        return self.job.config.args

    async def plan(self, binding: Binding, profile: str | None,
                   environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
        """The plan's document (``:plan``); a refusal is not journaled (nothing was asked
        to run). ``environ``: as for :meth:`plan_run`.

        **Cancellation:** no checkpoint.
        """
        return self._plan(binding, profile, journal_refusals=False, environ=environ).to_json()

    async def prepare_run(self, binding: Binding, profile: str | None) -> LocalLaunch:
        """The run's plan, checked runnable; the decisions of a refused request are
        journaled before the error propagates.

        **Cancellation:** no checkpoint.
        """
        return LocalLaunch(self.settings, self.plan_run(binding, profile))

    def plan_run(self, binding: Binding, profile: str | None,
                 environ: Mapping[str, str] = os.environ) -> Plan:
        """:meth:`prepare_run`'s plan, in plain blocking code; ``environ``: the environment
        of the command line (a thin client's, when a server plans it for that client).

        Raises:
            as :meth:`prepare_run`.
        """
        plan = self._plan(binding, profile, journal_refusals=True, environ=environ)
        plan.require_runnable()
        return plan

    def _plan(self, binding: Binding, requested: str | None, *, journal_refusals: bool,
              environ: Mapping[str, str] = os.environ) -> Plan:
        """:func:`flwd.plan.plan_request` with this host's policy bundle and container
        runtime (a container job fails fast, ``container.runtime.unavailable``, when
        there is none or it does not work: :func:`flwd.containers.require_runtime`,
        blocking for a fraction of a second, before anything else of the run exists)."""
        environment = environ.get("FLWD_PROFILE")
        # Resolved first, as its own error comes before any other of the request.
        profile = resolve_profile(requested=requested, requested_by="--profile",
                                  environment=environment)
        policy = load_policy(environ, self.settings.workspace)
        config = self.job.config
        runtime = None
        if uses_container(config.executor, config.interpreter):
            from flwd.containers import RUNTIME_MEMORY, require_runtime  # start-up: see above

            runtime = require_runtime(environ, memory=self.settings.data_dir / RUNTIME_MEMORY)
        request = PlanRequest(self.job.id, binding=binding, resolved=(self.job, self.alias),
                              profile=requested, profile_from="--profile")
        planning = Planning(self.settings.workspace, self.settings.scripts_root, policy, runtime,
                            environment_profile=environment)
        try:
            return plan_request(self.job, self.alias, request, planning)
        except FlwdError as exc:
            if journal_refusals and decisions_of(exc):
                journal_refusal_sync(self.settings.open_store(), self.job.id, profile,
                                     decisions_of(exc))
            raise


@dataclass(frozen=True, slots=True)
class LocalLaunch:
    """A planned run this process will own."""

    settings: Settings
    plan: Plan
    #: What started it when a schedule did (a manual fire), and when.
    trigger: Trigger | None = None
    fired_at: float = 0.0

    @property
    def prefix_steps(self) -> bool:
        return self.plan.composition == "steps"

    def triggered(self, trigger: Trigger, fired_at: float) -> LocalLaunch:
        """This launch, as the manual fire ``trigger`` of a schedule (journaled with it)."""
        return replace(self, trigger=trigger, fired_at=fired_at)

    async def _start(self, engine: Engine) -> RunRow:
        run = await engine.start_run(self.plan, trigger=self.trigger)
        if self.trigger is not None:
            name = str(self.trigger.detail.get("name"))
            await engine.journal_events([EventRecord(
                run_id="", job_id=run.job_id, type="schedule.fire", ts=now(),
                data=fire_data(name, self.fired_at, run.id, self.fired_at, run.created_at,
                               manual=True))])
            await trio.to_thread.run_sync(self._record_fire, name, run.id)
        return run

    def _record_fire(self, name: str, run_id: str) -> None:
        # The schedule's last fire; its watermark stays (its scheduled fires are owed).
        store, workspace = self.settings.open_store(), self.settings.workspace_key
        state = store.schedule_states(workspace).get(name)
        mark = state.watermark if state is not None and state.watermark else self.fired_at
        store.schedule_record(workspace, name, watermark=mark, fire_at=self.fired_at,
                              outcome="manual", run_id=run_id)

    async def run(self, output: EventSink, *, detach: bool) -> int:
        """Run the engine for this one run, streaming its events to ``output``.

        ``detach`` does not apply: this process owns the run.

        **Cancellation:** not expected; the engine's shutdown cancels the run (shielded).
        """
        status = "failed"
        finished = False
        caught: list[int] = []
        if any(step.container is None for step in self.plan.steps):
            # The keeper of host steps boots (a Python process) while the engine starts.
            prelaunch_keeper()
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with open_engine(self.settings) as engine:
                run = await self._start(engine)
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(_watch_signals, engine, run.id, signals, caught)
                    async with aclosing(engine.events(run.id)) as stream:
                        async for records in stream:
                            output.write(records)
                            if output.broken and not caught:
                                caught.append(signal.SIGPIPE)
                                await engine.cancel_run(run.id,
                                                        reason="output closed (broken pipe)",
                                                        by="cli")
                            if records[-1].type == RUN_FINISH:
                                status = records[-1].data.get("status", "failed")
                                finished = True
                    nursery.cancel_scope.cancel(reason="run finished")
                if not finished:
                    # The stream ended without run.finish: it could not be journaled.
                    cause = engine.storage_error
                    output.error(f"flwd: run {run.id} ended without a recorded result"
                                 + (f": {cause.one_line()}" if cause is not None else ""))
        return exit_status(status, canceled_by_sigterm=bool(caught) and caught[0] == signal.SIGTERM)


async def _watch_signals(engine: Engine, run_id: str, signals: AsyncIterator[int],
                         caught: list[int]) -> None:
    async for signum in signals:
        caught.append(signum)
        name = signal.Signals(signum).name
        force = len(caught) > 1
        reason = (f"killed by a second {name}" if force
                  else f"interrupted by {name}" + (" (Ctrl-C)" if signum == signal.SIGINT else ""))
        await engine.cancel_run(run_id, reason=reason, by="cli", force=force)


__all__ = ["LocalBackend", "LocalLaunch", "LocalTarget", "job_source"]


def _serves(settings: Settings, pid: int) -> bool:
    """``pid`` is the server of this data dir (which its local socket reaches)."""
    from flwd.daemon import read_owner

    owner = read_owner(settings.data_dir)
    return owner is not None and owner.pid == pid
