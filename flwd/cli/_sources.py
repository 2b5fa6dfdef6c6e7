"""``flwd :sources list|add|remove|refresh``: job sources of the data dir, or of a server.

Each verb is written once against the backend: locally, the data dir is changed
in this process (:mod:`flwd.cli._local_sources`, refused while a server owns the
data dir); with ``--server``, the same verbs go through ``/sources``, with the
same output and exit statuses.
"""

from __future__ import annotations

from typing import Annotated, Any

from cyclopts import App, Parameter

from ._mode import open_backend
from ._render import dumps, render_sources

sources_app = App(name=":sources", backend="trio",
                  help="Manage job sources: local folders, git repositories and OCI add-on "
                       "images whose jobs run as `flwd SOURCE/JOB`.")


@sources_app.command(name="list")
async def list_command(*, json: bool = False) -> int:
    """List the sources: NAME TYPE REF STATUS JOBS RESOLVED.

    Parameters
    ----------
    json
        Print the sources as a JSON array (the documents of GET /sources).
    """
    async with open_backend() as backend:
        documents = await backend.list_sources()
    documents.sort(key=lambda document: str(document.get("name", "")).casefold())
    print(dumps(documents) if json else render_sources(documents))
    return 0


@sources_app.command(name="add")
async def add_command(
    *,
    kind: Annotated[str | None, Parameter(name="--type")] = None,
    name: str | None = None,
    ref: str | None = None,
    url: str | None = None,
    expose: str | None = None,
    pull_policy: str | None = None,
    trusted: bool = False,
    verify_signatures: bool = False,
    schedules: bool = False,
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
        local: the folder (relative to the scripts root); git: a branch, tag or commit
        (default HEAD, the repository's default branch); oci: the image, e.g.
        ghcr.io/example/addon:1.0.0.
    url
        git: the repository, e.g. file:///srv/repos/tools.git.
    expose
        none, read (default) or readwrite: whether the source's aliases are shown.
    pull_policy
        oci: `on-add` (default; pull now and pin the digest) or `on-run` (pull nothing
        now — the image must be present — and defer pulls to runs). flowd's `always`
        (= on-add), `ifNotPresent` and `never` (= on-run) are accepted too.
    trusted
        oci: opt in to running the image to read its manifest (required).
    verify_signatures
        oci: refuse the image unless its signature verifies (with cosign), whatever
        the verify mode of the policy; refused while that mode is `disabled`.
    schedules
        local, git: let the schedule: entries of its jobs fire (by default a source's
        jobs run only when asked: its schedules are listed as ignored).
    allow_path
        Local mode: another folder sources may come from, besides the scripts root
        (repeatable; also FLWD_ALLOW_PATHS). A server uses its own `:serve --allow-path`.
    git_allow_host
        Local mode: a host git sources may be cloned from (repeatable; also
        FLWD_GIT_ALLOW_HOSTS).
    json
        Print the source's document (as POST /sources answers).
    """
    # Imported here to keep start-up fast: every verb registers this one.
    from flwd.sources import parse_request

    body: dict[str, Any] = {key: value for key, value in (
        ("type", kind), ("name", name), ("ref", ref), ("url", url), ("expose", expose),
        ("pull_policy", pull_policy), ("trusted", True if trusted else None),
        ("verify_signatures", True if verify_signatures else None),
        ("schedules", True if schedules else None))
        if value is not None}
    # Checked here in both modes: the same one-line errors, before any git or HTTP.
    spec = parse_request(body)
    async with open_backend() as backend:
        document, created = await backend.add_source(body, spec, allow_paths=allow_path or (),
                                                     git_hosts=git_allow_host or ())
    if json:
        print(dumps(document))
    else:
        print(f"Source {document['name']} ({document['type']}) "
              f"{'added' if created else 'updated'}")
    return 0


@sources_app.command(name="refresh")
async def refresh_command(name: str, /, *, json: bool = False) -> int:
    """Resolve a source's ref again (a branch moves to its newest commit) and re-index it.

    Runs already started keep executing from the commit they were planned against.

    Parameters
    ----------
    name
        The source.
    json
        Print the source's document.
    """
    async with open_backend() as backend:
        document = await backend.refresh_source(name)
    if json:
        print(dumps(document))
    else:
        pinned = document.get("resolved_commit") or document.get("resolved_ref")
        print(f"Source {document['name']} ({document['type']}) refreshed"
              + (f" at {str(pinned)[:12] if document['type'] == 'git' else pinned}"
                 if pinned else ""))
    return 0


@sources_app.command(name="remove")
async def remove_command(name: str, /) -> int:
    """Unregister a source; its jobs disappear and its checkout under the data dir is deleted.

    A local source's folder is never touched.

    Parameters
    ----------
    name
        The source.
    """
    async with open_backend() as backend:
        shown = await backend.remove_source(name)
    print(f"Source {shown} removed")
    return 0
