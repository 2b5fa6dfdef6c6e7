"""``flwd :sources list|add|remove|refresh``: job sources of the data dir, or of a server.

Local mode works on the data dir directly, in this process: the request is
validated with the server's own :func:`~flwd.sources.parse_request`, the source is
materialised (git clone/fetch and one immutable tree per pinned commit) and
indexed, and only then is its row written to the Core DB — so a failure leaves
nothing half-registered (no row, and no files for a source that is new).

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

import json
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import trio
from cyclopts import App, Parameter

from flwd.errors import SourceExists, SourceNotFound, UsageError

from ._context import CONTEXT
from ._render import table

if TYPE_CHECKING:
    from flwd.jobs import Job
    from flwd.settings import Settings
    from flwd.sources import Source, SourceIndex, SourceSpec

    from ._remote import Client

sources_app = App(name=":sources",
                  help="Manage job sources: local folders, git repositories and OCI add-on "
                       "images whose jobs run as `flwd SOURCE/JOB`.")


def job_source(job: Job) -> dict[str, str]:
    """The ``source`` block of a source's job in ``:jobs --json`` (as in ``GET /jobs``)."""
    return {"name": str(job.source), "type": str((job.origin or {}).get("type", "local"))}


def _dumps(value: object) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


# -- verbs ---------------------------------------------------------------------


@sources_app.command(name="list")
def list_command(*, json: bool = False) -> int:
    """List the sources: NAME TYPE REF STATUS JOBS RESOLVED.

    Parameters
    ----------
    json
        Print the sources as a JSON array (the documents of GET /sources).
    """
    if (server := CONTEXT.server_url()) is not None:
        documents = trio.run(_remote_list, server)
    else:
        settings = CONTEXT.settings(require_scripts=False)
        documents = [_document(source, _index(source)) for source in _load(settings)]
    documents.sort(key=lambda document: str(document.get("name", "")).casefold())
    if json:
        print(_dumps(documents))
    elif not documents:
        print("(no sources configured)")
    else:
        print(table(["NAME", "TYPE", "REF", "STATUS", "JOBS", "RESOLVED"],
                    [_row(document) for document in documents]))
    return 0


@sources_app.command(name="add")
def add_command(
    *,
    kind: Annotated[str | None, Parameter(name="--type")] = None,
    name: str | None = None,
    ref: str | None = None,
    url: str | None = None,
    expose: str | None = None,
    pull_policy: str | None = None,
    trusted: bool = False,
    allow_path: list[str] | None = None,
    git_allow_host: list[str] | None = None,
    json: bool = False,
) -> int:
    """Register a source (or update one: a new ref of the same repository or folder).

    Parameters
    ----------
    kind
        `local` (a folder on this host), `git` (a repository pinned to a commit) or
        `oci` (an add-on image with /flwd-addon/manifest.yaml).
    name
        One word naming the source (its jobs are NAME/JOB); default: the folder's or
        repository's base name.
    ref
        local: the folder (relative to the scripts root); git: a branch, tag or commit;
        oci: the image, e.g. ghcr.io/example/addon:1.0.0.
    url
        git: the repository, e.g. file:///srv/repos/tools.git.
    expose
        none, read (default) or readwrite: whether the source's aliases are shown.
    pull_policy
        oci: `on-add` (default; pull now and pin the digest) or `on-run` (pull nothing
        now — the image must be present — and defer pulls to runs).
    trusted
        oci: opt in to running the image to read its manifest (required).
    allow_path
        Local mode: another folder sources may come from, besides the scripts root
        (repeatable; also FLWD_ALLOW_PATHS). A server uses its own `:serve --allow-path`.
    git_allow_host
        Local mode: a host git sources may be cloned from (repeatable; also
        FLWD_GIT_ALLOW_HOSTS).
    json
        Print the source's document (as POST /sources answers).
    """
    from flwd.sources import parse_request

    body: dict[str, Any] = {key: value for key, value in (
        ("type", kind), ("name", name), ("ref", ref), ("url", url), ("expose", expose),
        ("pull_policy", pull_policy), ("trusted", True if trusted else None))
        if value is not None}
    # Checked here in both modes: the same one-line errors, before any git or HTTP.
    spec = parse_request(body)
    if (server := CONTEXT.server_url()) is not None:
        if allow_path or git_allow_host:
            raise UsageError("--allow-path and --git-allow-host apply to local mode only",
                             hint="the server's allow-list is set by 'flwd :serve "
                                  "--allow-path DIR --git-allow-host HOST'")
        document, created = trio.run(_remote_add, server, body)
    else:
        settings = CONTEXT.settings(require_scripts=False)
        words = [":sources", "add"]
        for key, value in body.items():
            words += [f"--{key.replace('_', '-')}"] if value is True else \
                [f"--{key.replace('_', '-')}", str(value)]
        document, created = add_local(settings, spec, allow_path or (), git_allow_host or (),
                                      command=words)
    if json:
        print(_dumps(document))
    else:
        print(f"Source {document['name']} ({document['type']}) "
              f"{'added' if created else 'updated'}")
    return 0


