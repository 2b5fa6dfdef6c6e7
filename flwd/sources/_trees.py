"""Source trees on disk, who uses them, and the one rule for deleting them.

A *tree* is a directory flwd made under ``<data>/sources`` that jobs run from: the
files of one git commit (``<name>/trees/<commit>``) or an add-on's home
(``<name>``, its cached manifest). A local source's folder is the user's and is
never a tree.

Every process that runs jobs from a tree holds a **lease** on it: a shared
``flock`` on the tree's directory, for as long as a run uses it (and, in a
server, for as long as its index points at it). Deleting a tree
(:func:`delete_tree`) takes an exclusive non-blocking ``flock`` on it first: when
that fails, some process uses the tree and it stays, for a later sweep (the next
refresh, remove or server start; :func:`sweep_source`). The kernel drops a
lease when its process exits, however it exits, so a crashed run never pins a
tree.

A deleted tree is first renamed out of the way (``.<name>.deleting-<hex>``,
under the lock) and then removed: a process leasing it afterwards finds the
path gone instead of a half-deleted tree. Blocking and instantaneous (no call
waits for a lock): call from a thread inside trio.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import shutil
from collections.abc import Collection, Iterable
from pathlib import Path
from types import TracebackType
from typing import Final

from flwd.errors import SourceCheckoutFailed

TREES: Final = "trees"
#: In the name of a tree being deleted (renamed away under its lock).
_DELETING: Final = ".deleting-"


class TreeLease:
    """A shared lock on a tree: while it is held, no flwd process deletes the tree."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Give the tree up (idempotent); it may be swept from now on."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def __enter__(self) -> TreeLease:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"TreeLease({str(self.path)!r}, held={self.held})"


def is_tree(sources_dir: Path, checkout: Path) -> bool:
    """``checkout`` is a tree flwd manages (under ``sources_dir``), not a user's folder."""
    return checkout.is_relative_to(sources_dir) and checkout != sources_dir


def lease_tree(path: Path) -> TreeLease:
    """Lease the tree at ``path`` (until :meth:`TreeLease.release`, or the process exits).

    Raises:
        SourceCheckoutFailed: the tree is gone, or being deleted right now.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        raise _gone(path) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        # A deleter renames the tree away under its exclusive lock: had that
        # happened between our open and our lock, the path names something else
        # now (or nothing), and what we hold is on its way out.
        if not _same_file(fd, path):
            raise BlockingIOError
    except OSError:
        os.close(fd)
        raise _gone(path) from None
    return TreeLease(path, fd)


def lease_checkout(sources_dir: Path, checkout: Path) -> TreeLease | None:
    """Lease ``checkout`` when it is a tree flwd manages; None for a user's folder.

    Raises:
        SourceCheckoutFailed: the tree is gone, or being deleted right now.
    """
    return lease_tree(checkout) if is_tree(sources_dir, checkout) else None


def delete_tree(path: Path) -> bool:
    """Delete the tree at ``path`` unless a process leases it: the one rule every
    deletion of a tree follows (server and CLI). True when it is gone."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # leased: a later sweep takes it
        if not _same_file(fd, path):
            return False  # replaced meanwhile: that one is decided on its own
        doomed = path.with_name(f".{path.name}{_DELETING}{secrets.token_hex(4)}")
        os.rename(path, doomed)
    except OSError:
        return False
    finally:
        os.close(fd)
    shutil.rmtree(doomed, ignore_errors=True)
    return True


def sweep_source(sources_dir: Path, name: str, keep: Collection[Path] | None) -> list[Path]:
    """Delete what ``<sources_dir>/<name>`` holds that is not in ``keep`` and not leased;
    the trees deleted.

    ``keep``: the trees the registered source ``name`` points at; None when no
    source has that name any more (its mirror and folder go once no tree of it
    is leased). Files being written (dot-names) are left alone; the remains of
    an interrupted deletion are removed.
    """
    home = sources_dir / name.lower()
    kept = {Path(path) for path in keep or ()}
    deleted: list[Path] = []
    trees = home / TREES
    if trees.is_dir():
        left = False
        for tree in _entries(trees):
            if tree in kept or not delete_tree(tree):
                left = True
            else:
                deleted.append(tree)
        if keep is None and not left:
            _remove_dir(home)  # the mirror, and an empty trees/
    elif keep is None and home.is_dir() and delete_tree(home):
        deleted.append(home)  # an add-on's home is a tree itself
    return deleted


def sweep(sources_dir: Path, pinned: dict[str, Collection[Path]]) -> list[Path]:
    """:func:`sweep_source` for every folder under ``sources_dir``.

    ``pinned``: each registered source (lower-case name) → the trees it points
    at. Only for the process that owns the data dir (:mod:`flwd.daemon`): a
    tree written by another source change and not saved yet would look unused.
    """
    deleted: list[Path] = []
    for home in _entries(sources_dir):
        if home.is_dir():
            deleted += sweep_source(sources_dir, home.name, pinned.get(home.name.lower()))
    return deleted


def _entries(folder: Path) -> Iterable[Path]:
    """The entries of ``folder`` that are not dot-names (being written, or markers);
    the remains of interrupted deletions are removed on the way."""
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return []
    found = []
    for entry in entries:
        if not entry.name.startswith("."):
            found.append(entry)
        elif _DELETING in entry.name and entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
    return found


def _remove_dir(path: Path) -> None:
    doomed = path.with_name(f".{path.name}{_DELETING}{secrets.token_hex(4)}")
    try:
        os.rename(path, doomed)
    except OSError:
        return
    shutil.rmtree(doomed, ignore_errors=True)


def _same_file(fd: int, path: Path) -> bool:
    try:
        here, there = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _gone(path: Path) -> SourceCheckoutFailed:
    return SourceCheckoutFailed(
        f"the checkout {path} is gone (a refresh or remove of its source deleted it)",
        hint="run the job again; 'flwd :sources refresh NAME' restores a missing checkout")
