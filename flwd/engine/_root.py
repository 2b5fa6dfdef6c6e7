"""The root of the actor tree and the :class:`Engine` client the CLI and HTTP layer use.

::

    Root supervisor "flwd" (one_for_one)
    ├── journal    owns the Core DB writer thread; batches events; publishes to the hub
    ├── finisher   journals a failed run.finish for runs whose actor is gone without one
    ├── runs       dynamic supervisor; one TEMPORARY run actor per run
    └── commands   the root's inbox: StartRun, CancelRun (clients only send messages)

The event hub is a plain object owned by the root (publishing is a synchronous
``send_nowait`` fan-out done by the journal right after each commit), not an
actor: an extra hop would add latency and a queue to every batch for nothing.
"""

from __future__ import annotations

import hmac
import logging
import os
import signal
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import outcome
import trio

from actors import (
    Actor,
    ActorRef,
    ActorStopped,
    ChildSpec,
    DynamicSupervisor,
    ReplySlot,
    RestartPolicy,
    Supervisor,
)
from flwd import store
from flwd.containers import Runtime
from flwd.errors import (
    FlwdError,
    IdempotencyConflict,
    RecordUnstorable,
    RunOwnedElsewhere,
    SourceNotFound,
    StorageError,
)
from flwd.events import (
    RUN_FINISH,
    TERMINAL_STATUSES,
    EventRecord,
    IdempotencyRecord,
    RunRow,
    now,
)
from flwd.execute import owner_identity, process_alive
from flwd.ids import new_run_id
from flwd.jobs import Alias, AliasIndex, Catalog, Job
from flwd.plan import (
    Plan,
    Planning,
    PlanRequest,
    needs_thread,
    plan_request,
    request_profile,
    resolve_target,
)
from flwd.policy import Decision, PolicyContext, decisions_of
from flwd.settings import Settings
from flwd.sources import (
    Add,
    AllowList,
    Entry,
    OciContext,
    PinDigest,
    Refresh,
    Remove,
    Source,
    SourceBook,
    SourcesActor,
    SourcesConfig,
    SourcesMessage,
    SourceSpec,
    TreeLease,
    lease_checkout,
    merge,
)
from flwd.store import JournalItem, JournalSink, RetentionPolicy, Store

from ._catalog import CatalogCache
from ._decisions import decision_records
from ._finisher import Finisher, describe_crash, resync
from ._hub import EventHub
from ._journal import Append, JournalRef, run_journal
from ._recovery import recover
from ._retention import RetentionState, run_retention
from ._run import Cancel, RunActor, RunRef
from ._slots import Slots
from ._stream import stream_events

_log = logging.getLogger("flwd.engine")

#: How long an Idempotency-Key is remembered.
IDEMPOTENCY_TTL = 24 * 3600.0


@dataclass(frozen=True, slots=True)
class StartRun:
    plan: Plan
    #: (scoped Idempotency-Key, keyed digest of the canonical request body), if any.
    idempotency: tuple[str, str] | None
    #: The run, and whether it is a replay of an earlier request with the same key.
    reply: ReplySlot[tuple[RunRow, bool]]


@dataclass(frozen=True, slots=True)
class CancelRun:
    run_id: str
    reason: str
    by: str
    force: bool
    #: "requested" (the run is live and was asked to stop), or "not-live".
    reply: ReplySlot[str]


Command = StartRun | CancelRun


class _Commands(Actor[Command]):
    """The root's inbox: turns client requests into journal records and run actors."""

    name = "commands"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def handle(self, message: Command) -> None:
        if isinstance(message, StartRun):
            # Handled one at a time: the idempotency check and the insert that
            # follows cannot interleave with another request's.
            try:
                message.reply.reply(
                    await self.engine._start_run(message.plan, message.idempotency))
            except Exception as exc:
                message.reply.fail(exc)
        else:
            ref = self.engine._live.get(message.run_id)
            if ref is None:
                message.reply.reply("not-live")
                return
            try:
                await ref.cast(Cancel(message.reason, message.by, message.force))
            except ActorStopped:
                message.reply.reply("not-live")
            else:
                message.reply.reply("requested")