@sources_app.command(name="refresh")
def refresh_command(name: str, /, *, json: bool = False) -> int:
    """Resolve a source's ref again (a branch moves to its newest commit) and re-index it.

    Runs already started keep executing from the commit they were planned against.

    Parameters
    ----------
    name
        The source.
    json
        Print the source's document.
    """
    if (server := CONTEXT.server_url()) is not None:
        document = trio.run(_remote_refresh, server, name)
    else:
        document = refresh_local(CONTEXT.settings(require_scripts=False), name)
    if json:
        print(_dumps(document))
    else:
        pinned = document.get("resolved_commit") or document.get("resolved_ref")
        print(f"Source {document['name']} ({document['type']}) refreshed"
              + (f" at {str(pinned)[:12] if document['type'] == 'git' else pinned}"
                 if pinned else ""))
    return 0


@sources_app.command(name="remove")
def remove_command(name: str, /) -> int:
    """Unregister a source; its jobs disappear and its checkout under the data dir is deleted.

    A local source's folder is never touched.

    Parameters
    ----------
    name
        The source.
    """
    if (server := CONTEXT.server_url()) is not None:
        trio.run(_remote_remove, server, name)
        shown = name
    else:
        shown = remove_local(CONTEXT.settings(require_scripts=False), name).name
    print(f"Source {shown} removed")
    return 0


# -- local mode ----------------------------------------------------------------


def _load(settings: Settings) -> list[Source]:
    from flwd.sources import load_sources

    return load_sources(settings.open_store())


def _find(settings: Settings, name: str) -> Source | None:
    return next((source for source in _load(settings)
                 if source.name.casefold() == name.casefold()), None)


def _index(source: Source) -> SourceIndex:
    from flwd.sources import index_source

    return index_source(source)


def _document(source: Source, index: SourceIndex) -> dict[str, Any]:
    """What ``GET /sources/{name}`` answers (the caller owns the data dir: it sees the
    aliases unless the source hides them with ``expose: none``)."""
    aliases: list[dict[str, Any]] | None = None if source.spec.expose == "none" else [
        {key: alias[key] for key in ("from", "to", "description") if key in alias}
        for alias in index.alias_entries]
    return source.to_json(jobs=len(index.catalog.jobs), aliases=aliases)


@contextmanager
def _owning(settings: Settings, wanted: Sequence[str], command: str) -> Iterator[None]:
    """Own the data dir for a local change (refused while a server or another change
    owns it); sweep the trees nothing uses any more at the end."""
    from flwd.daemon import hold_data_dir

    with hold_data_dir(settings.data_dir, "sources", wanted, command=command):
        yield
        _sweep(settings)


def add_local(settings: Settings, spec: SourceSpec, allow_paths: Sequence[str],
              git_hosts: Sequence[str], *, command: Sequence[str] = ()
              ) -> tuple[dict[str, Any], bool]:
    """Register ``spec`` in the data dir; its document and True when the source is new.

    ``command``: the words of the request (for the refusal, when a server owns
    the data dir).

    Raises:
        DataDirBusy: a server (or another change) owns the data dir.
        SourceExists: the name is taken by another repository (or type).
        SourceNotAllowed / SourceInvalid / SourceCheckoutFailed: as ``POST /sources``.
    """
    with _owning(settings, command or [":sources", "add", "--name", spec.name],
                 f":sources add {spec.name}"):
        return _add(settings, spec, allow_paths, git_hosts)


def _add(settings: Settings, spec: SourceSpec, allow_paths: Sequence[str],
         git_hosts: Sequence[str]) -> tuple[dict[str, Any], bool]:
    from flwd.sources import AllowList, Source

    allow = AllowList.build(settings.scripts_root, allow_paths, git_hosts)
    existing = _find(settings, spec.name)
    if existing is not None and not existing.spec.same_location(spec):
        raise SourceExists(
            f"a {existing.spec.type} source named {spec.name!r} already exists "
            f"({existing.spec.url or existing.spec.ref})",
            hint="choose another name, or remove the existing source first")
    try:
        state = _materialise(settings, spec, allow)
        wall = time.time()
        source = Source(spec, state, created_at=existing.created_at if existing else wall,
                        updated_at=wall)
        index = _index(source)
        _save(settings, source)
    except BaseException:
        if existing is None:  # nothing half-registered: no row, no files
            _delete_files(settings, spec.name)
        raise
    return _document(source, index), existing is None


