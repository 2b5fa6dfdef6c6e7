"""The :class:`Engine` façade: what HTTP handlers, CLI verbs (and later the UI and the
scheduler) hold to plan, start, cancel and follow runs, read history and manage sources.

It owns no state of the actor tree: it sends messages to the root's ``commands``
actor (:mod:`flwd.engine._root`), reads through the :class:`~flwd.store.Store`
port, and follows runs through the hub. Every request to run goes through one
path — :meth:`Engine.submit` → :func:`flwd.plan.plan_request` → ``StartRun`` —
whoever the client is.
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import TYPE_CHECKING, Any

import trio

from actors import ActorStopped, ChildNotFound
from flwd import store
from flwd.errors import (
    FlwdError,
    JobNotFound,
    RunOwnedElsewhere,
    ScheduleNotFound,
    SourceNotFound,
    StorageError,
)
from flwd.events import TERMINAL_STATUSES, EventRecord, RunRow, Trigger, now
from flwd.execute import owner_identity, process_alive, signal_owner
from flwd.jobs import Alias, AliasIndex, Catalog, Job
from flwd.kv import KvNamespaces, KvPage, KvSpace
from flwd.notify import RunLinks
from flwd.observe import UNOBSERVED, Observer
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
from flwd.schedule import Schedule, ScheduleBook
from flwd.settings import Settings
from flwd.store import KvItem, RetentionPolicy, ScheduleState

from ._cluster import ClusterSettings
from ._decisions import decision_records
from ._hub import EventHub
from ._journal import Append, JournalRef
from ._leader import LeaderLease, lease_ttl
from ._recovery import recover
from ._retention import storage_health
from ._root import CancelRun, Root, StartRun
from ._schedule_host import EngineHost
from ._scheduler import FireNow, Poke, Scheduler, SchedulerRef, WallClock
from ._stream import stream_events

if TYPE_CHECKING:
    # Start-up: a CLI run loads neither the container executor nor the sources.
    from flwd.containers import Runtime
    from flwd.sources import AllowList, Entry, OciContext, Source, SourceSpec


class Engine:
    """What a client holds: plan, start and cancel runs, stream their events, read
    history, manage sources.

    Create it with :func:`open_engine`. Methods send messages to the root or read
    the Store; the caller owns timeouts.
    """

    def __init__(self, root: Root, *, policy: PolicyContext | None = None,
                 runtime: Runtime | None = None, profile: str | None = None) -> None:
        self.root = root
        self.settings: Settings = root.settings
        self.store = root.store
        self.hub: EventHub = root.hub
        #: The policy bundle, container runtime and configured profile requests are planned with.
        self.policy = policy
        self.runtime = runtime
        self.profile = profile
        self._idempotency_key: bytes | None = None
        #: The Rule-Y KV of the Core DB, in the namespaces this engine allows.
        self.kv = KvSpace(self.store, root.kv_namespaces)
        #: The scheduler's leader lease on a shared Core DB (its current incarnation's).
        self.scheduler_lease: LeaderLease | None = None

    @property
    def replica(self) -> tuple[str, tuple[str, ...]] | None:
        """(this replica's id, its labels) in a cluster; None outside one."""
        cluster = self.root.cluster
        return None if cluster is None else (cluster.replica_id, cluster.settings.labels)

    @property
    def scheduler_leading(self) -> bool | None:
        """Whether this server's scheduler holds its workspace's leader lease now (it fires
        the schedules); None without a lease (not a cluster, or no schedule). Call it in
        trio's thread."""
        lease = self.scheduler_lease
        return None if lease is None else lease.leading

    def cluster_load(self) -> tuple[int, int]:
        """(runs executing in this process, runs waiting here for a slot)."""
        return self.root.cluster_load()

    async def cluster_view(self) -> dict[str, Any]:
        """What ``GET /cluster`` answers: this replica and every other one that heartbeated
        within a day (their labels, heartbeat age, running counts); outside a cluster,
        ``mode: single`` and no replicas.

        Raises:
            StorageError: the Core DB cannot be read.

        Cancellation: nothing is left behind (the read is abandoned in its thread).
        """
        cluster = self.root.cluster
        if cluster is None:
            return {"mode": "single", "replica_id": None, "replicas": []}
        listed = await cluster.replicas()
        lease = cluster.timing.lease
        return {"mode": "cluster", "replica_id": cluster.replica_id,
                "heartbeat_seconds": cluster.timing.heartbeat, "lease_seconds": lease,
                "replicas": [{**item.to_json(), "alive": item.stopped_at is None
                              and item.heartbeat_age < lease} for item in listed]}

    @property
    def storage_error(self) -> StorageError | None:
        """The last error of the Core DB writer (disk full…), for clients to report."""
        return self.root.storage_error

    async def start_run(self, plan: Plan, *, trigger: Trigger | None = None) -> RunRow:
        """Journal a new run of ``plan`` and start its actor; returns the run row.

        ``trigger``: what started it (a schedule's fire, a webhook's delivery); the
        Core DB keeps one run per trigger key at most.

        Raises:
            ActorStopped: the engine is shutting down.
            TriggerAlreadyFired: a run of ``trigger``'s key exists (nothing was started).

        Cancellation: a caller cancelled before the root took the message leaves
        nothing; once the root has it, the run is journaled and started all the
        same (``GET /runs`` and ``flwd :runs`` show it; cancel it by its id) and
        only the answer is lost.
        """
        run: RunRow
        run, _ = await self.root.commands.call(lambda reply: StartRun(plan, None, trigger, reply))
        return run

    async def start_run_once(self, plan: Plan, key: str, body_digest: str
                             ) -> tuple[RunRow, bool]:
        """Like :meth:`start_run`, at most once per idempotency ``key`` (24 h).

        ``body_digest`` (:func:`flwd.store.body_digest`) is what is kept of the
        request: keyed, as the body may hold a secret. Returns the run and True
        when it is the earlier run of the same request.

        Raises:
            IdempotencyConflict: the key was used with a different body.

        Cancellation: as :meth:`start_run`; the key is recorded with the run, so a
        retry of the same request answers that run.
        """
        result: tuple[RunRow, bool] = await self.root.commands.call(
            lambda reply: StartRun(plan, (key, body_digest), None, reply))
        return result

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
        arrived = trio.current_time()
        target = PlanRequest(job_id, source=source)
        catalog, aliases = await self.root.catalog_view()
        try:
            return resolve_target(catalog, aliases, target)
        except JobNotFound:
            # The cached catalog may predate a job written just before this request
            # (checks are shared for a second): look again, from a check begun since.
            catalog, aliases = await self.root.catalog_view(fresh_since=arrived)
            return resolve_target(catalog, aliases, target)

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

    async def submit(self, request: PlanRequest, *, idempotency: tuple[str, bytes] | None = None,
                     trigger: Trigger | None = None) -> tuple[RunRow, bool]:
        """Plan ``request`` and start a run of it; the run, and True for a replay.

        ``idempotency``: (the Idempotency-Key scoped to its caller, the canonical
        request body). The same key with the same body within 24 h answers the
        earlier run (True); with another body, IdempotencyConflict. Only a keyed
        digest of the body is kept (it may hold a secret). ``trigger``: what started
        it if not a person (not with ``idempotency``; see :meth:`start_run`).

        Raises:
            as :meth:`plan`; IdempotencyConflict; TriggerAlreadyFired; ActorStopped
            (shutting down).

        Cancellation: a caller cancelled before the root took the request leaves
        nothing; once the root has it, the run is created and started anyway (it
        is journaled, so ``GET /runs`` shows it) and only the answer is lost.
        """
        plan = await self.plan(request, journal_refusals=True)
        if idempotency is None:
            return await self.start_run(plan, trigger=trigger), False
        if trigger is not None:
            raise ValueError("a run has an idempotency key or a trigger, not both")
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
        journal: JournalRef = self.root.supervisor.child_value("journal")
        records = decision_records("", job_id, profile, decisions)
        await journal.call(lambda reply: Append(records, reply))

    @property
    def observer(self) -> Observer:
        """What this engine's measurements are told to (metrics; a no-op without)."""
        return self.root.observer

    async def claim_delivery(self, hook: str, delivery: str, *, window: float, keep: int,
                             stale: float) -> store.DeliveryClaim:
        """Record that ``hook`` received ``delivery`` unless it did (see
        ``Store.hook_delivery_claim``).

        Raises:
            StorageError: the Core DB cannot be written.

        Cancellation: the claim may be recorded all the same (it finishes in its
        thread); a claim that never gets its run is taken over after ``stale``.
        """
        return await trio.to_thread.run_sync(partial(
            self.store.hook_delivery_claim, hook, delivery, window=window, keep=keep,
            stale=stale))

    async def settle_delivery(self, hook: str, delivery: str, run_id: str | None) -> None:
        """The claimed delivery started ``run_id`` (None: nothing; it is forgotten, so
        that the sender may deliver it again).

        Raises:
            StorageError: the Core DB cannot be written.

        Cancellation: the change may be committed all the same (in its thread).
        """
        if run_id is None:
            await trio.to_thread.run_sync(self.store.hook_delivery_release, hook, delivery)
        else:
            await trio.to_thread.run_sync(self.store.hook_delivery_settle, hook, delivery,
                                          run_id)

    async def list_runs(self, query: store.RunFilter = store.EVERY_RUN, *, limit: int = 50,
                        offset: int = 0) -> tuple[list[RunRow], int]:
        """A page of the runs ``query`` selects, newest first, and how many it selects.

        Cancellation: nothing is left behind (a read under way finishes in its thread).
        """
        def read() -> tuple[list[RunRow], int]:
            return (self.store.list_runs(query, limit=limit, offset=offset),
                    self.store.count_runs(query))

        return await trio.to_thread.run_sync(read)

    async def run_statuses(self, run_ids: Sequence[str]) -> dict[str, str]:
        """The status of each of these runs that exists.

        Cancellation: nothing is left behind (a read under way finishes in its thread).
        """
        return await trio.to_thread.run_sync(self.store.run_statuses, list(run_ids))

    async def last_seq(self, run_id: str | None = None) -> int:
        """The last event seq of the run (or of the whole journal).

        Cancellation: nothing is left behind.
        """
        if run_id is None:
            return await trio.to_thread.run_sync(self.store.last_seq)
        return (await trio.to_thread.run_sync(self.store.event_bounds, run_id))[1]

    async def stream_end(self, run_id: str) -> int:
        """The seq a run's event stream ends at: its ``run.finish`` (what follows it, a
        notification's deliveries, is not part of the stream), else its last event.

        Cancellation: nothing is left behind.
        """
        def read() -> int:
            finish = self.store.finish_seq(run_id)
            return finish if finish is not None else self.store.event_bounds(run_id)[1]

        return await trio.to_thread.run_sync(read)

    async def notify_deliveries(self, run_id: str, *, limit: int = 100
                                ) -> list[store.DeliveryRecord]:
        """The run's notification delivery attempts, oldest first (at most ``limit``).

        Cancellation: nothing is left behind.
        """
        return await trio.to_thread.run_sync(
            partial(self.store.notify_deliveries, run_id, limit=limit))

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
        """What ``GET /health/storage`` reports: the Core DB's usage and retention's state
        (``ok`` false: the database cannot grow).

        Raises:
            StorageError: the Core DB cannot be read.

        Cancellation: nothing is left behind.
        """
        usage = await trio.to_thread.run_sync(self.store.storage_usage)
        return storage_health(usage, self.root.retention)

    def has_backlog_after(self, run_id: str, after: int) -> bool:
        """The hub holds the run's events after ``after`` (its replay needs no read)."""
        return self.hub.has_backlog_after(run_id, after)

    async def catalog(self, *, fresh_since: float | None = None, cached: bool = False
                      ) -> Catalog:
        """The jobs of the scripts root and of every source (cached until one changes).

        ``fresh_since`` (a ``trio.current_time()``): from a check of the files begun at
        or after it (a listing asked for then sees every config written before it; the
        cache otherwise answers from a check of the last second, which the scheduler's
        own reads keep recent). ``cached``: the last check's, however old, when there was
        one — for a caller that checks what it uses with :meth:`job_unchanged`.

        Cancellation: nothing is left behind (a rescan under way is abandoned).
        """
        return (await self.root.catalog_view(fresh_since=fresh_since, cached=cached))[0]

    async def aliases(self, *, fresh_since: float | None = None, cached: bool = False
                      ) -> AliasIndex:
        """The aliases of every ``flwd.yaml``, checked against :meth:`catalog`.

        Cancellation: as :meth:`catalog`.
        """
        return (await self.root.catalog_view(fresh_since=fresh_since, cached=cached))[1]

    def job_unchanged(self, job: Job) -> bool:
        """Whether ``job``, a job of the scripts root found in the cached catalog, is still
        what its files say (a few ``stat`` calls; see ``CatalogCache.job_unchanged``);
        False for a job of a source, or on any doubt. Blocking, but cheap."""
        return self.root.catalog_cache.job_unchanged(job)

    async def add_source(self, spec: SourceSpec) -> tuple[Source, bool]:
        """Register (or update) a source and wait for its checkout; True when it is new.

        Raises:
            SourceExists / SourceNotAllowed / SourceInvalid / SourceCheckoutFailed.

        Cancellation: the source actor finishes what it started (the source may be
        registered); only the answer is lost.
        """
        from flwd.sources import Add

        result: tuple[Source, bool] = await self.root.sources_ref.call(lambda reply: Add(spec, reply))
        return result

    async def refresh_source(self, name: str) -> Source:
        """Fetch the source again and re-index its jobs; the source as it is now.

        Raises:
            SourceNotFound / SourceCheckoutFailed.

        Cancellation: the source actor finishes the refresh; only the answer is lost.
        """
        from flwd.sources import Refresh

        source: Source = await self.root.sources_ref.call(lambda reply: Refresh(name, reply))
        return source

    async def remove_source(self, name: str) -> Source:
        """Unregister the source; its jobs leave the catalog. The source as it was.

        Raises:
            SourceNotFound.

        Cancellation: the source actor finishes the removal; only the answer is lost.
        """
        from flwd.sources import Remove

        source: Source = await self.root.sources_ref.call(lambda reply: Remove(name, reply))
        return source

    def sources(self) -> list[Entry]:
        """Every source with what it contributes (sorted by name)."""
        return self.root.source_book.listing()

    def source(self, name: str) -> Entry:
        entry = self.root.source_book.get(name)
        if entry is None:
            raise SourceNotFound(f"no source named {name!r}",
                                 hint="GET /sources lists them")
        return entry

    async def get_run(self, run_ref: str) -> RunRow:
        """The run from the Core DB. Raises RunNotFound.

        Cancellation: nothing is left behind.
        """
        return await trio.to_thread.run_sync(self.store.get_run, run_ref)

    async def request_cancel(self, run_id: str, *, reason: str, by: str, force: bool = False
                             ) -> tuple[str, RunRow]:
        """Cancel a run wherever it lives on this host (``force``: a run of this engine is
        killed at once, as by a second Ctrl-C).

        Returns ``("requested", run)`` when a live run was asked to stop, or
        ``("terminal", run)`` when it had already finished.

        A run of a CLI process is cancelled by sending that process SIGTERM
        (its graceful Ctrl-C path); a run whose owner died is marked
        ``interrupted`` first. A run of another replica of a PostgreSQL Core DB (this
        engine listens: :mod:`flwd.engine._listener`) is cancelled by recording the
        request in the Core DB, which that replica takes (``"requested"``).

        Raises:
            RunNotFound: unknown run.
            RunOwnedElsewhere: the run is live in another server process that is no
                replica of a cluster (a server on the same SQLite Core DB).

        Cancellation: a cancel already handed to the run (or a signal already sent
        to its owner) goes on; recovery of a dead owner's runs, when under way in
        its thread, completes.
        """
        run = await self.get_run(run_id)
        if run.status in TERMINAL_STATUSES:
            return "terminal", run
        if await self.cancel_run(run.id, reason=reason, by=by, force=force) == "requested":
            return "requested", run
        if run.owner_kind == "cluster" and run.owner_pid is None and run.status == "queued":
            if await self.root.cancel_queued(run, reason, by):
                # Queued for any replica: taken and canceled here, at once.
                return "terminal", await self.get_run(run.id)
            run = await self.get_run(run.id)  # a replica claimed it meanwhile
        here = run.owner_host in (None, owner_identity()[2])
        pid = run.owner_pid
        alive = pid is not None and pid > 0 and here and process_alive(pid, run.owner_start)
        if alive and run.owner_kind == "cli" and pid is not None:
            if signal_owner(pid):
                return "requested", run
        elif run.owner_kind == "cluster" and here and pid and not alive \
                and self.root.cluster is not None:
            # Leased by a replica of this host that died: reaped now, not at its lapse.
            await self.root.cluster.reap_dead(run.id, owner_identity()[2], pid)
        elif run.owner_kind == "cluster" or (run.owner_kind == "serve" and (alive or not here)):
            # A leased run of another host's replica that died ends when its lease lapses.
            if self.root.wakes is not None:
                # A replica of this cluster: it takes the request (flwd/engine/_listener.py).
                # One of another host is not known dead here: its lease decides.
                await trio.to_thread.run_sync(partial(
                    self.store.request_cancel, run.id, reason=reason, by=by, force=force))
                return "requested", run
            if alive:
                raise RunOwnedElsewhere(
                    f"run {run.id} is live in another flwd server (pid {run.owner_pid})",
                    hint="send the cancel to that server")
        await trio.to_thread.run_sync(recover, self.settings)
        return "terminal", await self.get_run(run.id)

    async def cancel_run(self, run_id: str, *, reason: str, by: str, force: bool = False) -> str:
        """Ask a live run to stop; ``"requested"`` or ``"not-live"`` (finished or elsewhere).

        Cancellation: if the root has taken the request, the run is being cancelled
        all the same; only the answer is lost.
        """
        return await self.root.commands.call(
            lambda reply: CancelRun(run_id, reason, by, force, reply))

    # -- Rule-Y KV ------------------------------------------------------------
    def kv_check(self, namespace: str, key: str | None = None) -> None:
        """Refuse a namespace that is not allow-listed, and (given) a key out of bounds,
        before a request's body is read.

        Raises:
            KvNamespaceForbidden / KvKeyRequired / KvKeyTooLong / KvKeyNotText.
        """
        self.kv.check(namespace, key)

    async def kv_get(self, namespace: str, key: str) -> KvItem:
        """The entry under ``key``.

        Raises:
            KvNamespaceForbidden / KvKeyRequired / KvKeyTooLong / KvKeyNotText /
            KvKeyNotFound.

        Cancellation: nothing is left behind (it only reads).
        """
        return await trio.to_thread.run_sync(self.kv.get, namespace, key)

    async def kv_put(self, namespace: str, key: str, value: bytes) -> None:
        """Store ``value`` under ``key``, within the namespace's quota.

        Raises:
            as :meth:`kv_get` (but KvKeyNotFound); KvValueTooLong; KvQuotaExceeded;
            StorageError.

        Cancellation: a put already handed to its thread commits all the same (or
        not at all: it is one transaction); only the answer is lost.
        """
        await trio.to_thread.run_sync(self.kv.put, namespace, key, value)

    async def kv_delete(self, namespace: str, key: str) -> None:
        """Remove ``key``.

        Raises:
            as :meth:`kv_get`; StorageError.

        Cancellation: as :meth:`kv_put`: the delete may be committed, the answer lost.
        """
        await trio.to_thread.run_sync(self.kv.delete, namespace, key)

    async def kv_list(self, namespace: str, *, prefix: str = "", cursor: bytes | None = None,
                      limit: int = 256) -> KvPage:
        """One page of the namespace's entries whose key starts with ``prefix``, in key
        order, after the key ``cursor``.

        Raises:
            KvNamespaceForbidden / KvKeyNotText (the prefix).

        Cancellation: nothing is left behind (it only reads).
        """
        return await trio.to_thread.run_sync(
            partial(self.kv.scan, namespace, prefix=prefix, cursor=cursor, limit=limit))

    def is_live(self, run_id: str) -> bool:
        """The run belongs to this process and its ``run.finish`` is not yet published."""
        return self.root.is_live(run_id)

    async def journal_events(self, records: Sequence[EventRecord]) -> None:
        """Journal (and publish to ``/events``) events that belong to no run: their
        ``run_id`` is ``""`` (a schedule's skip, a refused webhook delivery).

        Cancellation: the records may be journaled all the same (the journal commits
        what it was handed).
        """
        if records:
            journal: JournalRef = self.root.supervisor.child_value("journal")
            await journal.call(lambda reply: Append(list(records), reply))

    # -- schedules ------------------------------------------------------------
    async def schedules(self) -> ScheduleBook:
        """The schedules of :meth:`catalog`, by name (zone-less ones on this host's zone).

        Cancellation: as :meth:`catalog`.
        """
        return await self.root.schedule_book()

    async def schedule_states(self) -> dict[str, ScheduleState]:
        """What the Core DB keeps of each schedule (watermark, pause, last fire).

        Cancellation: nothing is left behind (a read under way finishes in its thread).
        """
        return await trio.to_thread.run_sync(self.store.schedule_states,
                                             self.settings.workspace_key)

    async def find_schedule(self, name: str) -> Schedule:
        """The schedule called ``name``. Raises ScheduleNotFound.

        Cancellation: as :meth:`catalog`.
        """
        schedule = (await self.schedules()).get(name)
        if schedule is None:
            raise ScheduleNotFound(f"no schedule named {name!r}",
                                   hint="GET /schedules (or 'flwd :schedules') lists them")
        return schedule

    async def pause_schedule(self, name: str, paused: bool) -> tuple[Schedule, bool]:
        """Pause (or resume) the schedule ``name``, in the Core DB (it survives a
        restart); True when that changed its state. The scheduler skips the fires of a
        paused schedule, and those that came while it was paused once resumed.

        Raises:
            ScheduleNotFound; StorageError.

        Cancellation: the change may be written all the same; only the answer is lost.
        """
        schedule = await self.find_schedule(name)
        changed = await trio.to_thread.run_sync(partial(
            self.store.schedule_pause, self.settings.workspace_key, name, paused))
        if changed:
            # Journaled, so /events subscribers (the UI's Automation page) see it at once.
            await self.journal_events([EventRecord(
                run_id="", job_id=schedule.job_id, ts=now(), data={"name": name},
                type="schedule.pause" if paused else "schedule.resume")])
        ref = self._scheduler_ref()
        if ref is not None:
            try:
                ref.cast_nowait(Poke())
            except (trio.WouldBlock, ActorStopped):
                pass  # it looks again within RECHECK seconds anyway
        return schedule, changed

    async def trigger_schedule(self, name: str) -> RunRow:
        """Fire schedule ``name`` now, by hand: a run of its job with its arguments,
        recorded as ``trigger: {kind: schedule, name, fire_at, manual: true}``, whatever
        its time, pause or overlap mode. Goes through this engine's scheduler when it
        has one (so its overlap mode sees the run).

        Raises:
            ScheduleNotFound; the errors of :meth:`submit`.

        Cancellation: the run may be started all the same; only the answer is lost.
        """
        ref = self._scheduler_ref()
        if ref is None:
            return await Scheduler(EngineHost(self)).fire_now(name)
        run: RunRow = await ref.call(lambda reply: FireNow(name, reply))
        return run

    def _scheduler_ref(self) -> SchedulerRef | None:
        try:
            ref: SchedulerRef = self.root.supervisor.child_value("scheduler")
        except (ActorStopped, ChildNotFound):
            return None
        return ref

    def events(self, run_id: str | None, *, after: int = 0, follow: bool = True,
               heartbeat: float | None = None) -> AsyncGenerator[list[EventRecord], None]:
        """The run's events (or all events) in order, replayed then live; see ``stream_events``.

        Runs of this process (and the global stream) are followed through the
        hub; runs of other processes by reading the journal when the listener says they
        moved (a server on PostgreSQL), else by polling it. A server on PostgreSQL reads
        the global stream from the journal too (every replica's events).
        """
        live = run_id is None or self.is_live(run_id)
        if run_id is None and self.root.wakes is not None:
            # A replica's global stream: the journal holds every replica's events (the
            # hub only this one's), read when the listener says one committed.
            live = False
        return stream_events(self.store, run_id, after=after,
                             hub=self.hub if live else None, follow=follow,
                             heartbeat=heartbeat, observer=self.root.observer,
                             wakes=self.root.wakes)


@asynccontextmanager
async def open_engine(settings: Settings, *, owner_kind: str = "cli",
                      sources: AllowList | None = None,
                      oci: OciContext | None = None,
                      retention: RetentionPolicy | None = None,
                      max_concurrent_runs: int | None = None,
                      policy: PolicyContext | None = None, runtime: Runtime | None = None,
                      profile: str | None = None,
                      kv_namespaces: KvNamespaces | None = None,
                      observer: Observer = UNOBSERVED, schedules: bool = False,
                      clock: WallClock | None = None,
                      links: RunLinks | None = None,
                      cluster: ClusterSettings | None = None) -> AsyncIterator[Engine]:
    """Run the actor tree for the duration of the block; the client to use it.

    ``sources``: the allow-list of a process that manages sources (serve);
    ``oci``: the runtime, policy and profile oci sources are added with;
    ``policy``, ``runtime``, ``profile``: what requests are planned with;
    ``kv_namespaces``: the KV namespaces allowed (default: ``FLWD_KV_NAMESPACES``, else
    the reference's two), also handed to every host step;
    ``observer``: told how long Core DB operations take, what retention evicts, which
    images are pulled for container steps, which sources are added and how notifications'
    deliveries end (metrics);
    ``schedules``: run the scheduler (a server), on ``clock`` (default: the system's);
    ``links``: where the runs can be looked at (a server's URL), for notifications;
    ``cluster``: take part in a cluster (a server on a PostgreSQL Core DB: runs are
    queued for any replica, claimed and leased; see ``_cluster.py``).

    On entry, runs left unfinished by dead processes are marked ``interrupted``.
    On exit, live runs are cancelled (TERM → grace → KILL), then the tree stops
    in reverse order and the journal is flushed last.

    Cancellation: if the block is cancelled, the shutdown still runs shielded
    (bounded by the grace period plus a few seconds).
    """
    if kv_namespaces is None:
        kv_namespaces = KvNamespaces.from_env(os.environ)  # malformed: before anything starts
    await trio.to_thread.run_sync(recover, settings)
    writer = settings.open_store().open_journal()
    await trio.to_thread.run_sync(writer.start)
    hub = EventHub()
    root = Root(settings, hub, writer, owner_kind=owner_kind, sources=sources, oci=oci,
                retention=retention, max_concurrent_runs=max_concurrent_runs,
                kv_namespaces=kv_namespaces, observer=observer, schedules=schedules,
                links=links, cluster=cluster)
    engine = Engine(root, policy=policy, runtime=runtime, profile=profile)

    async def replan(job_id: str, args: dict[str, Any], profile: str | None) -> Plan:
        return await engine.plan(PlanRequest(job_id, args=args, profile=profile,
                                             profile_from="the queued run"))

    root.replan = replan

    # On a Core DB several servers share, the scheduler fires while it holds the
    # leader lease of its workspace (``_leader.py``); the lease's length is read now,
    # so a bad FLWD_SCHEDULER_LEASE refuses the start instead of crashing the scheduler.
    ttl = lease_ttl() if schedules and root.store.clustered else None

    async def run_scheduler(*, task_status: trio.TaskStatus[SchedulerRef]) -> None:
        if ttl is None:
            await Scheduler(EngineHost(engine), clock).run(task_status=task_status)
            return
        lease = LeaderLease(root.store, f"scheduler:{settings.workspace_key}", ttl=ttl)
        engine.scheduler_lease = lease
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lease.run)
            await Scheduler(EngineHost(engine), clock, lease).run(task_status=task_status)
            nursery.cancel_scope.cancel()  # the lease is released on the way out

    root.scheduler = run_scheduler
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(root.supervisor.run)
            try:
                yield engine
            finally:
                with trio.CancelScope(shield=True):
                    await root.shutdown()
    finally:
        hub.close()
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(writer.close)