class Engine:
    """What a client holds: start and cancel runs, stream their events.

    Create it with :func:`open_engine`. Methods send messages to the root; the
    caller owns timeouts.
    """

    def __init__(self, settings: Settings, hub: EventHub, writer: JournalSink, *,
                 owner_kind: str = "cli", sources: AllowList | None = None,
                 oci: OciContext | None = None,
                 retention: RetentionPolicy | None = None,
                 max_concurrent_runs: int | None = None,
                 policy: PolicyContext | None = None, runtime: Runtime | None = None,
                 profile: str | None = None) -> None:
        self.settings = settings
        self.store: Store = settings.open_store()
        #: The policy bundle, container runtime and configured profile requests are planned with.
        self.policy = policy
        self.runtime = runtime
        self.profile = profile
        self.hub = hub
        self.writer = writer
        self.owner_kind = owner_kind
        self.catalog_cache = CatalogCache(settings.scripts_root, settings.workspace)
        self.runs = DynamicSupervisor("runs", on_child_exit=self._run_exited,
                                      max_restarts=1_000_000)
        self.finisher = Finisher(self.store, hub, lambda: self.supervisor.child("journal"))
        children: list[ChildSpec[Any]] = [
            ChildSpec("journal", self._run_journal, shutdown_timeout=60.0),
            # After the journal, before the runs: it stops after the last run
            # actor (finishing what they left) and before the journal.
            ChildSpec("finisher", self.finisher.run, shutdown_timeout=30.0),
            ChildSpec("runs", self.runs.run, shutdown_timeout=settings.grace + 10.0),
        ]
        self.source_book = SourceBook()
        self.sources_config: SourcesConfig | None = None
        if sources is not None:
            # A source whose actor keeps crashing is given up on, alone: the
            # supervisor's intensity is per child and escalation is logged.
            self.checkouts = DynamicSupervisor("checkouts", on_child_exit=_source_exited,
                                               max_restarts=5, max_seconds=60.0)
            self.sources_config = SourcesConfig(sources, settings.data_dir / "sources",
                                                self.store, oci=oci)
            config = self.sources_config
            children += [
                ChildSpec("checkouts", self.checkouts.run, shutdown_timeout=10.0),
                ChildSpec.for_actor("sources", lambda: SourcesActor(
                    self.source_book, config, self.checkouts)),
            ]
        # A long-lived engine schedules its runs: at most ``max_concurrent_runs``
        # at once, and each job's own ``concurrency``; a CLI engine runs one.
        self.slots = Slots(max_concurrent_runs) if owner_kind == "serve" else None
        self.retention: RetentionState | None = None
        if retention is not None and retention.active:
            self.retention = RetentionState(retention)
            children.append(ChildSpec("retention", partial(
                run_retention, self.retention, self.store, settings.runs_dir),
                shutdown_timeout=10.0))
        children.append(ChildSpec.for_actor("commands", lambda: _Commands(self)))
        self.supervisor = Supervisor("flwd", children)
        self._live: dict[str, RunRef] = {}
        #: Each live run's lease on the source tree it executes from (flwd.sources).
        self._leases: dict[str, TreeLease] = {}
        self._merged_key: tuple[int, int] | None = None
        self._merged: tuple[Catalog, AliasIndex] = (Catalog(), AliasIndex())
        self._accepting = True
        #: The last error of the Core DB writer (disk full…), for clients to report.
        self.storage_error: StorageError | None = None
        self._idempotency_key: bytes | None = None

    # -- client API ----------------------------------------------------------
    @property
    def _root(self) -> ActorRef[Command]:
        ref: ActorRef[Command] = self.supervisor.child_value("commands")
        return ref

    async def start_run(self, plan: Plan) -> RunRow:
        """Journal a new run of ``plan`` and start its actor; returns the run row.

        Raises:
            ActorStopped: the engine is shutting down.
        """
        run: RunRow
        run, _ = await self._root.call(lambda reply: StartRun(plan, None, reply))
        return run

    async def start_run_once(self, plan: Plan, key: str, body_digest: str
                             ) -> tuple[RunRow, bool]:
        """Like :meth:`start_run`, at most once per idempotency ``key`` (24 h).

        ``body_digest`` (:func:`flwd.store.body_digest`) is what is kept of the
        request: keyed, as the body may hold a secret. Returns the run and True
        when it is the earlier run of the same request.

        Raises:
            IdempotencyConflict: the key was used with a different body.
        """
        result: tuple[RunRow, bool] = await self._root.call(
            lambda reply: StartRun(plan, (key, body_digest), reply))
        return result

    # -- planning and submitting ---------------------------------------------------
    async def find_job(self, job_id: str, *, source: str | None = None
                       ) -> tuple[Job, Alias | None]:
        """The job ``job_id`` names: a job id, an alias, or (with ``source``) a job of
        that source.

        Raises:
            JobNotFound / SourceNotFound.

        Cancellation: nothing is left behind (it only reads).
        """
        if source is not None:
            source = self.source(source).source.name
        catalog, aliases = await self._merged_view()
        return resolve_target(catalog, aliases, PlanRequest(job_id, source=source))

    def _planning(self) -> Planning:
        settings = self.settings
        return Planning(workspace=settings.workspace, scripts_root=settings.scripts_root,
                        policy=self.policy, runtime=self.runtime,
                        environment_profile=os.environ.get("FLWD_PROFILE"),
                        configured_profile=self.profile)

    async def plan(self, request: PlanRequest, *, journal_refusals: bool = False) -> Plan:
        """Resolve, bind and plan ``request`` with this engine's policy (see ``plan_request``).

        With ``journal_refusals`` (a request to run, not a preview), the policy
        decisions of a refused request are journaled before the error propagates.

        Raises:
            JobNotFound / SourceNotFound / ArgumentError / a policy refusal.

        Cancellation: nothing is left behind; a plan being built in a thread (a
        container job's image verification) is abandoned, its result discarded.
        """
        if request.resolved is not None:
            job, alias = request.resolved
        else:
            job, alias = await self.find_job(request.job_id, source=request.source)
        planning = self._planning()
        build = partial(plan_request, job, alias, request, planning)
        try:
            if needs_thread(job):
                # In a thread: verifying an image signature runs cosign.
                return await trio.to_thread.run_sync(build)
            # A host job's plan is pure computation (plus reading a script's
            # first line, from the page cache): a thread hop would cost more.
            return build()
        except FlwdError as exc:
            if journal_refusals and decisions_of(exc):
                await self.journal_refusal(job.id, request_profile(request, planning),
                                           decisions_of(exc))
            raise

    async def submit(self, request: PlanRequest, *, idempotency: tuple[str, bytes] | None = None
                     ) -> tuple[RunRow, bool]:
        """Plan ``request`` and start a run of it; the run, and True for a replay.

        ``idempotency``: (the Idempotency-Key scoped to its caller, the canonical
        request body). The same key with the same body within 24 h answers the
        earlier run (True); with another body, IdempotencyConflict. Only a keyed
        digest of the body is kept (it may hold a secret).

        Raises:
            as :meth:`plan`; IdempotencyConflict; ActorStopped (shutting down).

        Cancellation: a caller cancelled before the root took the request leaves
        nothing; once the root has it, the run is created and started anyway (it
        is journaled, so ``GET /runs`` shows it) and only the answer is lost.
        """
        plan = await self.plan(request, journal_refusals=True)
        if idempotency is None:
            return await self.start_run(plan), False
        key, body = idempotency
        digest = await self._body_digest(body)
        return await self.start_run_once(plan, key, digest)

    async def _body_digest(self, canonical_body: bytes) -> str:
        # Keyed: the body may hold a secret, and the Core DB must not keep a
        # plain hash of it (see flwd/store/_idempotency.py).
        if self._idempotency_key is None:
            self._idempotency_key = await trio.to_thread.run_sync(
                store.install_key, self.settings.data_dir)
        return store.body_digest(self._idempotency_key, canonical_body)

    async def journal_refusal(self, job_id: str, profile: str,
                              decisions: Sequence[Decision]) -> None:
        """Journal (and publish) the decisions of a refused run request.

        Cancellation: the records may be journaled all the same (the journal
        commits what it was handed).
        """
        if not decisions:
            return
        journal: JournalRef = self.supervisor.child_value("journal")
        records = decision_records("", job_id, profile, decisions)
        await journal.call(lambda reply: Append(records, reply))

    # -- reading runs and the journal ---------------------------------------------
    async def list_runs(self, *, job_id: str | None = None, status: str | None = None,
                        workspace: str | None = None, limit: int = 50, offset: int = 0
                        ) -> tuple[list[RunRow], int]:
        """A page of runs, newest first, and how many match in all.

        Cancellation: nothing is left behind (a read under way finishes in its thread).
        """
        def read() -> tuple[list[RunRow], int]:
            return (self.store.list_runs(job_id=job_id, status=status, workspace=workspace,
                                         limit=limit, offset=offset),
                    self.store.count_runs(job_id=job_id, status=status, workspace=workspace))

        return await trio.to_thread.run_sync(read)

    async def last_seq(self, run_id: str | None = None) -> int:
        """The last event seq of the run (or of the whole journal).

        Cancellation: nothing is left behind.
        """
        if run_id is None:
            return await trio.to_thread.run_sync(self.store.last_seq)
        return (await trio.to_thread.run_sync(self.store.event_bounds, run_id))[1]

    async def cursor_expired(self, run_id: str | None, cursor: int) -> bool:
        """Retention has evicted the events after ``cursor`` (of the run, or of the journal).

        Cancellation: nothing is left behind.
        """
        def read() -> bool:
            if run_id is not None:
                return self.store.was_evicted(run_id)
            return cursor < self.store.evicted_through()

        return await trio.to_thread.run_sync(read)

    async def storage_health(self) -> dict[str, Any]:
        """What ``GET /health/storage`` reports: the Core DB's usage and retention's state.

        Cancellation: nothing is left behind.
        """
        usage = await trio.to_thread.run_sync(self.store.storage_usage)
        state = self.retention
        usage["retention"] = state.policy.to_json() if state else None
        if state is not None and state.last is not None:
            usage["last_gc"] = {k: v for k, v in state.last.to_json().items() if k != "evicted"}
        if state is not None and state.errors:
            usage["gc_errors"] = state.errors[-3:]
        return usage

    def has_backlog_after(self, run_id: str, after: int) -> bool:
        """The hub holds the run's events after ``after`` (its replay needs no read)."""
        return self.hub.has_backlog_after(run_id, after)

    async def catalog(self) -> Catalog:
        """The jobs of the scripts root and of every source (cached until one changes)."""
        return (await self._merged_view())[0]

    async def aliases(self) -> AliasIndex:
        """The aliases of every ``flwd.yaml``, checked against :meth:`catalog`."""
        return (await self._merged_view())[1]

    async def _merged_view(self) -> tuple[Catalog, AliasIndex]:
        local = await self.catalog_cache.get()
        key = (id(local), self.source_book.generation)
        if key != self._merged_key:
            cache = self.catalog_cache
            self._merged = merge(local, cache.alias_entries, cache.alias_issues,
                                 [entry.index for entry in self.source_book.listing()])
            self._merged_key = key
        return self._merged

    # -- sources ---------------------------------------------------------------
    @property
    def _sources(self) -> ActorRef[SourcesMessage]:
        if self.sources_config is None:
            raise SourceNotFound("this flwd process manages no sources",
                                 hint="sources live in 'flwd :serve'")
        ref: ActorRef[SourcesMessage] = self.supervisor.child_value("sources")
        return ref

    async def add_source(self, spec: SourceSpec) -> tuple[Source, bool]:
        """Register (or update) a source and wait for its checkout; True when it is new.

        Raises:
            SourceExists / SourceNotAllowed / SourceInvalid / SourceCheckoutFailed.
        """
        result: tuple[Source, bool] = await self._sources.call(lambda reply: Add(spec, reply))
        return result

    async def refresh_source(self, name: str) -> Source:
        source: Source = await self._sources.call(lambda reply: Refresh(name, reply))
        return source

    async def remove_source(self, name: str) -> Source:
        source: Source = await self._sources.call(lambda reply: Remove(name, reply))
        return source

    def sources(self) -> list[Entry]:
        """Every source with what it contributes (sorted by name)."""
        return self.source_book.listing()

    def source(self, name: str) -> Entry:
        entry = self.source_book.get(name)
        if entry is None:
            raise SourceNotFound(f"no source named {name!r}",
                                 hint="GET /sources lists them")
        return entry

    async def _record_digest(self, name: str, image: str, digest: str) -> None:
        """A run of an ``on-run`` add-on succeeded at ``digest``: the source pins it.

        A server tells its source actor (which re-indexes and saves); a CLI
        process writes the data dir's row itself.
        """
        if self.sources_config is not None:
            try:
                self._sources.cast_nowait(PinDigest(name, image, digest))
            except (trio.WouldBlock, ActorStopped):
                _log.warning("source %s: digest %s not recorded (busy)", name, digest)
            return
        from flwd.sources import record_digest

        await trio.to_thread.run_sync(record_digest, self.store, name, image, digest)

    async def get_run(self, run_ref: str) -> RunRow:
        """The run from the Core DB. Raises RunNotFound."""
        return await trio.to_thread.run_sync(self.store.get_run, run_ref)

    async def request_cancel(self, run_id: str, *, reason: str, by: str
                             ) -> tuple[str, RunRow]:
        """Cancel a run wherever it lives on this host.

        Returns ``("requested", run)`` when a live run was asked to stop, or
        ``("terminal", run)`` when it had already finished.

        A run of a CLI process is cancelled by sending that process SIGTERM
        (its graceful Ctrl-C path); a run whose owner died is marked
        ``interrupted`` first.

        Raises:
            RunNotFound: unknown run.
            RunOwnedElsewhere: the run is live in another server process.
        """
        run = await self.get_run(run_id)
        if run.status in TERMINAL_STATUSES:
            return "terminal", run
        if await self.cancel_run(run.id, reason=reason, by=by) == "requested":
            return "requested", run
        if run.owner_pid and process_alive(run.owner_pid, run.owner_start):
            if run.owner_kind == "cli":
                os.kill(run.owner_pid, signal.SIGTERM)
                return "requested", run
            raise RunOwnedElsewhere(
                f"run {run.id} is live in another flwd server (pid {run.owner_pid})",
                hint="send the cancel to that server")
        await trio.to_thread.run_sync(recover, self.settings)
        return "terminal", await self.get_run(run.id)
    async def cancel_run(self, run_id: str, *, reason: str, by: str, force: bool = False) -> str:
        """Ask a live run to stop; ``"requested"`` or ``"not-live"`` (finished or elsewhere)."""
        return await self._root.call(
            lambda reply: CancelRun(run_id, reason, by, force, reply))

    def is_live(self, run_id: str) -> bool:
        """The run belongs to this process and its ``run.finish`` is not yet published."""
        return (run_id in self._live or self.hub.tracking(run_id)
                or self.finisher.owns(run_id))

    def events(self, run_id: str | None, *, after: int = 0, follow: bool = True,
               heartbeat: float | None = None) -> AsyncGenerator[list[EventRecord], None]:
        """The run's events (or all events) in order, replayed then live; see ``stream_events``.

        Runs of this process (and the global stream) are followed through the
        hub; runs of other processes by polling the journal.
        """
        live = run_id is None or self.is_live(run_id)
        return stream_events(self.store, run_id, after=after,
                             hub=self.hub if live else None, follow=follow,
                             heartbeat=heartbeat)

    # -- inside the root -----------------------------------------------------
    async def _start_run(self, plan: Plan, idempotency: tuple[str, str] | None
                         ) -> tuple[RunRow, bool]:
        if not self._accepting:
            raise ActorStopped("commands", "is shutting down")
        plan.require_runnable()
        journal: JournalRef = self.supervisor.child_value("journal")
        if idempotency is not None:
            earlier = await trio.to_thread.run_sync(self._find_idempotent, idempotency[0])
            if earlier is not None:
                stored, run_id = earlier
                if not hmac.compare_digest(stored, idempotency[1]):
                    # No digest in the problem: they are keyed, and mean nothing to a client.
                    raise IdempotencyConflict(
                        "this Idempotency-Key was already used with a different request body",
                        hint="use a new key for a new request")
                return await self.get_run(run_id), True
        pid, start_time, host = owner_identity()
        run = RunRow(id=new_run_id(), job_id=plan.job.id, status="queued", created_at=now(),
                     profile=plan.profile, args=plan.binding.redacted(), plan=plan.to_json(),
                     provenance=plan.provenance(), owner_pid=pid, owner_start=start_time,
                     owner_host=host, owner_kind=self.owner_kind,
                     workspace=self.settings.workspace_key)
        # Before anything is journaled: a tree deleted since the plan was made
        # is a clear error, and no flwd process deletes it while the run lives.
        await self._lease_tree(run.id, plan)
        items: list[JournalItem] = [run]
        if idempotency is not None:
            items.append(IdempotencyRecord(idempotency[0], idempotency[1], run.id, run.created_at))
        try:
            await journal.call(lambda reply: Append(items, reply))
        except RecordUnstorable:
            self._release_tree(run.id)
            raise  # nothing of it was kept
        except Exception as exc:
            self._release_tree(run.id)
            # The journal crashed: the run row may have been committed all the
            # same. The finisher checks, and finishes it if it was.
            self.finisher.own(run.id, run.job_id)
            self.finisher.orphan(run.id, f"the journal failed while the run was created: "
                                         f"{describe_crash(exc)}")
            raise
        self.finisher.own(run.id, run.job_id)
        # Before the run's first event: late subscribers replay it from memory.
        self.hub.track(run.id)
        actor = RunActor(run.id, plan, journal, runs_dir=self.settings.runs_dir,
                         grace=self.settings.grace, on_digest=self._record_digest,
                         slots=self.slots)
        try:
            ref: RunRef = await self.runs.start_child(ChildSpec(
                run.id, actor.run, restart=RestartPolicy.TEMPORARY,
                shutdown_timeout=self.settings.grace + 5.0,
                stop=lambda ref: _cancel_nowait(ref, "flwd is shutting down", "shutdown"),
            ))
        except BaseException as exc:
            self._release_tree(run.id)
            self.hub.untrack(run.id)
            self.finisher.actor_exited(run.id, exc)
            raise
        self._live[run.id] = ref
        return run, False

    async def _lease_tree(self, run_id: str, plan: Plan) -> None:
        """Lease the source tree a run of ``plan`` executes from (a workspace job or a
        local source's folder has none to lease).

        Raises:
            SourceCheckoutFailed: the tree is gone (a refresh or remove deleted it).
        """
        if plan.job.roots is None:
            return
        lease = await trio.to_thread.run_sync(
            lease_checkout, self.settings.data_dir / "sources", plan.job.roots[0])
        if lease is not None:
            self._leases[run_id] = lease

    def _release_tree(self, run_id: str) -> None:
        lease = self._leases.pop(run_id, None)
        if lease is not None:
            lease.release()

    def _find_idempotent(self, key: str) -> tuple[str, str] | None:
        return self.store.find_idempotent(key, newer_than=now() - IDEMPOTENCY_TTL)

    def _run_exited(self, name: str, result: outcome.Outcome[None]) -> None:
        self._live.pop(name, None)
        self._release_tree(name)
        crash = result.error if isinstance(result, outcome.Error) else None
        if crash is not None:
            # It may have ended without run.finish: stop keeping its backlog.
            self.hub.untrack(name)
            _log.error("run %s crashed: %r", name, crash)
        self.finisher.actor_exited(name, crash)

    async def _run_journal(
            self, *, task_status: trio.TaskStatus[JournalRef] = trio.TASK_STATUS_IGNORED) -> None:
        """One incarnation of the journal actor (see :func:`run_journal`).

        A crash fails every run it leaves behind (:meth:`_journal_crashed`)
        before the supervisor restarts it.

        Cancellation: as :func:`run_journal`.
        """
        try:
            await run_journal(self.writer, self.hub, on_storage_error=self._journal_failed,
                              on_refused=self._record_refused, task_status=task_status)
        except Exception as exc:
            self._journal_crashed(exc)
            raise

    def _journal_crashed(self, error: Exception) -> None:
        """The journal actor crashed: every run it served ends ``failed``, naming the crash.

        Records in flight are lost, so no run can go on as if its events were
        journaled; and the refs the live runs hold point at the dead
        incarnation. Live runs are stopped (TERM → grace → KILL) — their actors
        then exit without a run.finish — and the finisher journals one for each
        as soon as the journal is back. Subscribers catch up from the journal:
        the crash may have come between a commit and its publication.
        """
        cause = (f"the journal crashed ({describe_crash(error)}); the run was stopped "
                 "and may miss events")
        resync(self.hub)
        for run_id in list(self.finisher.owned):
            ref = self._live.get(run_id)
            if ref is None:
                self.finisher.orphan(run_id, cause, override=True)
            else:
                self.finisher.stopping(run_id, cause)
                _cancel_nowait(ref, cause, "journal", failure=True)

    def _record_refused(self, error: RecordUnstorable, items: Sequence[JournalItem]) -> None:
        """The journal refused a record (poison-record isolation): fail the run it belongs to.

        Only that run: it is stopped (TERM → grace → KILL) and finishes
        ``failed`` with the refusal as its error. A refused run row is the
        caller's (``start_run`` raises it).
        """
        _log.warning("flwd: %s", error.one_line())
        for run_id in dict.fromkeys(item.run_id for item in items
                                    if isinstance(item, EventRecord)):
            ref = self._live.get(run_id)
            if ref is not None:
                _cancel_nowait(ref, error.detail, "journal", failure=True)

    def _journal_failed(self, error: StorageError, lost: list[EventRecord]) -> None:
        """The journal could not keep ``lost`` (disk full…): fail the runs concerned.

        A run whose events cannot be journaled must not go on as if they were:
        it is stopped (TERM → grace → KILL) and finishes ``failed`` with the
        storage error. A run whose ``run.finish`` itself was lost would leave its
        subscribers waiting forever, so their streams are ended (the CLI then
        reports :attr:`storage_error`); the finisher tries once more to journal
        one, naming the storage error.
        """
        if self.storage_error is None:
            _log.error("flwd: %s", error.one_line())
        self.storage_error = error
        reason = f"storage error: {error.one_line()}"
        for run_id in dict.fromkeys(record.run_id for record in lost):
            ref = self._live.get(run_id)
            if ref is not None:
                self.finisher.stopping(run_id, reason)
                _cancel_nowait(ref, reason, "journal", failure=True)
        for record in lost:
            if record.type == RUN_FINISH:
                self.finisher.orphan(record.run_id, reason, override=True)
                self.hub.untrack(record.run_id)
                for subscription in list(self.hub.by_run.get(record.run_id, ())):
                    subscription.send.close()

    async def _shutdown(self) -> None:
        """Cancel every live run (they finish within the grace), then stop the tree in order."""
        self._accepting = False
        for ref in list(self._live.values()):
            _cancel_nowait(ref, "flwd is shutting down", "shutdown")
        await self.supervisor.aclose()
        self.hub.close()


