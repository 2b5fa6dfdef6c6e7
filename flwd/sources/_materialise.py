"""Turning a :class:`SourceSpec` into files on disk: the one step that does I/O per type.

Cancellation: git commands are terminated; a half-written mirror or tree is
never left under its final name (see ``_git``).
"""

from __future__ import annotations

import time
from pathlib import Path

import trio

from flwd.observe import UNOBSERVED, Observer

from ._allow import AllowList
from ._git import fetch_mirror, git, resolve_commit, write_tree
from ._model import SourceSpec, SourceState
from ._oci import OciContext, materialise_oci


def discovery_root(path: Path) -> Path:
    """Where a source's jobs are found: its ``scripts/`` when it has one, else itself.

    A repository usually keeps its jobs under ``scripts/`` (like a workspace);
    a folder registered as a source is usually such a ``scripts/`` already.
    """
    inner = path / "scripts"
    if inner.is_dir() and not (path / "config.d").is_dir():
        return inner
    return path


def source_dir(sources_dir: Path, name: str) -> Path:
    return sources_dir / name.lower()


async def materialise(spec: SourceSpec, allow: AllowList, sources_dir: Path, *,
                      pinned: str | None = None, oci: OciContext | None = None,
                      observer: Observer = UNOBSERVED) -> SourceState:
    """Check ``spec`` against the allow-list (or, for oci, the image policy) and make its
    files available.

    ``pinned``: for git, check out this commit instead of resolving the ref
    again (a restart keeps what was pinned; only a refresh moves it).
    ``oci``: the runtime, policy and profile oci sources are added with;
    ``observer`` is told of an oci image's pull and of a manifest found invalid.

    Raises:
        SourceNotAllowed / SourceInvalid: refused by the allow-list.
        SourceCheckoutFailed: git failed (clone, fetch, unknown ref…).
        ImageRegistryNotAllowed, ImageSignatureRequired, ContainerRuntimeUnavailable,
        OciFailed, AddonManifestInvalid: an oci source (see ``_oci``).
    """
    refreshed_at = time.time()
    if spec.type == "oci":
        return await materialise_oci(spec, oci, source_dir(sources_dir, spec.name),
                                     refreshed_at=refreshed_at, observer=observer)
    if spec.type == "local":
        real = await trio.to_thread.run_sync(allow.check_path, spec.ref)
        return SourceState(status="ready", root=str(discovery_root(real)),
                           checkout_path=str(real), resolved_path=str(real),
                           refreshed_at=refreshed_at)
    assert spec.url is not None
    await trio.to_thread.run_sync(allow.check_git, spec.url)
    home = source_dir(sources_dir, spec.name)
    mirror = home / "repo.git"
    if pinned is not None and (home / "trees" / pinned).is_dir():
        tree = home / "trees" / pinned
    else:
        await fetch_mirror(spec.url, mirror)
        if pinned is not None:
            await git("--git-dir", str(mirror), "cat-file", "-e", f"{pinned}^{{commit}}")
            commit = pinned
        else:
            commit = await resolve_commit(mirror, spec.ref)
        tree = await write_tree(mirror, commit, home / "trees")
    return SourceState(status="ready", root=str(discovery_root(tree)), checkout_path=str(tree),
                       resolved_commit=tree.name, refreshed_at=refreshed_at)