def refresh_local(settings: Settings, name: str) -> dict[str, Any]:
    """Materialise a registered source again from its ref; its new document.

    A failure leaves the source as it was (its last good checkout keeps serving).

    Raises:
        DataDirBusy: a server (or another change) owns the data dir.
    """
    with _owning(settings, [":sources", "refresh", name], f":sources refresh {name}"):
        return _refresh(settings, name)


def _refresh(settings: Settings, name: str) -> dict[str, Any]:
    from flwd.sources import AllowList

    source = _find(settings, name)
    if source is None:
        raise _not_found(name)
    # What was allowed when the source was added stays allowed (the owner of the
    # data dir allowed it then); the location is still resolved again, so a
    # symlink re-pointed elsewhere since is refused.
    paths, hosts = _registered_location(source)
    allow = AllowList.build(settings.scripts_root, paths, hosts)
    state = _materialise(settings, source.spec, allow)
    source = source.with_state(state, time.time())
    index = _index(source)
    _save(settings, source)
    return _document(source, index)


def _registered_location(source: Source) -> tuple[list[str], list[str]]:
    """The folder (or git host) a registered source comes from, to allow it again."""
    from urllib.parse import urlsplit

    from flwd.errors import FlwdError
    from flwd.sources import AllowList

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


def remove_local(settings: Settings, name: str) -> Source:
    """Delete a source's row, then its files under ``<data>/sources/<name>``, but for a
    tree a live run of any process still executes from (it goes with a later sweep).

    Raises:
        DataDirBusy: a server (or another change) owns the data dir.
    """
    from flwd.sources import delete_source

    with _owning(settings, [":sources", "remove", name], f":sources remove {name}"):
        source = _find(settings, name)
        if source is None:
            raise _not_found(name)
        delete_source(settings.open_store(), source.name)
        return source


def _materialise(settings: Settings, spec: SourceSpec, allow: Any) -> Any:
    from functools import partial

    from flwd.sources import materialise

    oci = _oci_context(settings) if spec.type == "oci" else None
    return trio.run(partial(materialise, spec, allow, settings.data_dir / "sources", oci=oci))


def _oci_context(settings: Settings) -> Any:
    """This host's runtime, policy bundle and profile (``FLWD_PROFILE``), as a CLI run
    uses them: an oci source is checked here as the server would check it."""
    from flwd.containers import detect_runtime
    from flwd.policy import load_policy, resolve_profile
    from flwd.sources import OciContext

    return OciContext(detect_runtime(), load_policy(os.environ, settings.workspace),
                      resolve_profile(environment=os.environ.get("FLWD_PROFILE")),
                      dict(os.environ))


def _save(settings: Settings, source: Source) -> None:
    from flwd.sources import save_source

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    save_source(settings.open_store(), source)


def _delete_files(settings: Settings, name: str) -> None:
    """The files of a source that is not registered (leased trees stay)."""
    from flwd.sources import sweep_source

    sweep_source(settings.data_dir / "sources", name, None)


def _sweep(settings: Settings) -> None:
    """Delete the trees no registered source points at and no process leases."""
    from flwd.sources import pinned_trees, sweep

    sweep(settings.data_dir / "sources", pinned_trees(_load(settings)))


def _not_found(name: str) -> SourceNotFound:
    return SourceNotFound(f"no source named {name!r}", hint="'flwd :sources list' lists them")


def _row(document: dict[str, Any]) -> list[str]:
    resolved = str(document.get("resolved_commit") or document.get("resolved_ref") or "-")
    if document.get("type") == "git" and document.get("resolved_commit"):
        resolved = resolved[:12]
    elif document.get("type") == "oci":
        resolved = resolved[:19] if document.get("digest") else "(digest on first run)"
    status = str(document.get("status", "?"))
    return [str(document.get("name")), str(document.get("type")), str(document.get("ref", "")),
            status, str(document.get("jobs", "-")), resolved]


# -- remote mode ---------------------------------------------------------------


def _client(server: str) -> Client:
    from ._remote import Client

    return Client(server)


def _path(name: str) -> str:
    from urllib.parse import quote

    if not name or name.strip(".") == "":
        raise _not_found(name)
    return f"/sources/{quote(name, safe='')}"


async def _remote_list(server: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    async with _client(server) as client:
        page = 1
        while True:
            batch = await client.json("GET", "/sources", params={"per_page": 200, "page": page})
            found += batch
            if len(batch) < 200:
                return found
            page += 1


async def _remote_add(server: str, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    async with _client(server) as client:
        response = await client.request("POST", "/sources", body=body)
        document: dict[str, Any] = client.decode(response)
    return document, response.status_code == 201


async def _remote_refresh(server: str, name: str) -> dict[str, Any]:
    async with _client(server) as client:
        document: dict[str, Any] = await client.json("POST", f"{_path(name)}:refresh")
    return document


async def _remote_remove(server: str, name: str) -> None:
    async with _client(server) as client:
        await client.request("DELETE", _path(name))
