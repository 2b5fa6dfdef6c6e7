"""The job index cache: one :mod:`marshal` file per scripts root in the data dir.

``<data dir>/completion/<hash>-<root name>.idx`` holds the index of one scripts
root (its absolute path is stored inside and checked, so a hash collision is
only a rebuild). An index is *fresh* when every directory it records still has
its ``st_mtime_ns`` and every config file its ``st_mtime_ns`` and ``st_size``:
checking is only ``stat`` calls, never a directory listing, because a new or
removed job directory changes the modification time of its parent.

Nothing here raises for a missing, corrupt or unwritable cache: the caller then
rebuilds, or answers without caching. Writes are atomic (a temporary file in
the same directory, then :func:`os.replace`), so a reader never sees half an
index and concurrent writers only race to store equivalent content.
"""

from __future__ import annotations

import marshal
import os

from ._index import FORMAT

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from ._index import Index

CACHE_DIR = "completion"


def cache_path(data_dir: str, root: str, *, folder: str = CACHE_DIR, suffix: str = ".idx"
               ) -> str:
    """Where the index of ``root`` is kept (FNV-1a of the path names the file); another
    ``folder`` and ``suffix`` for another cache of the same root."""
    digest = 0xCBF29CE484222325
    for byte in os.fsencode(root):
        digest = ((digest ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    name = os.path.basename(root)[:40] or "root"
    return os.path.join(data_dir, folder, f"{digest:016x}-{name}{suffix}")


def load(path: str, root: str) -> Index | None:
    """The index stored at ``path`` if it is one of this format for ``root``, else None."""
    try:
        with open(path, "rb") as file:
            # marshal.load(file) reads object by object: ten times slower than this.
            index = marshal.loads(file.read())
    except (OSError, EOFError, ValueError, TypeError):
        return None
    if (not isinstance(index, dict) or index.get("format") != FORMAT
            or index.get("root") != root):
        return None
    return index  # type: ignore[return-value]  # written by save(), checked above


def is_fresh(index: Mapping[str, Any]) -> bool:
    """Whether nothing the index was built from has changed since (``stat`` only)."""
    stat = os.stat
    try:
        for path, mtime in index["dirs"]:
            if stat(path).st_mtime_ns != mtime:
                return False
        for path, mtime, size in index["files"]:
            result = stat(path)
            if result.st_mtime_ns != mtime or (size >= 0 and result.st_size != size):
                return False
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return True


def stamp(root: str) -> tuple[list[tuple[str, int]], list[tuple[str, int, int]]]:
    """Every directory discovery enters and every file it reads, with their stats: what
    :func:`is_fresh` checks (the completion index's, and ``flwd JOB``'s run index's).

    A ``config.d`` without a config is recorded as a directory (size ``-1``): a
    config created in it changes its modification time. The walk mirrors
    ``flwd.jobs._discovery._config_files`` (same skipped directories, symlinked
    directories not followed). Blocking; it imports flwd.jobs (only a rebuild stamps).
    """
    from flwd.jobs import ALIASES_FILE, CONFIG_DIR, CONFIG_FILE, SKIPPED_DIRS

    dirs: list[tuple[str, int]] = []
    files: list[tuple[str, int, int]] = []
    aliases = os.path.join(root, ALIASES_FILE)
    try:
        result = os.stat(aliases)
        files.append((aliases, result.st_mtime_ns, result.st_size))
    except OSError:
        pass  # created later, it changes the root's modification time
    pending = [root]
    while pending:
        directory = pending.pop()
        try:
            dirs.append((directory, os.stat(directory).st_mtime_ns))
        except OSError:
            continue
        config_dir = os.path.join(directory, CONFIG_DIR)
        config = os.path.join(config_dir, CONFIG_FILE)
        try:
            result = os.stat(config)
            if os.path.isfile(config):
                files.append((config, result.st_mtime_ns, result.st_size))
            else:
                files.append((config_dir, os.stat(config_dir).st_mtime_ns, -1))
        except OSError:
            if os.path.isdir(config_dir):
                try:
                    files.append((config_dir, os.stat(config_dir).st_mtime_ns, -1))
                except OSError:
                    pass
        try:
            with os.scandir(directory) as entries:
                pending.extend(
                    entry.path for entry in entries
                    if entry.is_dir(follow_symlinks=False)
                    and entry.name not in SKIPPED_DIRS
                    and not entry.name.startswith(".")
                )
        except OSError:
            continue  # unreadable: discovery finds nothing there either
    return dirs, files


def save(path: str, index: Index | Mapping[str, Any]) -> bool:
    """Store ``index`` atomically; False (and nothing left behind) if that failed."""
    temporary = f"{path}.{os.getpid()}.tmp"
    try:
        folder = os.path.dirname(path)
        # The data dir is private (0700), like flwd makes it; create it so if missing.
        os.makedirs(os.path.dirname(folder), mode=0o700, exist_ok=True)
        os.makedirs(folder, mode=0o700, exist_ok=True)
        with open(temporary, "wb") as file:
            file.write(marshal.dumps(index))  # type: ignore[arg-type]  # plain containers
        os.replace(temporary, path)
    except (OSError, ValueError):
        try:
            os.unlink(temporary)
        except OSError:
            pass
        return False
    return True
