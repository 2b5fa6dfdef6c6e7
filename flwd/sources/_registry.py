"""The sources of a long-lived engine: a registry actor and one checkout actor per source.

::

    sources     SourcesActor: the inbox of Add / Remove / Refresh; names are
                reserved here, so two requests for one name cannot race
    checkouts   DynamicSupervisor: one SourceActor per source (TRANSIENT —
                restarted if it crashes, not when it is removed)

A SourceActor does the slow work (git, discovery) of its own source only, so a
slow clone never delays another source, a request, or a run. What it learns is
published in the :class:`SourceBook` (read by the engine's catalog) and saved in
the Core DB, through the lifecycle a CLI change shares (``_lifecycle``). A refresh that fails in the background (say, the repository is
gone after a restart) is reported in the source's status and retried with
exponential backoff; the jobs of the last good checkout stay available.

A source actor leases the tree its index points at (``_trees``), so no flwd
process deletes it while this server may run jobs from it; runs lease theirs
themselves (the engine). Trees no longer used are swept by the actor after a
refresh, by the registry after a remove, and for every source at start.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import trio

from actors import (
    Actor,
    ActorRef,
    ActorStopped,
    ChildNotFound,
    ChildSpec,
    DuplicateChildName,
    DynamicSupervisor,
    Inbox,
    ReplySlot,
    RestartPolicy,
)
from flwd.errors import FlwdError, SourceCheckoutFailed, SourceExists, SourceNotFound
from flwd.observe import UNOBSERVED, Observer
from flwd.store import Store

from . import _store
from ._allow import AllowList
from ._index import SourceIndex, index_source
from ._lifecycle import check_location, index_and_save, registration
from ._materialise import materialise
from ._model import Source, SourceSpec
from ._oci import MANIFEST_FILE, OciContext, digest_to_record
from ._trees import TreeLease, lease_checkout, sweep, sweep_source

_log = logging.getLogger("flwd.sources")

#: Background retries of a failed refresh: 1 s, 2 s, 4 s … capped at 5 minutes.
RETRY_BASE, RETRY_CAP = 1.0, 300.0
#: Seconds between two reads of a shared Core DB's registry (a source added, refreshed
#: or removed through another server is followed within about this long).
SYNC_INTERVAL = 2.0


@dataclass(slots=True)
class Entry:
    source: Source
    index: SourceIndex = field(default_factory=SourceIndex)


class SourceBook:
    """What every source currently contributes; ``generation`` changes with any update.

    Written only by source actors, read by the engine — all in one trio run
    loop, so plain attributes suffice.
    """

    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}
        self.generation = 0

    def get(self, name: str) -> Entry | None:
        return self.entries.get(name.lower())

    def listing(self) -> list[Entry]:
        return sorted(self.entries.values(), key=lambda entry: entry.source.name.lower())

    def put(self, entry: Entry) -> None:
        self.entries[entry.source.name.lower()] = entry
        self.generation += 1

    def drop(self, name: str) -> None:
        if self.entries.pop(name.lower(), None) is not None:
            self.generation += 1


@dataclass(frozen=True, slots=True)
class Add:
    spec: SourceSpec
    #: The source, and True when it is new (False: an existing one was updated).
    reply: ReplySlot[tuple[Source, bool]]


@dataclass(frozen=True, slots=True)
class Remove:
    name: str
    reply: ReplySlot[Source]


@dataclass(frozen=True, slots=True)
class Refresh:
    name: str
    reply: ReplySlot[Source]


@dataclass(frozen=True, slots=True)
class PinDigest:
    """A run of an ``on-run`` add-on's job succeeded with ``image`` at ``digest``: pin it."""

    name: str
    image: str
    digest: str
    reply: None = None


@dataclass(frozen=True, slots=True)
class SyncRegistry:
    """Follow the registry of a Core DB other servers share (sent every SYNC_INTERVAL)."""

    reply: None = None


SourcesMessage = Add | Remove | Refresh | PinDigest | SyncRegistry


