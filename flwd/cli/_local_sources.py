"""The job sources of the data dir, changed by this process (``:sources`` without ``--server``).

The request is validated with the server's own :func:`~flwd.sources.parse_request`,
the source is materialised (git clone/fetch and one immutable tree per pinned
commit) and indexed, and only then is its row written to the Core DB — so a
failure leaves nothing half-registered (no row, and no files for a source that
is new). These steps are the server's own too (:func:`~flwd.sources.registration`,
:func:`~flwd.sources.index_and_save`), run inline here.

A local change owns the data dir while it works (:mod:`flwd.daemon`): a
``flwd :serve`` running on it keeps its own registry in memory and leases the
trees it runs from, so a change behind its back would leave it serving what is
gone. It is refused, with one line saying how to send it to the server
(``--server``/``FLWD_SERVER``, remote mode: the same verbs through ``/sources``,
with the same output and exit statuses). A change sweeps the trees nothing
points at any more and no process leases (a run of another process keeps its
tree until a later change sweeps it).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flwd.containers import RUNTIME_MEMORY, require_runtime
from flwd.daemon import hold_data_dir
from flwd.errors import ContainerRuntimeUnavailable, FlwdError
from flwd.policy import load_policy, resolve_profile
from flwd.settings import Settings
from flwd.sources import (
    AllowList,
    OciContext,
    Source,
    SourceIndex,
    SourceSpec,
    SourceState,
    check_location,
    delete_source,
    index_and_save,
    index_source,
    inline,
    load_sources,
    materialise,
    pinned_trees,
    registration,
    source_document,
    sweep,
    sweep_source,
)

from ._backend import source_not_found


def list_local(settings: Settings) -> list[dict[str, Any]]:
    """The document of every registered source (as ``GET /sources``; the caller owns
    the data dir: it sees the aliases unless a source hides them with ``expose: none``)."""
    return [source_document(source, index_source(source)) for source in _load(settings)]


async def add_local(settings: Settings, spec: SourceSpec, allow_paths: Sequence[str],
                    git_hosts: Sequence[str], *, command: Sequence[str] = ()
                    ) -> tuple[dict[str, Any], bool]:
    """Register ``spec`` in the data dir; its document and True when the source is new.

    ``command``: the words of the request (for the refusal, when a server owns
    the data dir).

    **Cancellation:** a new source is left unregistered, without files.

    Raises:
        DataDirBusy: a server (or another change) owns the data dir.
        SourceExists: the name is taken by another repository (or type).
        SourceNotAllowed / SourceInvalid / SourceCheckoutFailed: as ``POST /sources``.
    """
    with _owning(settings, command or [":sources", "add", "--name", spec.name],
                 f":sources add {spec.name}"):
        return await _add(settings, spec, allow_paths, git_hosts)


async def _add(settings: Settings, spec: SourceSpec, allow_paths: Sequence[str],
               git_hosts: Sequence[str]) -> tuple[dict[str, Any], bool]:
    allow = AllowList.build(settings.scripts_root, allow_paths, git_hosts)
    existing = _find(settings, spec.name)
    check_location(existing, spec)
    try:
        state = await _materialise(settings, spec, allow)
        source = registration(spec, state, existing)
        index = await _save(settings, source)
    except BaseException:
        if existing is None:  # nothing half-registered: no row, no files
            # The files of a source that is not registered (leased trees stay).
            sweep_source(settings.data_dir / "sources", spec.name, None)
        raise
    return source_document(source, index), existing is None


async def refresh_local(settings: Settings, name: str) -> dict[str, Any]:
    """Materialise a registered source again from its ref; its new document.

    **Cancellation:** the source is left as it was (its last good checkout keeps
    serving), as on any failure.

    Raises:
        DataDirBusy: a server (or another change) owns the data dir.
    """
    with _owning(settings, [":sources", "refresh", name], f":sources refresh {name}"):
        source = _find(settings, name)
        if source is None:
            raise source_not_found(name)
        # What was allowed when the source was added stays allowed (the owner of the
        # data dir allowed it then); the location is still resolved again, so a
        # symlink re-pointed elsewhere since is refused.
        paths, hosts = _registered_location(source)
        allow = AllowList.build(settings.scripts_root, paths, hosts)
        state = await _materialise(settings, source.spec, allow)
        source = registration(source.spec, state, source)
        return source_document(source, await _save(settings, source))


def remove_local(settings: Settings, name: str) -> Source:
    """Delete a source's row, then its files under ``<data>/sources/<name>``, but for a
    tree a live run of any process still executes from (it goes with a later sweep).

    Raises:
        DataDirBusy: a server (or another change) owns the data dir.
    """
    with _owning(settings, [":sources", "remove", name], f":sources remove {name}"):
        source = _find(settings, name)
        if source is None:
            raise source_not_found(name)
        delete_source(settings.open_store(), source.name)
        return source


def _load(settings: Settings) -> list[Source]:
    return load_sources(settings.open_store())


def _find(settings: Settings, name: str) -> Source | None:
    return next((source for source in _load(settings)
                 if source.name.casefold() == name.casefold()), None)


@contextmanager
def _owning(settings: Settings, wanted: Sequence[str], command: str) -> Iterator[None]:
    """Own the data dir for a local change (refused while a server or another change
    owns it); at the end, delete the trees no registered source points at and no
    process leases."""
    with hold_data_dir(settings.data_dir, "sources", wanted, command=command):
        yield
        sweep(settings.data_dir / "sources", pinned_trees(_load(settings)))


def _registered_location(source: Source) -> tuple[list[str], list[str]]:
    """The folder (or git host) a registered source comes from, to allow it again."""
    if source.spec.type == "local":
        return ([source.state.resolved_path] if source.state.resolved_path else []), []
    if source.spec.type == "oci":  # checked against the image policy, not the allow-list
        return [], []
    url = source.spec.url or ""
    try:
        location = AllowList((Path(os.sep),)).check_git(url)
    except FlwdError:  # a remote repository (or one gone): its host
        host = urlsplit(url).hostname if "://" in url else url.rpartition("@")[2].partition(":")[0]
        return [], [host] if host else []
    return ([str(location.path)] if location.path is not None else []), []


async def _materialise(settings: Settings, spec: SourceSpec, allow: AllowList) -> SourceState:
    oci = _oci_context(settings) if spec.type == "oci" else None
    return await materialise(spec, allow, settings.data_dir / "sources", oci=oci)


def _oci_context(settings: Settings) -> OciContext:
    """This host's runtime, policy bundle and profile (``FLWD_PROFILE``), as a CLI run
    uses them: an oci source is checked here as the server would check it — with the
    runtime a container run would use (the first that works, not the first on PATH)."""
    try:
        runtime, unavailable = require_runtime(
            os.environ, memory=settings.data_dir / RUNTIME_MEMORY), None
    except ContainerRuntimeUnavailable as exc:
        runtime, unavailable = None, exc
    return OciContext(runtime, load_policy(os.environ, settings.workspace),
                      resolve_profile(environment=os.environ.get("FLWD_PROFILE")),
                      dict(os.environ), unavailable)


async def _save(settings: Settings, source: Source) -> SourceIndex:
    """Index ``source``, then write its row (inline: where a Ctrl-C lands, as in plain
    code); its index.

    **Cancellation:** no checkpoint.
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return await index_and_save(settings.open_store(), source, blocking=inline)
