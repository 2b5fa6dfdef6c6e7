"""A server's part in a cluster: several ``flwd :serve`` sharing one PostgreSQL Core DB, or
the workers of one ``flwd :serve --workers N`` sharing its SQLite Core DB.

::

    cluster (a child of the root, serve on a clustered Core DB only)
    ├── heartbeat  every ClusterTiming.heartbeat: "alive", and renew the leases of
    │              the runs this replica holds; a run it no longer holds is stopped
    ├── watchdog   no renewal in time (the Core DB unreachable): stop every run of
    │              this replica before its lease lapses (flwd/engine/_lease.py)
    ├── claimer    claims queued runs within the free slots, woken by NOTIFY on the
    │              queue channel (the replica's listener: _listener.py), a freed slot,
    │              or a poll
    └── reaper     finishes ``interrupted`` the runs whose lease lapsed (their replica
                   stopped heartbeating), killing what is left of them on this host

The Core DB side (SQL) is ``flwd/store/_cluster.py``; fencing (every journal batch
checks the epochs of the leases it writes for) is ``flwd.store.Fence``.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import trio

from flwd.execute import kill_run_processes, owner_identity, process_alive
from flwd.ids import new_run_id

from ._lease import ClusterTiming, LeaseWatch

if TYPE_CHECKING:
    from flwd.store import Fence, SqlStore

_log = logging.getLogger("flwd.engine")

#: Runs claimed per pass when this replica has no ``--max-concurrent-runs``.
CLAIM_BATCH = 32
#: Replicas silent this long are left out of ``GET /cluster`` (seconds).
FORGET_AFTER = 24 * 3600.0


@dataclass(frozen=True, slots=True)
class ClusterSettings:
    """How a server takes part in a cluster (``:serve --labels``, FLWD_CLUSTER_*)."""

    labels: tuple[str, ...] = ()
    timing: ClusterTiming = field(default_factory=ClusterTiming)
    #: This replica's id: host, pid and a random part (a restart is a new replica).
    replica_id: str = field(default_factory=lambda: (
        f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"))
    #: A run this replica accepts is executed here when it can be — a free slot, the
    #: job's labels, no ``concurrency`` to count across the cluster — instead of being
    #: queued for any replica: the workers of one host (``:serve --workers``), whose
    #: connections the kernel already spreads, would only pay for a second plan, a
    #: claim and following another process's journal.
    local_first: bool = False


def cluster_settings(labels: Sequence[str] | None, environ: Mapping[str, str]
                     ) -> ClusterSettings:
    """``:serve --labels`` (else ``FLWD_LABELS``), and the timings of ``FLWD_CLUSTER_HEARTBEAT``
    and ``FLWD_CLUSTER_LEASE`` (seconds; short ones make tests quick).

    Raises:
        UsageError: a label or a timing is not valid (one line naming it).
    """
    from flwd.errors import UsageError
    from flwd.jobs import LABEL_RE

    words = list(labels) if labels else [environ.get("FLWD_LABELS", "")]
    found: list[str] = []
    for word in (part.strip().lower() for item in words for part in item.split(",")):
        if not word:
            continue
        if not LABEL_RE.fullmatch(word):
            raise UsageError(f"invalid --labels entry {word[:40]!r}",
                             hint="a label is lower-case letters, digits, '_', '.', '-' "
                                  "(at most 63), e.g. --labels gpu,linux")
        if word not in found:
            found.append(word)
    timing: dict[str, float] = {}
    for name, key in (("FLWD_CLUSTER_HEARTBEAT", "heartbeat"), ("FLWD_CLUSTER_LEASE", "lease")):
        text = environ.get(name, "").strip()
        if text:
            try:
                timing[key] = float(text)
            except ValueError:
                raise UsageError(f"invalid {name} {text[:40]!r}",
                                 hint="give a number of seconds, e.g. 5") from None
    try:
        clock = ClusterTiming(**timing)
    except ValueError as exc:
        raise UsageError(f"invalid FLWD_CLUSTER_HEARTBEAT/FLWD_CLUSTER_LEASE: {exc}",
                         hint="the lease must last at least three heartbeats") from None
    return ClusterSettings(tuple(found), clock)


class ClusterHost(Protocol):
    """What the cluster asks of the root (flwd/engine/_root.py)."""

    @property
    def accepting(self) -> bool: ...

    def cluster_load(self) -> tuple[int, int]:
        """(runs executing here, runs waiting for a local slot)."""

    def held_runs(self) -> list[str]:
        """The runs of this replica whose lease it must keep (live, not yet finished)."""

    def lease_lost(self, run_ids: Sequence[str], reason: str) -> None:
        """Stop these runs at once: this replica no longer holds them."""

    def source_names(self) -> list[str]:
        """The sources this replica has a checkout of."""

    async def start_claimed(self, run_id: str, job_id: str, queue: dict[str, Any],
                            epoch: int) -> None:
        """Re-plan and start a run this replica claimed."""


class Cluster:
    """See the module doc. ``store`` is the Core DB; ``fence`` the journal's."""

    def __init__(self, settings: ClusterSettings, store: SqlStore, fence: Fence,
                 host: ClusterHost, *, capacity: int | None, grace: float,
                 runs_dir: Path | None = None,
                 runs_dirs: Callable[[], Sequence[Path]] | None = None) -> None:
        self.settings = settings
        self.timing = ClusterTiming(settings.timing.heartbeat, settings.timing.lease, grace)
        self.store = store
        self.fence = fence
        self.host = host
        self.capacity = capacity
        self.runs_dir = runs_dir
        #: The run dirs of this host's replicas that share this one's data dir layout
        #: (the workers of one ``:serve --workers``): where a dead one's secret files
        #: are removed from once its runs are reaped. Default: this replica's.
        self.runs_dirs = runs_dirs or (lambda: [runs_dir] if runs_dir is not None else [])
        self._wake = trio.Event()
        #: Runs may be waiting in the queue for this replica (see :meth:`slot_freed`).
        self._backlog = True
        self.watch: LeaseWatch | None = None
        #: Seconds the last heartbeat took, for metrics and GET /cluster.
        self.last_heartbeat_ok: float | None = None

    @property
    def replica_id(self) -> str:
        return self.settings.replica_id

    async def replicas(self) -> list[Any]:
        """Every replica that heartbeated within :data:`FORGET_AFTER` (``GET /cluster``).

        Raises:
            StorageError: the Core DB cannot be read.

        Cancellation: the read is abandoned in its thread.
        """
        from flwd.store import cluster

        listed: list[Any] = await self._db(cluster.replicas, forget_after=FORGET_AFTER)
        return listed

    async def take_queued(self, run_id: str) -> int | None:
        """Claim a run still queued for any replica (to cancel it): its lease epoch, or
        None when a replica claimed it first.

        Raises:
            StorageError: the Core DB cannot be written.

        Cancellation: the claim may be committed all the same; its lease then lapses
        and a reaper finishes the run ``interrupted``.
        """
        from flwd.store import cluster

        pid, start, host = owner_identity()
        epoch: int | None = await self._db(
            cluster.take_queued, run_id=run_id, replica_id=self.replica_id,
            lease=self.timing.lease, pid=pid, start=start, host=host)
        if epoch is not None:
            self.fence.epochs[run_id] = epoch
        return epoch

    async def reap_dead(self, run_id: str, host: str, pid: int) -> bool:
        """Finish ``interrupted`` now a run whose replica is known dead (its process is gone
        from this host), and kill what is left of it here; False if it was not that
        replica's any more (reaped, or finished, meanwhile).

        Raises:
            StorageError: the Core DB cannot be written.

        Cancellation: the run may be reaped all the same (its processes then go at the
        next reaping of this host, or never if none; they are killed first below).
        """
        from flwd.store import cluster

        await trio.to_thread.run_sync(partial(kill_run_processes, [run_id], None))
        reaped: list[Any] = await self._db(cluster.reap, new_id=new_run_id,
                                           dead=(run_id, host, pid))
        return bool(reaped)

    def wake(self) -> None:
        """Look at the queue again (a run was queued, or may have been)."""
        self._backlog = True
        self._wake.set()

    def slot_freed(self) -> None:
        """A run of this replica ended: look at the queue again if runs may be waiting
        there (the last claim filled every free slot, or a run was queued since) — not
        after every run of a replica whose queue is empty (a claim is a write
        transaction: the other writers would wait for it)."""
        if self._backlog:
            self._wake.set()

    async def _db(self, fn: Callable[..., Any], /, **kwargs: Any) -> Any:
        """Run a blocking cluster query on a connection of the store, in a thread.

        Abandoned (not waited for) when cancelled or when it outlasts a third of the
        lease: a hung connection must not hold up the next heartbeat for long (the
        watchdog, a task of its own, stops the runs in time whatever it does).
        """
        def call() -> Any:
            with self.store.connection() as conn:
                return fn(conn, **kwargs)

        with trio.fail_after(max(self.timing.lease / 3, 1.0)):
            return await trio.to_thread.run_sync(call, abandon_on_cancel=True)

    async def run(self, *, task_status: trio.TaskStatus[Cluster] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """Register this replica, then heartbeat, watch, claim and reap until cancelled.

        Cancellation: the replica is marked stopped (best effort, bounded); its runs
        are the runs supervisor's to stop, and their leases lapse if it cannot.
        """
        from flwd.store import cluster

        pid = os.getpid()
        await self._db(cluster.register, replica_id=self.replica_id, host=socket.gethostname(),
                       pid=pid, labels=self.settings.labels, capacity=self.capacity)
        self.watch = LeaseWatch(self.timing, trio.current_time())
        task_status.started(self)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._heartbeats)
                nursery.start_soon(self._watchdog)
                nursery.start_soon(self._claimer)
                nursery.start_soon(self._reaper)
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(2):
                try:
                    await self._db(cluster.stopped, replica_id=self.replica_id)
                except Exception as exc:  # best effort: it stops anyway
                    _log.warning("flwd: cluster: could not mark this replica stopped: %s", exc)

    # -- heartbeat and leases ------------------------------------------------------
    async def _heartbeats(self) -> None:
        from flwd.store import cluster

        failing = False
        while True:
            started = trio.current_time()
            running, queued = self.host.cluster_load()
            ids = self.host.held_runs()
            try:
                held: dict[str, int] = await self._db(
                    cluster.heartbeat, replica_id=self.replica_id, running=running,
                    queued=queued, lease=self.timing.lease, run_ids=ids)
            except Exception as exc:  # any failure: try again next beat
                if not failing:
                    _log.warning("flwd: cluster: heartbeat failed (leases not renewed): %s",
                                 exc)
                failing = True
            else:
                failing = False
                assert self.watch is not None
                self.watch.renewed(started)
                self.last_heartbeat_ok = trio.current_time() - started
                lost = [run_id for run_id in ids
                        if held.get(run_id) != self.fence.epochs.get(run_id)]
                if lost:
                    self.host.lease_lost(lost, "this replica's lease on the run lapsed and "
                                               "another replica took it over")
            await trio.sleep_until(started + self.timing.heartbeat)

    async def _watchdog(self) -> None:
        assert self.watch is not None
        while True:
            await trio.sleep_until(self.watch.stop_at())
            if not self.watch.must_stop(trio.current_time()):
                continue  # renewed meanwhile
            held = self.host.held_runs()
            if held:
                _log.error("flwd: cluster: leases not renewed for %.1f s: stopping %d runs "
                           "before they lapse", trio.current_time() - self.watch.renewed_from,
                           len(held))
                self.host.lease_lost(held, "this replica could not renew its lease (the "
                                           "Core DB was unreachable); the run was stopped")
            # Until the next renewal: look again a heartbeat later.
            await trio.sleep(self.timing.heartbeat)

    # -- the queue ------------------------------------------------------------------
    async def _claimer(self) -> None:
        from flwd.store import cluster

        pid, start, host = owner_identity()
        while True:
            self._wake = trio.Event()
            running, queued = self.host.cluster_load()
            limit = CLAIM_BATCH if self.capacity is None else self.capacity - running - queued
            claimed: list[Any] = []
            looked = False
            if self.host.accepting and limit > 0 and not self._cut_off():
                try:
                    claimed = await self._db(
                        cluster.claim, replica_id=self.replica_id, labels=self.settings.labels,
                        sources=self.host.source_names(), free=min(limit, CLAIM_BATCH),
                        lease=self.timing.lease, pid=pid, start=start, host=host)
                    looked = True
                except Exception as exc:  # the poll tries again
                    _log.warning("flwd: cluster: claiming queued runs failed: %s", exc)
            for item in claimed:
                self.fence.epochs[item.run_id] = item.epoch
                await self.host.start_claimed(item.run_id, item.job_id, item.queue, item.epoch)
            if claimed and len(claimed) >= min(limit, CLAIM_BATCH):
                continue  # there may be more
            # Seen empty for this replica: a notification (or the poll) says when to look
            # again. Not looked (no room, cut off, an error): a freed slot looks too.
            self._backlog = not looked
            with trio.move_on_after(self.timing.poll):
                await self._wake.wait()

    def _cut_off(self) -> bool:
        """Leases may be lapsing: claim nothing until a heartbeat renews them."""
        return self.watch is not None and self.watch.must_stop(trio.current_time())

    # -- reaping ------------------------------------------------------------------
    async def _reaper(self) -> None:
        from flwd.store import cluster

        here = socket.gethostname()
        while True:
            # After a heartbeat of this replica (never reaping on a stale view of its own).
            await trio.sleep(self.timing.heartbeat)
            if self._cut_off():
                continue
            try:
                reaped: list[Any] = await self._db(cluster.reap, new_id=new_run_id)
            except Exception as exc:  # the next pass tries again
                _log.warning("flwd: cluster: reaping lapsed leases failed: %s", exc)
                continue
            if not reaped:
                continue
            _log.warning("flwd: cluster: runs of a silent replica interrupted: %s",
                         ", ".join(item.run_id for item in reaped))
            # What a dead replica of this host left running goes now (its keeper
            # outlives it); another host's replica stopped its own before the lapse.
            local = [item.run_id for item in reaped if item.owner_host == here
                     and not (item.owner_pid and process_alive(item.owner_pid,
                                                                item.owner_start))]
            if local:
                await trio.to_thread.run_sync(partial(kill_run_processes, local, None))
                await trio.to_thread.run_sync(self._remove_secrets, local)
            if any(item.retry_id for item in reaped):
                self.wake()

    def _remove_secrets(self, run_ids: Sequence[str]) -> None:
        """The secret files of a dead replica's reaped runs (blocking): nothing of them
        runs any more (their processes were killed first)."""
        from flwd.execute import remove_secret_files

        for runs_dir in self.runs_dirs():
            remove_secret_files(runs_dir, run_ids)


async def run_cluster(cluster: Cluster, *, task_status: trio.TaskStatus[Cluster]
                      = trio.TASK_STATUS_IGNORED) -> None:
    """One incarnation of the cluster actor (see :class:`Cluster`).

    Cancellation: as :meth:`Cluster.run`.
    """
    await cluster.run(task_status=task_status)


#: Re-plans a queued run on this replica: (job id or alias, args, profile) → the plan.
Replanner = Callable[[str, dict[str, Any], str | None], Awaitable[Any]]