@dataclass(frozen=True, slots=True)
class _Materialise:
    """To a SourceActor: check out ``spec`` (a new ref, or again); reply when done."""

    spec: SourceSpec
    reply: ReplySlot[tuple[Source, bool]] | None
    #: For a restored source: the commit to check out again (not a new resolution).
    pinned: str | None = None


@dataclass(frozen=True, slots=True)
class _Pin:
    """To a SourceActor: record the digest a successful run observed (no reply)."""

    image: str
    digest: str
    reply: None = None


@dataclass(slots=True)
class SourcesConfig:
    allow: AllowList
    sources_dir: Path
    store: Store
    #: Runtime, policy and profile for oci sources (None: oci sources are refused).
    oci: OciContext | None = None
    #: Told of new sources, of add-on images pulled and of invalid manifests (metrics).
    observer: Observer = UNOBSERVED


class SourceActor:
    """Owns one source: materialises it, indexes its jobs, retries failures.

    Every request it was handed is answered, also when it stops or crashes
    (queued ones with :exc:`ActorStopped`), so no caller waits forever.

    Cancellation: a git command in flight is terminated; the book keeps the
    last good state; the lease on the tree is released.
    """

    #: One checkout at a time; a few queued refreshes, then senders wait.
    inbox_capacity = 4

    def __init__(self, book: SourceBook, config: SourcesConfig, restored: Source | None,
                 first: _Materialise | None) -> None:
        self.book = book
        self.config = config
        self.current = restored
        self.first = first
        self.failures = 0
        #: On the tree the book's entry points at (None: a local folder, or none yet).
        self.lease: TreeLease | None = None
        self.name = (restored.spec if restored is not None else first.spec).name  # type: ignore[union-attr]

    async def run(self, *, task_status: trio.TaskStatus[object] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        with Inbox[_Materialise | _Pin](f"source {self.name}", self.inbox_capacity) as inbox:
            in_flight: list[_Materialise | _Pin] = []
            try:
                async with trio.open_nursery() as nursery:
                    self._nursery = nursery
                    task_status.started(inbox.ref)
                    if self.first is not None:
                        in_flight.append(self.first)
                        ok = await self._materialise(self.first, first_registration=True)
                        in_flight.clear()
                        if not ok:
                            nursery.cancel_scope.cancel()
                            return
                    elif self.current is not None:
                        await self._restore(self.current)
                    async for message in inbox:
                        if isinstance(message, _Pin):
                            await self._pin(message)
                            continue
                        in_flight.append(message)
                        await self._materialise(message)
                        in_flight.clear()
                    nursery.cancel_scope.cancel()
            finally:
                if self.lease is not None:
                    self.lease.release()
                stopped = ActorStopped(f"source {self.name}", "stopped")
                while True:
                    try:
                        in_flight.append(inbox.receive_nowait())
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                for message in in_flight:
                    if message.reply is not None and not message.reply.done:
                        message.reply.fail(stopped)

    async def _restore(self, source: Source) -> None:
        if source.spec.type == "oci" and source.state.status == "ready" and \
                source.state.checkout_path is not None and \
                (Path(source.state.checkout_path) / MANIFEST_FILE).is_file():
            # The cached manifest and the pinned digest are what was checked
            # when the add-on was added: a restart runs no container.
            try:
                lease = await self._lease(source)
            except FlwdError:
                pass  # gone meanwhile: extracted again below
            else:
                index = await trio.to_thread.run_sync(index_source, source)
                self._hold(lease)
                self.book.put(Entry(source, index))
                return
        state = replace(source.state, status="pending", error=None)
        self.book.put(Entry(source.with_state(state, source.updated_at)))
        await self._materialise(_Materialise(source.spec, None, source.state.resolved_commit))

    async def _pin(self, message: _Pin) -> None:
        source = self.current
        if source is None:
            return
        digest = digest_to_record(source.spec, source.state, message.digest, message.image)
        if digest is None:
            return
        source = source.with_state(replace(source.state, digest=digest), time.time())
        try:
            index = await index_and_save(self.config.store, source, create=False)
        except FlwdError as exc:
            _log.warning("source %s: cannot record digest %s: %s", source.name, digest,
                         exc.one_line())
            return
        self.current = source
        self.book.put(Entry(source, index))

    async def _lease(self, source: Source) -> TreeLease | None:
        """Lease the tree ``source`` points at (None for a local folder).

        Raises:
            SourceCheckoutFailed: the tree is gone, or being deleted.
        """
        if source.state.checkout_path is None:
            return None
        return await trio.to_thread.run_sync(lease_checkout, self.config.sources_dir,
                                             Path(source.state.checkout_path))

    def _hold(self, lease: TreeLease | None) -> None:
        """Point at ``lease``'s tree from now on; the previous one may be swept."""
        previous, self.lease = self.lease, lease
        if previous is not None:
            previous.release()

    async def _materialise(self, message: _Materialise, *, first_registration: bool = False
                           ) -> bool:
        lease: TreeLease | None = None
        try:
            state = await materialise(message.spec, self.config.allow, self.config.sources_dir,
                                      pinned=message.pinned, oci=self.config.oci,
                                      observer=self.config.observer)
            # Read after the checkout: a background retry may have registered meanwhile.
            previous = self.current
            source = registration(message.spec, state, previous, refreshed_now=True)
            # Before the row names it: from here on no sweep deletes the new tree.
            lease = await self._lease(source)
            # A checkout no request asked for (a restore, a retry, following another
            # server) does not bring back a source removed meanwhile.
            index = await index_and_save(self.config.store, source,
                                         create=message.reply is not None)
        except FlwdError as exc:
            if lease is not None:
                lease.release()
            if isinstance(exc, SourceNotFound) and message.reply is None:
                # Removed through another server: the next registry sync forgets it.
                _log.info("source %s: removed meanwhile; not checked out again",
                          message.spec.name)
                return True
            return self._failed(message, exc, first_registration)
        except OSError as exc:  # the data dir: full disk, permissions
            if lease is not None:
                lease.release()
            return self._failed(message, SourceCheckoutFailed(
                f"cannot write the checkout of source {message.spec.name!r}: {exc}",
                hint="check the free space and permissions of the data dir"),
                first_registration)
        except BaseException:
            if lease is not None:
                lease.release()
            raise
        self.current = source
        self.failures = 0
        self._hold(lease)
        self.book.put(Entry(source, index))
        if previous is None:
            self.config.observer.source_added(source.spec.type)
        if message.reply is not None:
            message.reply.reply((source, previous is None))
        await self._prune(source)
        return True

    def _failed(self, message: _Materialise, exc: FlwdError, first_registration: bool) -> bool:
        if message.reply is not None:
            message.reply.fail(exc)
        if first_registration:
            return False
        # Keep serving the last good checkout; say what is wrong; try again later.
        _log.warning("source %s: %s", message.spec.name, exc.one_line())
        entry = self.book.get(message.spec.name)
        if entry is not None:
            state = replace(entry.source.state, status="error", error=exc.one_line())
            self.book.put(Entry(entry.source.with_state(state, time.time()), entry.index))
        if message.reply is None:
            delay = min(RETRY_CAP, RETRY_BASE * 2 ** self.failures) * random.uniform(0.8, 1.2)
            self.failures += 1
            self._nursery.start_soon(self._retry_later, message, delay)
        return True

    async def _retry_later(self, message: _Materialise, delay: float) -> None:
        await trio.sleep(delay)
        entry = self.book.get(message.spec.name)
        if entry is not None and entry.source.state.status == "error":
            await self._materialise(_Materialise(message.spec, None, message.pinned))

    async def _prune(self, source: Source) -> None:
        """Delete the trees of this source nothing uses any more (leased ones stay)."""
        await trio.to_thread.run_sync(sweep_source, self.config.sources_dir, source.name,
                                      _pinned(source))


class SourcesActor(Actor[SourcesMessage]):
    """The registry's inbox: validates names and routes work to the source actors."""

    name = "sources"

    def __init__(self, book: SourceBook, config: SourcesConfig,
                 checkouts: DynamicSupervisor) -> None:
        self.book = book
        self.config = config
        self.checkouts = checkouts
        self.pending: set[str] = set()
        #: The commit asked of each source to follow another server's refresh (asked
        #: once: a checkout that fails here is retried by its actor, not every sync).
        self.following: dict[str, str] = {}
        #: The book's generation last written for completion (``_store.REPLICA_FILE``).
        self.published = -1

    async def on_start(self) -> None:
        sources = await trio.to_thread.run_sync(_store.load_sources, self.config.store)
        # What a CLI run leased through a refresh or remove, and what a crash
        # left half-deleted, goes now (this process owns the data dir).
        await trio.to_thread.run_sync(sweep, self.config.sources_dir, pinned_trees(sources))
        for source in sources:
            await self._start(source.spec.name, SourceActor(self.book, self.config, source, None))
        if self.config.store.clustered:
            self._helpers.start_soon(self._tick)

    async def _tick(self) -> None:
        ref = self.ref
        while True:
            await trio.sleep(SYNC_INTERVAL)
            try:
                ref.cast_nowait(SyncRegistry())
            except trio.WouldBlock:
                pass  # busy: the next tick asks again
            except ActorStopped:
                return

    async def _sync(self) -> None:
        """Follow the shared registry: check out (here, on demand) the sources another
        server added, follow its refreshes (their commit), drop the ones it removed.

        A source's row names the checkout of the server that saved it last; each
        server checks out into its own data dir and keeps its own path in its book.
        """
        sources = await trio.to_thread.run_sync(_store.load_sources, self.config.store)
        listed = {source.spec.name.lower(): source for source in sources}
        for key, source in listed.items():
            if key in self.pending:
                continue
            entry = self.book.get(source.spec.name)
            if entry is None:
                try:
                    await self._start(source.spec.name,
                                      SourceActor(self.book, self.config, source, None))
                except DuplicateChildName:
                    pass  # its actor is still stopping (a remove here): next time
                continue
            commit = source.state.resolved_commit
            if (source.spec != entry.source.spec or (commit is not None and commit
                    != entry.source.state.resolved_commit)) and self.following.get(key) != (
                    f"{source.spec!r}@{commit}"):
                self.following[key] = f"{source.spec!r}@{commit}"
                try:
                    ref = self.checkouts.child(_child(source.spec.name)).value
                    ref.cast_nowait(_Materialise(source.spec, None, commit))
                except (ChildNotFound, ActorStopped, RuntimeError, trio.WouldBlock):
                    self.following.pop(key, None)  # busy or gone: next time
        for entry in self.book.listing():
            key = entry.source.name.lower()
            if key not in listed and key not in self.pending:
                await self._forget(entry.source.name)
        if self.book.generation != self.published:
            # For completion on this host: the rows name other hosts' checkouts.
            self.published = self.book.generation
            try:
                await trio.to_thread.run_sync(
                    _store.write_replica_sources, self.config.sources_dir,
                    [entry.source for entry in self.book.listing()])
            except OSError as exc:
                _log.warning("cannot write %s for completion: %s", _store.REPLICA_FILE, exc)

    async def _start(self, name: str, actor: SourceActor) -> None:
        await self.checkouts.start_child(ChildSpec(
            _child(name), actor.run, restart=RestartPolicy.TRANSIENT, shutdown_timeout=5.0))

    async def handle(self, message: SourcesMessage) -> None:
        try:
            if isinstance(message, Add):
                await self._add(message)
            elif isinstance(message, Refresh):
                await self._refresh(message)
            elif isinstance(message, PinDigest):
                await self._pin(message)
            elif isinstance(message, SyncRegistry):
                await self._sync()
            else:
                await self._remove(message)
        except FlwdError as exc:
            if message.reply is not None and not message.reply.done:
                message.reply.fail(exc)

    async def _add(self, message: Add) -> None:
        spec = message.spec
        key = spec.name.lower()
        if key in self.pending:
            raise SourceExists(f"source {spec.name!r} is being registered right now",
                               hint="wait for that request to finish")
        entry = self.book.get(spec.name)
        if entry is not None:
            check_location(entry.source, spec)
            await self._forward(spec.name, _Materialise(spec, message.reply))
            return
        # The checkout may take long: the new actor does it while this inbox
        # keeps serving; the name stays reserved until it succeeded or failed.
        self.pending.add(key)
        slot = ReplySlot[tuple[Source, bool]]()
        try:
            await self._start(spec.name, SourceActor(self.book, self.config, None,
                                                     _Materialise(spec, slot)))
        except BaseException:
            self.pending.discard(key)
            raise
        self._helpers.start_soon(self._first_answer, key, spec, slot, message.reply)

    async def _first_answer(self, key: str, spec: SourceSpec,
                            slot: ReplySlot[tuple[Source, bool]],
                            reply: ReplySlot[tuple[Source, bool]]) -> None:
        try:
            result = await slot.wait()
        except Exception as exc:
            # Nothing half-registered: no row, no files (a tree some run of an
            # earlier source of this name still uses stays until it ends).
            await trio.to_thread.run_sync(sweep_source, self.config.sources_dir, spec.name,
                                          None)
            reply.fail(exc)
        else:
            reply.reply(result)
        finally:
            self.pending.discard(key)

    async def run(self, *, task_status: trio.TaskStatus[ActorRef[SourcesMessage]] = (
            trio.TASK_STATUS_IGNORED)) -> None:
        """Serve requests; helpers (waiting for first checkouts) end with it."""
        async with trio.open_nursery() as helpers:
            self._helpers = helpers
            await super().run(task_status=task_status)
            helpers.cancel_scope.cancel()

    async def _forward(self, name: str, message: _Materialise) -> None:
        try:
            ref = self.checkouts.child(_child(name)).value
            await ref.cast(message)
        except (ChildNotFound, ActorStopped, RuntimeError):
            raise SourceNotFound(f"source {name!r} is not running",
                                 hint="try again in a moment") from None

    async def _refresh(self, message: Refresh) -> None:
        entry = self.book.get(message.name)
        if entry is None:
            raise _not_found(message.name)
        slot = ReplySlot[tuple[Source, bool]]()
        await self._forward(entry.source.name, _Materialise(entry.source.spec, slot))

        async def relay() -> None:
            try:
                source, _ = await slot.wait()
            except Exception as exc:
                message.reply.fail(exc)
            else:
                message.reply.reply(source)

        self._helpers.start_soon(relay)

    async def _pin(self, message: PinDigest) -> None:
        entry = self.book.get(message.name)
        if entry is None:
            return  # removed meanwhile
        try:
            ref = self.checkouts.child(_child(entry.source.name)).value
            ref.cast_nowait(_Pin(message.image, message.digest))
        except (ChildNotFound, ActorStopped, RuntimeError, trio.WouldBlock):
            _log.warning("source %s: digest %s not recorded (its actor is busy or gone)",
                         message.name, message.digest)

    async def _remove(self, message: Remove) -> None:
        entry = self.book.get(message.name)
        if entry is None:
            raise _not_found(message.name)
        try:
            await self.checkouts.stop_child(_child(entry.source.name))
        except ChildNotFound:
            pass
        await trio.to_thread.run_sync(_store.delete_source, self.config.store,
                                      entry.source.name)
        await self._forget(entry.source.name)
        message.reply.reply(entry.source)

    async def _forget(self, name: str) -> None:
        """Stop serving source ``name`` and delete its trees here (its row is gone)."""
        try:
            await self.checkouts.stop_child(_child(name))
        except ChildNotFound:
            pass
        self.book.drop(name)
        self.following.pop(name.lower(), None)
        # Its actor has released its lease; trees live runs use stay until a
        # later sweep.
        await trio.to_thread.run_sync(sweep_source, self.config.sources_dir, name, None)


def _child(name: str) -> str:
    return f"source:{name.lower()}"


def _not_found(name: str) -> SourceNotFound:
    return SourceNotFound(f"no source named {name!r}", hint="'flwd :sources list' lists them")


def _pinned(source: Source) -> Collection[Path]:
    """The trees a registered source points at (a local one: its folder, never swept)."""
    return [Path(source.state.checkout_path)] if source.state.checkout_path else []


def pinned_trees(sources: Iterable[Source]) -> dict[str, Collection[Path]]:
    """What :func:`~flwd.sources.sweep` keeps for the registered ``sources``."""
    return {source.name.lower(): _pinned(source) for source in sources}