def _cancel_nowait(ref: RunRef, reason: str, by: str, *, failure: bool = False) -> None:
    try:
        ref.cast_nowait(Cancel(reason, by, failure=failure))
    except (trio.WouldBlock, ActorStopped):
        pass


def _source_exited(name: str, result: outcome.Outcome[None]) -> None:
    if isinstance(result, outcome.Error):
        _log.error("%s crashed: %r", name, result.error)


@asynccontextmanager
async def open_engine(settings: Settings, *, owner_kind: str = "cli",
                      sources: AllowList | None = None,
                      oci: OciContext | None = None,
                      retention: RetentionPolicy | None = None,
                      max_concurrent_runs: int | None = None,
                      policy: PolicyContext | None = None, runtime: Runtime | None = None,
                      profile: str | None = None) -> AsyncIterator[Engine]:
    """Run the actor tree for the duration of the block.

    ``sources``: the allow-list of a process that manages sources (serve);
    ``oci``: the runtime, policy and profile oci sources are added with.

    On entry, runs left unfinished by dead processes are marked ``interrupted``.
    On exit, live runs are cancelled (TERM → grace → KILL), then the tree stops
    in reverse order and the journal is flushed last.

    Cancellation: if the block is cancelled, the shutdown still runs shielded
    (bounded by the grace period plus a few seconds).
    """
    await trio.to_thread.run_sync(recover, settings)
    engine_store = settings.open_store()
    writer = engine_store.open_journal()
    await trio.to_thread.run_sync(writer.start)
    hub = EventHub()
    engine = Engine(settings, hub, writer, owner_kind=owner_kind, sources=sources, oci=oci,
                    retention=retention, max_concurrent_runs=max_concurrent_runs,
                    policy=policy, runtime=runtime, profile=profile)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(engine.supervisor.run)
            try:
                yield engine
            finally:
                with trio.CancelScope(shield=True):
                    await engine._shutdown()
    finally:
        hub.close()
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(writer.close)

