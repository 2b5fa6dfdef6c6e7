"""Linux ``/proc`` look-ups used to reap process trees and detect dead owners.

Sans-trio, blocking but cheap (a scan of ``/proc`` takes ~1 ms per few hundred
processes). Every function tolerates processes vanishing mid-scan.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence


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


def process_start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot, or None if it is gone.

    Together with the pid it identifies a process across pid reuse.
    """
    fields = _stat_fields(pid)
    if fields is None or len(fields) < 21:
        return None
    return int(fields[20])


def process_alive(pid: int, start_time: int | None) -> bool:
    """True if ``pid`` runs and (when known) started at ``start_time``; zombies count as dead."""
    fields = _stat_fields(pid)
    if fields is None or len(fields) < 21:
        return False
    if fields[1] == "Z":
        return False
    return start_time is None or int(fields[20]) == start_time


def _read_environ(pid: int) -> bytes:
    """``/proc/<pid>/environ`` (empty if unreadable or gone), with bare os calls.

    The census reads it for every process on the host: ``open()``'s buffered
    file object costs more than the three system calls themselves.
    """
    try:
        fd = os.open(f"/proc/{pid}/environ", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return b""
    try:
        chunk = os.read(fd, _ENVIRON_READ)
        if len(chunk) < _ENVIRON_READ:  # procfs fills the buffer while there is more
            return chunk
        chunks = [chunk]
        while chunk := os.read(fd, _ENVIRON_READ):
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError:
        return b""
    finally:
        os.close(fd)


_ENVIRON_READ = 1 << 16


def group_exists(pgid: int) -> bool:
    """False when no process (not even a zombie) is in the group: skips the /proc scan."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _pids() -> Iterator[int]:
    for name in os.listdir("/proc"):
        if name.isdigit():
            yield int(name)


def live_group_members(pgid: int) -> list[int]:
    """Pids of non-zombie processes whose process group is ``pgid``."""
    members = []
    for pid in _pids():
        fields = _stat_fields(pid)
        if fields is None or len(fields) < 5:
            continue
        if fields[1] != "Z" and int(fields[3]) == pgid:
            members.append(pid)
    return members


def processes_with_env(key: str, value: str) -> list[int]:
    """Pids of live processes whose environment holds ``key=value``.

    Every job process gets ``FLWD_RUN_ID``; this finds the ones that escaped
    their process group (``setsid``, double fork) so nothing outlives a run.
    """
    needle = f"{key}={value}".encode()
    own = os.getpid()
    found = []
    for pid in _pids():
        if pid == own:
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = f.read()
        except OSError:
            continue
        if needle in env.split(b"\0"):
            fields = _stat_fields(pid)
            if fields is not None and fields[1] != "Z":
                found.append(pid)
    return found


#: What :func:`census` looks for: live members of a process group (None: none)
#: and live processes whose environment holds ``key=value`` (None: none).
CensusQuery = tuple[int | None, tuple[str, str] | None]


def census(queries: Sequence[CensusQuery]) -> list[list[int]]:
    """For each query, the live pids of its group plus those carrying its marker.

    The same answers as ``live_group_members(pgid)`` extended by
    ``processes_with_env(*marker)``, for many queries in one pass over
    ``/proc``: each process's ``environ`` and ``stat`` are read at most once,
    whatever the number of queries (the cost of a census is the scan, so
    concurrent cancels share it). A group without any process (not even a
    zombie) costs nothing: no ``stat`` is read for it.
    """
    groups: dict[int, list[int]] = {}
    needles: dict[bytes, list[int]] = {}
    for pgid, marker in queries:
        if pgid is not None and group_exists(pgid):
            groups.setdefault(pgid, [])
        if marker is not None:
            needles.setdefault(f"{marker[0]}={marker[1]}".encode(), [])
    own = os.getpid()
    if groups or needles:
        for pid in _pids():
            carried: set[bytes] = set()
            if needles and pid != own:
                env = _read_environ(pid)
                # A substring test first (cheap): most processes carry no marker.
                if any(needle in env for needle in needles):
                    carried = {entry for entry in env.split(b"\0") if entry in needles}
            if not groups and not carried:
                continue
            fields = _stat_fields(pid)
            if fields is None or len(fields) < 5 or fields[1] == "Z":
                continue
            members = groups.get(int(fields[3]))
            if members is not None:
                members.append(pid)
            for entry in carried:
                needles[entry].append(pid)
    answers = []
    for pgid, marker in queries:
        found = list(groups.get(pgid, ())) if pgid is not None else []
        if marker is not None:
            needle = f"{marker[0]}={marker[1]}".encode()
            found.extend(pid for pid in needles[needle] if pid not in found)
        answers.append(found)
    return answers
