"""cgroup v2 look-ups and operations for containing host steps (blocking, sans-trio).

A step's processes live in their own cgroup, ``<base>/flwd-<run id>-<n>``, where
``<base>`` is the cgroup flwd itself runs in: flwd may create children there when
it runs as root or in a delegated subtree (a systemd service with ``Delegate=yes``).
Children are born in their parent's cgroup, and leaving one takes a write to another
cgroup's ``cgroup.procs``: however a process forks, detaches or clears its
environment, ``cgroup.kill`` (Linux >= 5.14) ends it with the rest of the step.

The cgroup2 hierarchy is found from the mount table, not assumed at
``/sys/fs/cgroup``: hosts in hybrid mode mount it at ``/sys/fs/cgroup/unified``.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

#: Names of step cgroups: ``flwd-<run id>-<n>``.
PREFIX = "flwd-"


@dataclass(frozen=True, slots=True)
class Mount:
    #: The path inside the hierarchy that is mounted (usually "/").
    root: str
    mountpoint: Path


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo.
    return field.encode().decode("unicode_escape").encode("latin-1").decode(
        "utf-8", "surrogateescape")


def cgroup2_mounts(mountinfo: str) -> list[Mount]:
    """The cgroup2 mounts listed in a ``/proc/<pid>/mountinfo`` text."""
    mounts = []
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if not sep or len(fields) < 5 or not right.split() or right.split()[0] != "cgroup2":
            continue
        mounts.append(Mount(_unescape(fields[3]), Path(_unescape(fields[4]))))
    return mounts


def unified_path(proc_cgroup: str) -> str | None:
    """The cgroup2 path in a ``/proc/<pid>/cgroup`` text (its ``0::`` line), if any."""
    for line in proc_cgroup.splitlines():
        if line.startswith("0::"):
            path = line[3:]
            return path.removesuffix(" (deleted)")
    return None


def resolve(mounts: list[Mount], path: str) -> Path | None:
    """Where cgroup ``path`` is in the file system, through the first mount that holds it."""
    for mount in mounts:
        root = mount.root.rstrip("/")
        if path == mount.root or path.startswith(root + "/"):
            return mount.mountpoint / path[len(root):].lstrip("/")
    return None


def own_cgroup() -> Path | None:
    """The directory of this process's cgroup2 cgroup, or None (no cgroup2 mounted)."""
    try:
        with open("/proc/self/mountinfo") as f:
            mounts = cgroup2_mounts(f.read())
        with open("/proc/self/cgroup") as f:
            path = unified_path(f.read())
    except OSError:
        return None
    if path is None:
        return None
    return resolve(mounts, path)


def probe(base: Path | None) -> str | None:
    """None when step cgroups can be made under ``base``, else why not (one clause).

    Creates and removes a probe cgroup: write access to the directory is not
    enough (a cgroup with controllers enabled for its children refuses).
    """
    if base is None:
        return "no cgroup2 hierarchy is mounted (see /proc/self/mountinfo)"
    if not os.access(base / "cgroup.procs", os.W_OK):
        return f"this process may not move processes in {base} (not root, not delegated)"
    probe_dir = base / f"{PREFIX}probe-{os.getpid()}"
    try:
        probe_dir.mkdir()
    except FileExistsError:
        pass
    except OSError as exc:
        return f"cannot create a cgroup under {base}: {exc.strerror or exc}"
    try:
        # Not in the root cgroup itself: only its children have one.
        if not (probe_dir / "cgroup.kill").exists():
            return f"cgroups under {base} have no cgroup.kill (it needs Linux 5.14 or later)"
    finally:
        try:
            probe_dir.rmdir()
        except OSError:
            pass
    return None


def create(base: Path, name: str) -> Path:
    path = base / name
    path.mkdir(mode=0o755)
    return path


def _walk(path: Path) -> Iterator[Path]:
    """``path`` and the cgroups below it (a step may have made its own)."""
    yield path
    try:
        children = [entry for entry in os.scandir(path) if entry.is_dir(follow_symlinks=False)]
    except OSError:
        return
    for entry in children:
        yield from _walk(Path(entry.path))


def members(path: Path) -> list[int]:
    """Pids in the cgroup and below it (zombies are not listed)."""
    pids: list[int] = []
    for cgroup in _walk(path):
        try:
            with open(cgroup / "cgroup.procs", "rb") as f:
                pids.extend(int(word) for word in f.read().split())
        except OSError:
            continue
    return pids


def populated(path: Path) -> bool:
    """True while a process (not a zombie) is in the cgroup or below it."""
    try:
        with open(path / "cgroup.events", "rb") as f:
            for line in f:
                if line.startswith(b"populated "):
                    return line.split()[1] == b"1"
    except FileNotFoundError:
        return False
    except OSError:
        return True
    return False


def kill(path: Path) -> None:
    """SIGKILL every process in the cgroup and below it, at once (``cgroup.kill``)."""
    try:
        with open(path / "cgroup.kill", "wb") as f:
            f.write(b"1")
    except FileNotFoundError:
        return
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.ENODEV):
            raise


def remove(path: Path) -> bool:
    """Remove the cgroup and the ones below it; False while processes are left."""
    done = True
    for cgroup in reversed(list(_walk(path))):
        try:
            cgroup.rmdir()
        except FileNotFoundError:
            continue
        except OSError:
            done = False
    return done


def find_run_cgroups(mounts: list[Mount], run_id: str) -> list[Path]:
    """Every step cgroup of ``run_id`` in the mounted hierarchies, wherever flwd ran.

    Recovery uses it when the process that made them is gone (and its record of
    them is lost); the walk does not enter the matches.
    """
    wanted = f"{PREFIX}{run_id}-"
    found: list[Path] = []
    seen: set[Path] = set()
    for mount in mounts:
        if mount.mountpoint in seen:
            continue
        seen.add(mount.mountpoint)
        for top, dirs, _files in os.walk(mount.mountpoint):
            keep = []
            for name in dirs:
                if name.startswith(wanted):
                    found.append(Path(top) / name)
                else:  # a flwd run inside a step of another keeps its cgroups below it
                    keep.append(name)
            dirs[:] = keep
    return found


def mounted() -> list[Mount]:
    try:
        with open("/proc/self/mountinfo") as f:
            return cgroup2_mounts(f.read())
    except OSError:
        return []
