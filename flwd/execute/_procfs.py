"""Linux ``/proc`` look-ups: process identity, descendants, and the recovery census.

Sans-trio and blocking. Every function tolerates processes vanishing mid-scan.
Two kinds of look-up with very different costs:

- per process tree (:func:`descendants`): follows ``/proc/<pid>/task/<tid>/children``
  from known roots, so its cost is the size of the tree, not of the host;
- per host (:class:`Census`): one pass over every process (``stat`` and, when
  markers are asked for, ``environ``). Only recovery uses it, when the flwd
  process that owned a run is gone and nothing cheaper is left.
"""

from __future__ import annotations

import os
import time
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass

#: ``PF_KTHREAD`` in the flags field of ``/proc/<pid>/stat``.
_PF_KTHREAD = 0x00200000
_ENVIRON_READ = 1 << 16


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode("ascii", "replace")
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after
    # the last ')' so the remaining fields are positional.
    close = raw.rfind(")")
    return [raw[: close + 1], *raw[close + 2 :].split()]


@dataclass(frozen=True, slots=True)
class Proc:
    """One process as ``/proc/<pid>/stat`` shows it."""

    pid: int
    ppid: int
    pgid: int
    sid: int
    #: Start time in clock ticks since boot: with the pid, an identity across pid reuse.
    start: int
    state: str
    flags: int

    @property
    def live(self) -> bool:
        return self.state not in ("Z", "X")

    @property
    def kernel_thread(self) -> bool:
        return bool(self.flags & _PF_KTHREAD)


def stat(pid: int) -> Proc | None:
    """``pid`` as ``/proc`` shows it now, or None when it is gone."""
    fields = _stat_fields(pid)
    if fields is None or len(fields) < 21:
        return None
    return Proc(pid, int(fields[2]), int(fields[3]), int(fields[4]), int(fields[20]),
                fields[1], int(fields[7]))


def process_start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot, or None if it is gone.

    Together with the pid it identifies a process across pid reuse.
    """
    proc = stat(pid)
    return None if proc is None else proc.start


def process_alive(pid: int, start_time: int | None) -> bool:
    """True if ``pid`` runs and (when known) started at ``start_time``; zombies count as dead."""
    proc = stat(pid)
    return proc is not None and proc.live and (start_time is None or proc.start == start_time)


def boot_ticks() -> int:
    """Now, in the clock ``Proc.start`` uses (ticks since boot)."""
    return int(time.clock_gettime(time.CLOCK_BOOTTIME) * os.sysconf("SC_CLK_TCK"))


def boot_id() -> str:
    """This boot's id: pids recorded in another boot mean nothing."""
    global _boot_id
    # Read once per process: a boot's id does not change while it runs (every step's
    # ledger line names it; an open and a read per step were a server's CPU per run).
    if _boot_id is None:
        try:
            with open("/proc/sys/kernel/random/boot_id") as f:
                _boot_id = f.read().strip()
        except OSError:
            return ""
    return _boot_id


_boot_id: str | None = None


def children(pid: int) -> list[int]:
    """The children of every thread of ``pid`` (empty when it is gone)."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                found.extend(int(word) for word in f.read().split())
        except OSError:
            continue
    return found


def descendants(roots: Iterable[int]) -> list[int]:
    """``roots`` and everything below them, following parent links down (zombies included).

    Costs one small read per process of the trees, whatever runs elsewhere on the host.
    """
    found: list[int] = []
    seen: set[int] = set()
    pending = list(roots)
    while pending:
        pid = pending.pop()
        if pid in seen:
            continue
        seen.add(pid)
        found.append(pid)
        pending.extend(children(pid))
    return found


def read_environ(pid: int) -> bytes | None:
    """``/proc/<pid>/environ``, or None if unreadable or gone, with bare os calls.

    The census reads it for every process on the host: ``open()``'s buffered
    file object costs more than the three system calls themselves.
    """
    try:
        fd = os.open(f"/proc/{pid}/environ", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        chunk = os.read(fd, _ENVIRON_READ)
        if len(chunk) < _ENVIRON_READ:  # procfs fills the buffer while there is more
            return chunk
        chunks = [chunk]
        while chunk := os.read(fd, _ENVIRON_READ):
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)


def _pids() -> Iterator[int]:
    for name in os.listdir("/proc"):
        if name.isdigit():
            yield int(name)


class Census:
    """One pass over every process of the host: their ``stat`` and the markers they carry.

    ``markers`` are ``KEY=VALUE`` environment entries to look for. A process
    caught in ``execve`` shows an empty environment for a moment (its new
    memory is not set up yet, or the old one is already gone): the census
    reads such environments once more after the pass, and callers add
    :meth:`closure` so that the children of whatever they found count too,
    marker or not. Kernel threads are skipped.
    """

    def __init__(self, markers: Collection[str] = ()) -> None:
        self.processes: dict[int, Proc] = {}
        needles = {marker.encode() for marker in markers}
        self.marked: dict[str, set[int]] = {marker: set() for marker in markers}
        own = os.getpid()
        recheck: list[int] = []
        for pid in _pids():
            proc = stat(pid)
            if proc is None or proc.kernel_thread:
                continue
            self.processes[pid] = proc
            if needles and pid != own and proc.live:
                env = read_environ(pid)
                if env == b"":
                    recheck.append(pid)
                elif env:
                    self._match(pid, env, needles)
        for pid in recheck:  # an exec in progress during the pass has finished by now
            env = read_environ(pid)
            if env:
                self._match(pid, env, needles)

    def _match(self, pid: int, env: bytes, needles: set[bytes]) -> None:
        # A substring test first (cheap): most processes carry no marker.
        if any(needle in env for needle in needles):
            for entry in env.split(b"\0"):
                if entry in needles:
                    self.marked[entry.decode()].add(pid)

    def live(self, pids: Iterable[int]) -> set[int]:
        return {pid for pid in pids if pid in self.processes and self.processes[pid].live}

    def in_groups(self, ids: Collection[int], *, since: int = 0) -> set[int]:
        """Live processes whose process group or session is one of ``ids``,
        started at ``since`` (ticks) or later (older ones reuse a recycled id)."""
        return {pid for pid, proc in self.processes.items()
                if proc.live and proc.start >= since and (proc.pgid in ids or proc.sid in ids)}

    def closure(self, pids: Iterable[int]) -> set[int]:
        """``pids`` and all their live descendants in this snapshot."""
        below: dict[int, list[int]] = {}
        for proc in self.processes.values():
            below.setdefault(proc.ppid, []).append(proc.pid)
        found: set[int] = set()
        pending = list(pids)
        while pending:
            pid = pending.pop()
            if pid in found:
                continue
            found.add(pid)
            pending.extend(below.get(pid, ()))
        return self.live(found)

