"""The root of the actor tree: its supervisor, its inbox, and the state of live runs.

::

    Root supervisor "flwd" (one_for_one)
    ├── journal    owns the Core DB writer thread; batches events; publishes to the hub
    ├── notify     delivers notifications of run outcomes (flwd.notify); a hub tap
    ├── finisher   journals a failed run.finish for runs whose actor is gone without one
    ├── runs       dynamic supervisor; one TEMPORARY run actor per run
    ├── checkouts, sources   (serve) the source registry and its checkouts
    ├── retention  (when configured) evicts old runs
    ├── commands   the root's inbox: StartRun, CancelRun (clients only send messages)
    └── scheduler  (serve) starts the runs schedules owe, through the Engine (_scheduler.py)

Clients hold the :class:`~flwd.engine.Engine` façade (``_client.py``), never a
:class:`Root`. The event hub is a plain object owned by the root (publishing is a
synchronous ``send_nowait`` fan-out done by the journal right after each commit),
not an actor: an extra hop would add latency and a queue to every batch for nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
    StartFunction,
    Supervisor,
)
from flwd.errors import (
    IdempotencyConflict,
    IdempotencyKeyTaken,
    LeaseLost,
    RecordUnstorable,
    ReplicaUnfit,
    SourceNotFound,
    StorageError,
)
from flwd.events import (
    RUN_CANCELED,
    RUN_FINISH,
    ClusterRun,
    EventRecord,
    IdempotencyRecord,
    RunRow,
    Trigger,
    format_ts,
    now,
)
from flwd.execute import owner_identity
from flwd.ids import new_run_id
from flwd.jobs import ALIASES_FILE, AliasIndex, Catalog, schedule_book
from flwd.kv import ENV_VAR as KV_ENV_VAR
from flwd.kv import KvNamespaces
from flwd.notify import DRAIN_TIMEOUT, Notifier, RunLinks, WorkspaceRules, open_sinks
from flwd.observe import UNOBSERVED, Observer
from flwd.plan import (
    Plan,
)
from flwd.schedule import ScheduleBook, system_zone
from flwd.settings import Settings
from flwd.store import (
    IDEMPOTENCY_TTL,  # how long an Idempotency-Key is remembered (the store holds it)
    CancelRequest,
    JournalItem,
    JournalSink,
    RetentionPolicy,
    Store,
    same_body,
)

from ._catalog import CatalogCache
from ._cluster import Cluster, ClusterSettings, Replanner, run_cluster
from ._finisher import Finisher, describe_crash, resync
from ._hub import EventHub
from ._journal import Append, JournalRef, run_journal
from ._lease import plan_digest, plan_places
from ._listener import Listener, listening_of
from ._retention import RetentionState, run_retention
from ._run import Cancel, RunActor, RunRef
from ._slots import Slots
from ._wakes import Wakes

if TYPE_CHECKING:
    # Start-up: flwd.sources is loaded where sources are used (a server's registry, a
    # source's job); a CLI run of a workspace job never loads it.
    from flwd.sources import (
        AllowList,
        OciContext,
        SourceBook,
        SourcesConfig,
        SourcesMessage,
        TreeLease,
    )

_log = logging.getLogger("flwd.engine")

#: How long a CLI process waits at exit for its run's pending notifications (a server
#: waits DRAIN_TIMEOUT): a person is waiting for the prompt.
CLI_NOTIFY_DRAIN = 5.0


@dataclass(frozen=True, slots=True)
class StartRun:
    plan: Plan
    #: (scoped Idempotency-Key, keyed digest of the canonical request body), if any.
    idempotency: tuple[str, str] | None
    #: What started it, if not a person (its key makes it start once at most).
    trigger: Trigger | None
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

    def __init__(self, root: Root) -> None:
        self.root = root

    async def handle(self, message: Command) -> None:
        if isinstance(message, StartRun):
            # Handled one at a time: the idempotency check and the insert that
            # follows cannot interleave with another request's.
            try:
                message.reply.reply(
                    await self.root.start_run(message.plan, message.idempotency,
                                              message.trigger))
            except Exception as exc:
                message.reply.fail(exc)
        else:
            ref = self.root.live_run(message.run_id)
            if ref is None:
                message.reply.reply("not-live")
                return
            try:
                await ref.cast(Cancel(message.reason, message.by, message.force))
            except ActorStopped:
                message.reply.reply("not-live")
            else:
                message.reply.reply("requested")


class Root:
    """The root supervisor's state: the tree, the live runs and what they hold.

    Only the root's own actors (``commands``, the journal's callbacks, the runs
    supervisor's exit hook) call its methods; clients hold an
    :class:`~flwd.engine.Engine`, which sends messages to ``commands``.
    """

    def __init__(self, settings: Settings, hub: EventHub, writer: JournalSink, *,
                 owner_kind: str = "cli", sources: AllowList | None = None,
                 oci: OciContext | None = None,
                 retention: RetentionPolicy | None = None,
                 max_concurrent_runs: int | None = None,
                 kv_namespaces: KvNamespaces | None = None,
                 observer: Observer = UNOBSERVED, schedules: bool = False,
                 links: RunLinks | None = None,
                 cluster: ClusterSettings | None = None) -> None:
        self.settings = settings
        #: Told how long Core DB operations take, what retention evicts, what is pulled.
        self.observer = observer
        self.store: Store = settings.open_store()
        #: The KV namespaces this engine allows (``:serve --kv-namespace``).
        self.kv_namespaces = kv_namespaces or KvNamespaces()
        #: What every host step gets to reach this data dir and its KV with no token:
        #: the OS user that owns the data dir is the authority (docs/jobs.md).
        self.local_access = {"FLWD_DATA_DIR": str(settings.data_dir),
                             KV_ENV_VAR: self.kv_namespaces.to_env()}
        if settings.db is not None:  # and its Core DB, when elsewhere (flwd :kv in a job)
            self.local_access["FLWD_DB"] = settings.db
        self.hub = hub
        self.writer = writer
        self.owner_kind = owner_kind
        self.catalog_cache = CatalogCache(settings.scripts_root, settings.workspace)
        self.runs = DynamicSupervisor("runs", on_child_exit=self._run_exited,
                                      max_restarts=1_000_000)
        self.finisher = Finisher(self.store, hub, lambda: self.supervisor.child("journal"))
        # Told of each run by start_run and, through the hub, of its start and finish.
        self.notifier = Notifier(
            self.store, self._journal_records, partial(open_sinks, settings.workspace),
            rules=WorkspaceRules(settings.scripts_root, _shown(settings, settings.scripts_root
                                                               / ALIASES_FILE)),
            links=links, observer=observer,
            drain_timeout=DRAIN_TIMEOUT if owner_kind == "serve" else CLI_NOTIFY_DRAIN)
        hub.taps.append(self.notifier.observe)
        children: list[ChildSpec[Any]] = [
            ChildSpec("journal", self._run_journal, shutdown_timeout=60.0),
            # Stops after the runs and the finisher (their run.finish may notify) and
            # before the journal (its deliveries are journaled).
            ChildSpec("notify", self.notifier.run,
                      shutdown_timeout=self.notifier.drain_timeout + 15.0),
            # After the journal, before the runs: it stops after the last run
            # actor (finishing what they left) and before the journal.
            ChildSpec("finisher", self.finisher.run, shutdown_timeout=30.0),
            ChildSpec("runs", self.runs.run, shutdown_timeout=settings.grace + 10.0),
        ]
        self._source_book: SourceBook | None = None
        self.sources_config: SourcesConfig | None = None
        if sources is not None:
            from flwd.sources import SourcesActor, SourcesConfig

            # A source whose actor keeps crashing is given up on, alone: the
            # supervisor's intensity is per child and escalation is logged.
            self.checkouts = DynamicSupervisor("checkouts", on_child_exit=_source_exited,
                                               max_restarts=5, max_seconds=60.0)
            self.sources_config = SourcesConfig(sources, settings.data_dir / "sources",
                                                self.store, oci=oci, observer=observer)
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
                run_retention, self.retention, self.store, settings.runs_dir,
                observer=observer), shutdown_timeout=10.0))
        #: This server's part in a cluster (serve on a PostgreSQL Core DB; see _cluster.py).
        self.cluster: Cluster | None = None
        #: Re-plans a claimed run (open_engine sets it: it needs the Engine).
        self.replan: Replanner | None = None
        if owner_kind == "serve":  # only on PostgreSQL (see _join_cluster)
            self.cluster = self._join_cluster(cluster or ClusterSettings(), max_concurrent_runs)
        if self.cluster is not None:
            children.append(ChildSpec("cluster", self._run_cluster, shutdown_timeout=5.0))
        children.append(ChildSpec.for_actor("commands", lambda: _Commands(self)))
        #: A server of a clustered Core DB (PostgreSQL, or the SQLite file the workers of
        #: ``:serve --workers`` share) hears what the other replicas commit (runs to
        #: follow, cancels to make: flwd/engine/_listener.py).
        self.wakes: Wakes | None = None
        if owner_kind == "serve" and self.store.clustered:
            self.wakes = Wakes()
            self.listener = Listener(listening_of(self.store), self.store, self.wakes,
                                     live_runs=lambda: self._live.keys(),
                                     cancel=self._cancel_requested, observer=observer)
            if self.cluster is not None:  # a run queued anywhere: this replica's claimer looks
                self.listener.on_queued = self.cluster.wake
            children.append(ChildSpec("listener", self.listener.run, shutdown_timeout=5.0))
        #: The scheduler's start function (it needs the Engine, made after the root:
        #: open_engine sets it before the tree starts). Last: it stops first.
        self.scheduler: StartFunction[Any] | None = None
        if schedules:
            # Transient: it returns only when the engine stops taking runs (shutdown).
            children.append(ChildSpec("scheduler", self._run_scheduler,
                                      restart=RestartPolicy.TRANSIENT, shutdown_timeout=10.0))
        #: The IANA zone of schedules that name none (this host's), and the book of the
        #: catalog last seen (rebuilt when the catalog changes).
        self.zone = system_zone()
        self._book: tuple[Catalog, ScheduleBook] | None = None
        self.supervisor = Supervisor("flwd", children)
        self._live: dict[str, RunRef] = {}
        #: Each live run's lease on the source tree it executes from (flwd.sources).
        self._leases: dict[str, TreeLease] = {}
        self._merged_key: tuple[int, int] | None = None
        self._merged: tuple[Catalog, AliasIndex] = (Catalog(), AliasIndex())
        self._accepting = True
        #: The last error of the Core DB writer (disk full…), for clients to report.
        self.storage_error: StorageError | None = None


    @property
    def commands(self) -> ActorRef[Command]:
        """The root's inbox (``StartRun``, ``CancelRun``)."""
        ref: ActorRef[Command] = self.supervisor.child_value("commands")
        return ref

    @property
    def accepting(self) -> bool:
        """New runs are taken (False once shutting down)."""
        return self._accepting

    def live_run(self, run_id: str) -> RunRef | None:
        """The actor of a run of this process that has not exited yet."""
        return self._live.get(run_id)

    def is_live(self, run_id: str) -> bool:
        """The run belongs to this process and its ``run.finish`` is not yet published."""
        return (run_id in self._live or self.hub.tracking(run_id)
                or self.finisher.owns(run_id))

    @property
    def source_book(self) -> SourceBook:
        """The sources' jobs this engine knows (empty but for a server's registry)."""
        if self._source_book is None:
            from flwd.sources import SourceBook

            self._source_book = SourceBook()
        return self._source_book

    async def catalog_view(self, *, fresh_since: float | None = None, cached: bool = False
                           ) -> tuple[Catalog, AliasIndex]:
        from flwd.sources import merge

        local = self.catalog_cache.cached if cached else None
        if local is None:
            local = await self.catalog_cache.get(fresh_since=fresh_since)
        key = (id(local), self.source_book.generation)
        if key != self._merged_key:
            cache = self.catalog_cache
            self._merged = merge(local, cache.alias_entries, cache.alias_issues,
                                 [entry.index for entry in self.source_book.listing()])
            self._merged_key = key
        return self._merged

    async def schedule_book(self) -> ScheduleBook:
        catalog = (await self.catalog_view())[0]
        if self._book is None or self._book[0] is not catalog:
            self._book = (catalog, schedule_book(catalog, self.zone))
        return self._book[1]

    async def _run_scheduler(self, *, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED
                             ) -> None:
        """One incarnation of the scheduler (a fresh one after a crash).

        Cancellation: as ``Scheduler.run``.
        """
        assert self.scheduler is not None, "open_engine sets the scheduler before the tree"
        await self.scheduler(task_status=task_status)

    @property
    def sources_ref(self) -> ActorRef[SourcesMessage]:
        if self.sources_config is None:
            raise SourceNotFound("this flwd process manages no sources",
                                 hint="sources live in 'flwd :serve'")
        ref: ActorRef[SourcesMessage] = self.supervisor.child_value("sources")
        return ref

    async def record_digest(self, name: str, image: str, digest: str) -> None:
        """A run of an ``on-run`` add-on succeeded at ``digest``: the source pins it.

        A server tells its source actor (which re-indexes and saves); a CLI
        process writes the data dir's row itself.
        """
        if self.sources_config is not None:
            from flwd.sources import PinDigest

            try:
                self.sources_ref.cast_nowait(PinDigest(name, image, digest))
            except (trio.WouldBlock, ActorStopped):
                _log.warning("source %s: digest %s not recorded (busy)", name, digest)
            return
        from flwd.sources import record_digest

        await trio.to_thread.run_sync(record_digest, self.store, name, image, digest)

    async def start_run(self, plan: Plan, idempotency: tuple[str, str] | None,
                        trigger: Trigger | None = None) -> tuple[RunRow, bool]:
        if not self._accepting:
            raise ActorStopped("commands", "is shutting down")
        plan.require_runnable()
        journal: JournalRef = self.supervisor.child_value("journal")
        if idempotency is not None:
            earlier = await self._find_idempotent(idempotency[0])
            if earlier is not None:
                return await self._replay(earlier.body_sha256, earlier.run_id, idempotency[1])
        pid, start_time, host = owner_identity()
        fields: dict[str, Any] = dict(
            id=new_run_id(), job_id=plan.job.id, status="queued", created_at=now(),
            profile=plan.profile, args=plan.binding.redacted(), plan=plan.to_json(),
            provenance=plan.provenance(), owner_pid=pid, owner_start=start_time,
            owner_host=host, owner_kind=self.owner_kind,
            workspace=self.settings.workspace_key, executor=plan.executor,
            runtime=plan.runtime_kind,
            trigger=None if trigger is None else trigger.detail,
            trigger_key=None if trigger is None else trigger.key)
        run = RunRow(**fields) if self.cluster is None else self._cluster_run(plan, fields)
        if isinstance(run, ClusterRun) and run.replica_id is None:
            return await self._enqueue(journal, run, idempotency)
        # Before anything is journaled: a tree deleted since the plan was made
        # is a clear error, and no flwd process deletes it while the run lives.
        await self._lease_tree(run.id, plan)
        items: list[JournalItem] = [run]
        if idempotency is not None:
            items.append(IdempotencyRecord(idempotency[0], idempotency[1], run.id, run.created_at))
        try:
            await self._create(journal, items, keyed=idempotency is not None)
        except IdempotencyKeyTaken as taken:
            # Another process on this Core DB took the key since the lookup: its
            # run (committed with the key) answers this request, as a replay would.
            self._release_tree(run.id)
            assert idempotency is not None
            return await self._replay(taken.body_digest, taken.run_id, idempotency[1])
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
        if self.cluster is not None:  # claimed at insert: its lease is committed now
            self.cluster.fence.epochs[run.id] = 1
        await self._launch(run, plan)
        return run, False

    async def _launch(self, run: RunRow, plan: Plan) -> None:
        """Start the actor of a journaled run this process executes (it owns it)."""
        self.notifier.arm(run, plan.job.notify_rules)
        # Before the run's first event: late subscribers replay it from memory.
        self.hub.track(run.id)
        # A thin client's run is cancelled with that client's grace, as locally.
        grace = self.settings.grace if plan.grace is None else plan.grace
        journal: JournalRef = self.supervisor.child_value("journal")
        actor = RunActor(run.id, plan, journal, runs_dir=self.settings.runs_dir,
                         grace=grace, on_digest=self.record_digest,
                         slots=self.slots, local_access=self.local_access,
                         observer=self.observer)
        try:
            ref: RunRef = await self.runs.start_child(ChildSpec(
                run.id, actor.run, restart=RestartPolicy.TEMPORARY,
                shutdown_timeout=grace + 5.0,
                stop=lambda ref: _cancel_nowait(ref, "flwd is shutting down", "shutdown"),
            ))
        except BaseException as exc:
            self._release_tree(run.id)
            self.hub.untrack(run.id)
            self.finisher.actor_exited(run.id, exc)
            raise
        self._live[run.id] = ref

    # -- the cluster (serve on PostgreSQL, or the workers of :serve --workers) --------
    def _join_cluster(self, settings: ClusterSettings, capacity: int | None
                      ) -> Cluster | None:
        from flwd.store import Fence, SqlStore, ThreadedJournal

        store, writer = self.store, self.writer
        if not (store.clustered and isinstance(store, SqlStore)
                and isinstance(writer, ThreadedJournal)):
            return None  # one server per Core DB, as always
        fence = Fence(settings.replica_id)
        writer.fence = fence
        self.hub.taps.append(self._cluster_observe)
        return Cluster(settings, store, fence, self, capacity=capacity,
                       grace=self.settings.grace, runs_dir=self.settings.runs_dir,
                       runs_dirs=(partial(_worker_runs_dirs, self.settings.data_dir.parent)
                                  if self.settings.shared_db else None))

    async def _run_cluster(self, *, task_status: trio.TaskStatus[Cluster]
                           = trio.TASK_STATUS_IGNORED) -> None:
        """One incarnation of the cluster actor (see _cluster.py).

        Cancellation: as ``Cluster.run``.
        """
        assert self.cluster is not None
        await run_cluster(self.cluster, task_status=task_status)

    def _cluster_observe(self, batch: Sequence[EventRecord]) -> None:
        # A hub tap: a run whose run.finish is committed needs its lease no more.
        if self.cluster is None:
            return
        for record in batch:
            if record.type == RUN_FINISH:
                self.cluster.fence.epochs.pop(record.run_id, None)

    def _cluster_run(self, plan: Plan, fields: dict[str, Any]) -> ClusterRun:
        """The row of a new run of a cluster replica: queued for any replica, or (secret
        arguments, a thin client's command line; ``local_first`` with room for it)
        claimed by this one at once.

        Raises:
            ReplicaUnfit: a run only this replica may execute needs labels it lacks.
        """
        assert self.cluster is not None
        cluster = self.cluster
        config = plan.job.config
        binding = plan.binding
        local_only = (bool(binding.secret_names & binding.values.keys())
                      or plan.host_env is not None or plan.grace is not None)
        local_first = (cluster.settings.local_first and config.concurrency is None
                       and set(config.runs_on) <= set(cluster.settings.labels)
                       and (cluster.capacity is None
                            or sum(self.cluster_load()) < cluster.capacity))
        common: dict[str, Any] = dict(
            runs_on=list(config.runs_on), concurrency=config.concurrency,
            job_source=plan.job.source, lease=cluster.timing.lease, owner_kind="cluster")
        if local_only:
            missing = sorted(set(config.runs_on) - set(cluster.settings.labels))
            if missing:
                raise ReplicaUnfit(
                    f"job {plan.job.id} runs on replicas labelled {', '.join(missing)}, which "
                    "this one is not, and a run with secret arguments is executed by the "
                    "replica that received it", hint="send the request to a replica with "
                    "those labels (GET /cluster lists them)")
            return ClusterRun(**{**fields, **common}, replica_id=cluster.replica_id)
        if local_first:
            return ClusterRun(**{**fields, **common}, replica_id=cluster.replica_id)
        retries = (config.error_handling.retries
                   if config.error_handling.policy == "retry" else 0)
        queue = {"job_id": plan.alias.name if plan.alias is not None else plan.job.id,
                 "args": binding.values, "profile": plan.profile,
                 "digest": _digest(plan), "retries": retries, "attempt": 0,
                 "accepted_by": cluster.replica_id}
        return ClusterRun(**{**fields, **common, "owner_pid": None, "owner_start": None,
                             "owner_host": None}, queue=queue, replica_id=None)

    async def _enqueue(self, journal: JournalRef, run: ClusterRun,
                       idempotency: tuple[str, str] | None) -> tuple[RunRow, bool]:
        """Journal a run queued for any replica of the cluster (this one included: its
        claimer is woken by the journal's NOTIFY like every other's)."""
        items: list[JournalItem] = [run]
        if idempotency is not None:
            items.append(IdempotencyRecord(idempotency[0], idempotency[1], run.id,
                                           run.created_at))
        try:
            await self._create(journal, items, keyed=idempotency is not None)
        except IdempotencyKeyTaken as taken:
            assert idempotency is not None
            return await self._replay(taken.body_digest, taken.run_id, idempotency[1])
        return run, False

    def cluster_load(self) -> tuple[int, int]:
        """(runs executing here, runs waiting here for a local slot)."""
        waiting = len(self.slots.book.queue) if self.slots is not None else 0
        return len(self._live) - waiting, waiting

    def held_runs(self) -> list[str]:
        """The runs whose lease this replica keeps (claimed, ``run.finish`` not committed)."""
        return list(self.cluster.fence.epochs) if self.cluster is not None else []

    def lease_lost(self, run_ids: Sequence[str], reason: str) -> None:
        """Stop these runs at once (their processes killed, no grace): another replica
        may take them over. Their records are refused from now on (the fence)."""
        for run_id in run_ids:
            ref = self._live.get(run_id)
            if ref is None and self.cluster is not None:
                self.cluster.fence.epochs.pop(run_id, None)  # nothing of it runs here
            if ref is not None:
                self.finisher.stopping(run_id, reason)
                try:
                    ref.cast_nowait(Cancel(reason, "cluster", force=True, failure=True))
                except (trio.WouldBlock, ActorStopped):
                    pass

    async def cancel_queued(self, run: RunRow, reason: str, by: str) -> bool:
        """Cancel a run still queued for any replica of the cluster: this replica claims
        it and journals it ``canceled`` under its lease. False when a replica claimed it
        first (it is live there: cancel it there).

        Cancellation: the run may be claimed and canceled all the same; or claimed only,
        and then reaped ``interrupted`` when its lease lapses.
        """
        if self.cluster is None or await self.cluster.take_queued(run.id) is None:
            return False
        ts = now()
        await self._journal_records([
            EventRecord(run_id=run.id, job_id=run.job_id, type=RUN_CANCELED, ts=ts,
                        data={"reason": reason, "by": by}),
            EventRecord(run_id=run.id, job_id=run.job_id, type=RUN_FINISH, ts=ts,
                        data={"status": "canceled", "finished_at": format_ts(ts),
                              "error": reason})])
        return True

    def source_names(self) -> list[str]:
        return [entry.source.name for entry in self.source_book.listing()]

    async def start_claimed(self, run_id: str, job_id: str, queue: dict[str, Any],
                            epoch: int) -> None:
        """Re-plan a run this replica claimed and start it; a plan that differs from the
        one the accepting replica showed (or that cannot be made here) fails the run.

        Cancellation: the run stays claimed by this replica; its lease lapses and a
        reaper finishes it ``interrupted``.
        """
        self.finisher.own(run_id, job_id)
        try:
            assert self.replan is not None, "open_engine sets the replanner"
            plan = await self.replan(queue["job_id"], dict(queue.get("args") or {}),
                                     queue.get("profile"))
            digest = _digest(plan)
            if digest != queue.get("digest"):
                raise _PlanDiffers(
                    f"the plan made by this replica ({self.cluster.replica_id if self.cluster else ''}) "
                    f"differs from the one replica {queue.get('accepted_by')} made when it "
                    "accepted the run (the job, its config or the policy differ between "
                    "replicas); nothing was executed")
            plan.require_runnable()
            run = await trio.to_thread.run_sync(self.store.get_run, run_id)
            await self._lease_tree(run_id, plan)
        except Exception as exc:
            cause = (str(exc) if isinstance(exc, _PlanDiffers) else
                     f"this replica could not plan the run it claimed: {describe_crash(exc)}")
            _log.warning("flwd: run %s: %s", run_id, cause)
            self.finisher.orphan(run_id, cause)
            return
        try:
            await self._launch(run, plan)
        except Exception:
            _log.exception("flwd: run %s could not be started", run_id)

    async def _lease_tree(self, run_id: str, plan: Plan) -> None:
        """Lease the source tree a run of ``plan`` executes from (a workspace job or a
        local source's folder has none to lease).

        Raises:
            SourceCheckoutFailed: the tree is gone (a refresh or remove deleted it).
        """
        if plan.job.roots is None:
            return
        from flwd.sources import lease_checkout

        lease = await trio.to_thread.run_sync(
            lease_checkout, self.settings.data_dir / "sources", plan.job.roots[0])
        if lease is not None:
            self._leases[run_id] = lease

    def _release_tree(self, run_id: str) -> None:
        lease = self._leases.pop(run_id, None)
        if lease is not None:
            lease.release()

    async def _replay(self, stored_digest: str, run_id: str, digest: str
                      ) -> tuple[RunRow, bool]:
        """The answer to a request whose key is held by ``run_id``: that run, replayed.

        Raises:
            IdempotencyConflict: the key was taken with another body.

        Cancellation: nothing is left behind (it only reads).
        """
        same = same_body(stored_digest, digest)
        if same is None:
            raise IdempotencyConflict(
                "this Idempotency-Key was taken through a flwd server with another "
                "idempotency.key, which cannot tell whether the request body is the same",
                hint="give every server of this Core DB the same <data dir>/idempotency.key, "
                     "see docs/scale-out.md")
        if not same:
            # No digest in the problem: they are keyed, and mean nothing to a client.
            raise IdempotencyConflict(
                "this Idempotency-Key was already used with a different request body",
                hint="use a new key for a new request")
        return await trio.to_thread.run_sync(self.store.get_run, run_id), True

    async def _find_idempotent(self, key: str) -> IdempotencyRecord | None:
        """The record of ``key`` if it is fresh; timed as an ``idempotency_lookup``.

        Cancellation: nothing is left behind (a read under way finishes in its thread).
        """
        def lookup() -> tuple[IdempotencyRecord | None, float]:
            started = time.perf_counter()
            try:
                return self.store.find_idempotent(key), time.perf_counter() - started
            except Exception:
                self.observer.persistence("idempotency_lookup", "error",
                                          time.perf_counter() - started)
                raise

        record, seconds = await trio.to_thread.run_sync(lookup)
        if record is None:
            self.observer.persistence("idempotency_lookup", "miss", seconds)
            return None
        if record.created_at <= now() - IDEMPOTENCY_TTL:
            # Forgotten: the request is a new one (its key replaces the old record).
            self.observer.persistence("idempotency_lookup", "expired", seconds)
            return None
        self.observer.persistence("idempotency_lookup", "hit", seconds)
        return record

    async def _create(self, journal: JournalRef, items: list[JournalItem], *,
                      keyed: bool) -> None:
        """Journal a new run's row (with its idempotency key: timed as ``idempotency_store``).

        Cancellation: as :meth:`start_run` (the journal commits what it was handed).
        """
        started = time.perf_counter()
        try:
            await journal.call(lambda reply: Append(items, reply))
        except IdempotencyKeyTaken:
            raise  # not a failure to store: the key's run answers the request
        except Exception:
            if keyed:
                self.observer.persistence("idempotency_store", "error",
                                          time.perf_counter() - started)
            raise
        if keyed:
            # The key commits with the run's row, in the journal's next batch.
            self.observer.persistence("idempotency_store", "ok", time.perf_counter() - started)

    def _run_exited(self, name: str, result: outcome.Outcome[None]) -> None:
        self._live.pop(name, None)
        if self.cluster is not None:
            self.cluster.slot_freed()
        self._release_tree(name)
        crash = result.error if isinstance(result, outcome.Error) else None
        if crash is not None:
            # It may have ended without run.finish: stop keeping its backlog.
            self.hub.untrack(name)
            _log.error("run %s crashed: %r", name, crash)
        self.finisher.actor_exited(name, crash)

    async def _journal_records(self, records: Sequence[EventRecord]) -> None:
        """Journal ``records`` through the journal's current incarnation; returns once
        they are committed and published.

        Cancellation: the records may be journaled all the same.
        """
        handle = self.supervisor.child("journal")
        journal: JournalRef = await handle.wait_started()
        await journal.call(lambda reply: Append(records, reply))

    async def _run_journal(
            self, *, task_status: trio.TaskStatus[JournalRef] = trio.TASK_STATUS_IGNORED) -> None:
        """One incarnation of the journal actor (see :func:`run_journal`).

        A crash fails every run it leaves behind (:meth:`_journal_crashed`)
        before the supervisor restarts it.

        Cancellation: as :func:`run_journal`.
        """
        try:
            await run_journal(self.writer, self.hub, on_storage_error=self._journal_failed,
                              on_refused=self._record_refused, observer=self.observer,
                              task_status=task_status)
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
        if isinstance(error, IdempotencyKeyTaken):
            return  # a request answered by the key's run (start_run): nothing failed
        if isinstance(error, LeaseLost):
            # Another replica holds the run now: nothing more of it is this one's to write.
            self.lease_lost([error.run_id], error.detail)
            return
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

    async def _cancel_requested(self, request: CancelRequest) -> bool:
        """Another replica was asked to cancel a run live here: cancel it as a local
        cancel would (TERM → grace → KILL, journaled with the request's reason and
        author); False when it is not live.

        Cancellation: a cancel handed to the run goes on.
        """
        ref = self.live_run(request.run_id)
        if ref is None:
            return False
        try:
            await ref.cast(Cancel(request.reason, request.by, request.force))
        except ActorStopped:
            return False
        return True

    async def shutdown(self) -> None:
        """Cancel every live run (they finish within the grace), then stop the tree in order."""
        self._accepting = False
        for ref in list(self._live.values()):
            _cancel_nowait(ref, "flwd is shutting down", "shutdown")
        await self.supervisor.aclose()
        self.hub.close()


