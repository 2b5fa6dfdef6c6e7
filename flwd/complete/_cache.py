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
    from ._index import Index

CACHE_DIR = "completion"


def cache_path(data_dir: str, root: str) -> str:
    """Where the index of ``root`` is kept (FNV-1a of the path names the file)."""
    digest = 0xCBF29CE484222325
    for byte in os.fsencode(root):
        digest = ((digest ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    name = os.path.basename(root)[:40] or "root"
    return os.path.join(data_dir, CACHE_DIR, f"{digest:016x}-{name}.idx")


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


def is_fresh(index: Index) -> bool:
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


def save(path: str, index: Index) -> bool:
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
