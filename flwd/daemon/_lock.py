"""The data dir's owner lock: ``<data>/serve.lock`` (flock) and ``<data>/serve.json``.

Blocking but instantaneous (never waits for the lock). Imports nothing heavy: a
thin client will read the owner from here.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path
from types import TracebackType
from typing import Final

from ._owner import Owner, OwnerKind, refusal

LOCK_FILE: Final = "serve.lock"
OWNER_FILE: Final = "serve.json"
#: A serve.json larger than this is not one of ours.
_MAX_OWNER_BYTES: Final = 64 * 1024


class DataDirLock:
    """The held lock of a data dir (:func:`hold_data_dir`); :meth:`release` gives it up.

    The lock file itself is never deleted: a process that opened it just before
    would lock a file nobody else sees. The kernel releases the lock when the
    process exits, however it exits, so nothing here needs cleaning up after a
    crash; ``serve.json`` may stay behind, naming a process that holds nothing.
    """

    def __init__(self, data_dir: Path, fd: int, owner: Owner) -> None:
        self.data_dir = data_dir
        self.owner = owner
        self._fd: int | None = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def publish(self, owner: Owner) -> bool:
        """Write ``owner`` to ``serve.json`` (atomically: a reader sees the old or the new);
        False when it cannot be written (a full disk): the lock still holds, and refused
        commands get a message that names no one."""
        if self._fd is None:
            raise RuntimeError("the data dir lock was released")
        self.owner = owner
        target = self.data_dir / OWNER_FILE
        temporary = self.data_dir / f".{OWNER_FILE}.{os.urandom(4).hex()}"
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(json.dumps(owner.to_json()) + "\n")
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, target)
        except OSError:
            with suppress(OSError):
                target.unlink(missing_ok=True)  # better no description than a stale one
            return False
        finally:
            with suppress(OSError):
                temporary.unlink(missing_ok=True)
        return True

    def release(self) -> None:
        """Say nobody holds the data dir, then give up the lock (idempotent)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            # Still holding the lock: the next owner publishes only after we unlock.
            (self.data_dir / OWNER_FILE).unlink(missing_ok=True)
        except OSError:
            pass  # only a description; the lock is what counts
        finally:
            os.close(fd)

    def __enter__(self) -> DataDirLock:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def hold_data_dir(data_dir: Path, kind: OwnerKind, wanted: Sequence[str], *,
                  command: str | None = None, url: str | None = None,
                  scripts_root: str | None = None) -> DataDirLock:
    """Own ``data_dir`` (created if needed) as a ``kind`` process; its lock, published.

    ``wanted``: the words of the command asking (``[":serve"]``, ``[":sources",
    "refresh", "tools"]``), for the message when it is refused; ``command``: how
    a ``sources`` owner is named to others (default: those words).

    Raises:
        DataDirBusy: another process owns it (one line: who, and what to do).
        OSError: the data dir cannot be created or written.
    """
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise refusal(read_owner(data_dir), wanted) from None
    except BaseException:
        os.close(fd)
        raise
    pid = os.getpid()
    owner = Owner(kind, pid, start_time(pid), url=url, scripts_root=scripts_root,
                  command=(command or " ".join(wanted)) if kind == "sources" else None)
    lock = DataDirLock(data_dir, fd, owner)
    try:
        lock.publish(owner)
    except BaseException:
        lock.release()
        raise
    return lock


def read_owner(data_dir: Path) -> Owner | None:
    """The process ``serve.json`` names, if it still runs; None otherwise.

    Only a description: whether the data dir is owned is the lock's to say
    (:func:`hold_data_dir`).
    """
    try:
        with open(data_dir / OWNER_FILE, "rb") as f:
            raw = f.read(_MAX_OWNER_BYTES + 1)
        owner = Owner.from_json(json.loads(raw)) if len(raw) <= _MAX_OWNER_BYTES else None
    except (OSError, ValueError):
        return None
    if owner is None or start_time(owner.pid) is None or (
            owner.start is not None and start_time(owner.pid) != owner.start):
        return None
    return owner


def start_time(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot; field 22 of ``/proc/<pid>/stat``),
    None when it is gone or a zombie: with the pid, an identity across pid reuse."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode("ascii", "replace")
    except OSError:
        return None
    # The command name may hold spaces and parentheses: split after the last ')'.
    fields = raw[raw.rfind(")") + 2:].split()
    if len(fields) < 20 or fields[0] in ("Z", "X"):
        return None
    try:
        return int(fields[19])
    except ValueError:
        return None