def _digest(plan: Plan) -> str:
    """The plan's digest, wherever this replica keeps the workspace and the job (_lease.py)."""
    roots = plan.job.roots
    return plan_digest(plan.to_json(), plan_places(
        str(plan.workspace), str(plan.job.dir),
        None if roots is None else (str(roots[0]), str(roots[1]))))


class _PlanDiffers(Exception):
    """A claimed run's plan, made again here, is not the one shown when it was accepted."""


def _cancel_nowait(ref: RunRef, reason: str, by: str, *, failure: bool = False) -> None:
    try:
        ref.cast_nowait(Cancel(reason, by, failure=failure))
    except (trio.WouldBlock, ActorStopped):
        pass


def _source_exited(name: str, result: outcome.Outcome[None]) -> None:
    if isinstance(result, outcome.Error):
        _log.error("%s crashed: %r", name, result.error)


def _shown(settings: Settings, path: Path) -> str:
    """``path`` as messages name it: relative to the workspace when it is inside."""
    return str(path.relative_to(settings.workspace)) if path.is_relative_to(
        settings.workspace) else str(path)


def _worker_runs_dirs(workers: Path) -> list[Path]:
    """The run dirs of the workers of one ``:serve --workers`` (``<data>/workers/*/runs``)."""
    return sorted(workers.glob("*/runs"))
