"""The source lifecycle both owners of a registry share: a server's source actors
(``_registry``) and a CLI change of the data dir (``flwd :sources`` without a server).

One registration, whoever makes it::

    materialise(spec)           the files (``_materialise``), checked against the allow-list
    registration(…, previous)   the Source: the created_at of an earlier registration kept
    index_and_save(store, …)    its jobs indexed, and only then its row written

with :func:`check_location` (a name names one location) before it, and
:func:`source_document` (what ``GET /sources/{name}`` answers) after. What differs
between the two owners stays theirs: a server leases the trees it serves from,
retries in the background and publishes in its book; a CLI change owns the data dir
while it works and sweeps at its end.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from functools import partial
from typing import Any, Protocol, TypeVar

import trio

from flwd.errors import SourceExists, SourceNotFound
from flwd.store import Store

from ._index import SourceIndex, index_source
from ._model import Source, SourceSpec, SourceState
from ._store import save_source, update_source

T = TypeVar("T")


class Blocking(Protocol):
    """How blocking work (indexing, the store) is run: :func:`in_thread` or :func:`inline`."""

    def __call__(self, fn: Callable[[], T], /) -> Awaitable[T]: ...


async def in_thread(fn: Callable[[], T]) -> T:
    """Run ``fn`` in a worker thread: a server's loop keeps serving meanwhile.

    **Cancellation:** ``fn`` runs to its end; the caller is cancelled at its next
    checkpoint.
    """
    return await trio.to_thread.run_sync(fn)


async def inline(fn: Callable[[], T]) -> T:
    """Run ``fn`` right here: a CLI verb runs nothing else meanwhile, and a Ctrl-C
    raises ``KeyboardInterrupt`` where it lands, as in plain code.

    **Cancellation:** no checkpoint.
    """
    return fn()


def check_location(existing: Source | None, spec: SourceSpec) -> None:
    """Refuse ``spec`` when its name is registered for another location (or type).

    The same location again is an update of ``existing`` (a new ref, say).

    Raises:
        SourceExists: the name is taken by another repository, folder or image.
    """
    if existing is not None and not existing.spec.same_location(spec):
        raise SourceExists(
            f"a {existing.spec.type} source named {spec.name!r} already exists "
            f"({existing.spec.url or existing.spec.ref})",
            hint="choose another name, or remove the existing source first")


def registration(spec: SourceSpec, state: SourceState, previous: Source | None, *,
                 refreshed_now: bool = False) -> Source:
    """The Source that registers ``spec`` materialised as ``state``, updated now.

    ``previous``: the registration it replaces (its ``created_at`` is kept; None:
    the source is new, created now). ``refreshed_now``: stamp ``refreshed_at`` with
    this moment too (a server's registry); otherwise it stays when materialisation
    started (a CLI change).
    """
    wall = time.time()
    if refreshed_now:
        state = replace(state, refreshed_at=wall)
    return Source(spec, state, created_at=previous.created_at if previous else wall,
                  updated_at=wall)


async def index_and_save(store: Store, source: Source, *, blocking: Blocking = in_thread,
                         create: bool = True) -> SourceIndex:
    """Index ``source``'s jobs, then save it through ``store``; its index.

    The row is written only once the jobs could be indexed, so a failure leaves the
    registration as it was. ``create=False`` (a checkout no request asked for: a
    restore, a retry, following another server) writes it only if it is still
    registered, so a source removed through another server meanwhile stays removed.

    **Cancellation:** with :func:`in_thread`, a cancel while indexing lets the
    indexing finish and stops before the row is written; with :func:`inline`, no
    checkpoint.

    Raises:
        FlwdError: the store cannot be written (or the jobs read).
        OSError: the data dir cannot be read or written.
    """
    index = await blocking(partial(index_source, source))
    if create:
        await blocking(partial(save_source, store, source))
    elif not await blocking(partial(update_source, store, source)):
        raise SourceNotFound(f"source {source.name!r} was removed meanwhile",
                             hint="'flwd :sources list' lists the sources")
    return index


def source_document(source: Source, index: SourceIndex, *, show_aliases: bool = True
                    ) -> dict[str, Any]:
    """What ``GET /sources/{name}`` answers for ``source`` indexed as ``index``.

    ``show_aliases``: the caller may see aliases (the owner of the data dir, a
    client with a write scope, or any client under ``aliases_public``); a source
    with ``expose: none`` hides them anyway.
    """
    aliases: list[dict[str, Any]] | None = [
        {key: alias[key] for key in ("from", "to", "description") if key in alias}
        for alias in index.alias_entries
    ] if show_aliases and source.spec.expose != "none" else None
    return source.to_json(jobs=len(index.catalog.jobs), aliases=aliases)
