"""Containment of host steps: every process a step starts can be found and killed.

Two mechanisms, chosen once per flwd process (``FLWD_CONTAINMENT``: ``auto``, the
default, ``cgroup`` or ``subreaper``; tests force one):

- **cgroup** (root, or a delegated cgroup subtree): each step gets its own cgroup
  v2, ``<flwd's cgroup>/flwd-<run id>-<n>``; its leader is moved there by the
  keeper before it execs, so no process of the step runs outside it, and
  ``cgroup.kill`` ends them all at once. A process cannot leave it.
- **subreaper** (anywhere else): the keeper is a child subreaper, so whatever a
  step orphans is re-parented to the keeper. A step's processes are the
  descendants of its leader plus the keeper's orphans it owns (an orphan carries
  the step's marker or session, or else belongs to the steps that ran when it
  started, and is killed once the last of them ends).

Either way nothing is found by scanning ``/proc``: the cost of a step no longer
grows with the number of processes on the host. Each step is also recorded in
``<run dir>/containment.jsonl`` (keeper, cgroup, session) for recovery after a
crash of flwd (see :func:`flwd.execute.kill_run_processes`).
"""

from __future__ import annotations

import itertools
import json
import os
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import trio

from . import _cgroup
from ._keeper import STAGE_CGROUP, Keeper, StartFailed, current_keeper
from ._procfs import boot_id, boot_ticks, children, descendants, read_environ, stat

MODE_ENV = "FLWD_CONTAINMENT"
MODES = ("auto", "cgroup", "subreaper")
#: The run dir file recovery reads.
LEDGER = "containment.jsonl"


class ContainmentError(Exception):
    """Containment was asked for but is not possible here (one line)."""


@dataclass(slots=True)
class _Setup:
    mode: str
    base: Path | None
    #: Why cgroups are not used (None when they are).
    why_not: str | None
    #: ``FLWD_CONTAINMENT=cgroup``: no falling back to the keeper's subtree.
    forced: bool = False


_setups: dict[int, _Setup] = {}
_counter = itertools.count(1)


def setup() -> _Setup:
    """The mechanism of this process (probed once per process: a mkdir and an rmdir).

    Raises:
        ContainmentError: ``FLWD_CONTAINMENT`` is not a mode, or asks for cgroups
            where they cannot be made.
    """
    pid = os.getpid()
    known = _setups.get(pid)
    if known is not None:
        return known
    wanted = os.environ.get(MODE_ENV, "auto").strip().lower() or "auto"
    if wanted not in MODES:
        raise ContainmentError(f"{MODE_ENV}={wanted!r} is not one of {', '.join(MODES)}")
    if wanted == "subreaper":
        result = _Setup("subreaper", None, f"{MODE_ENV}=subreaper")
    else:
        base = _cgroup.own_cgroup()
        why_not = _cgroup.probe(base)
        if why_not is not None and wanted == "cgroup":
            raise ContainmentError(f"{MODE_ENV}=cgroup, but {why_not}")
        result = _Setup("subreaper" if why_not else "cgroup", base, why_not,
                        forced=wanted == "cgroup")
    _setups[pid] = result
    return result


# -- step trees ------------------------------------------------------------------


class StepTree(Protocol):
    """The live processes of one step, however they forked or detached."""

    leader: int
    #: The keeper that started the leader (and reports its exit).
    keeper: Keeper

    def members(self) -> list[int]: ...

    def alive(self) -> bool: ...

    def kill(self, members: list[int]) -> None: ...

    def close(self) -> None: ...


def signal_all(pids: Sequence[int], sig: signal.Signals) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


@dataclass(eq=False, slots=True)
class CgroupTree:
    """A step in its own cgroup: the cgroup's processes are the step's."""

    leader: int
    keeper: Keeper
    path: Path

    def members(self) -> list[int]:
        return _cgroup.members(self.path)

    def alive(self) -> bool:
        return _cgroup.populated(self.path)

    def kill(self, members: list[int]) -> None:
        _cgroup.kill(self.path)

    def close(self) -> None:
        if not _cgroup.remove(self.path):
            _leftovers.append(self.path)
        for path in list(_leftovers):
            if path != self.path and _cgroup.remove(path):
                _leftovers.remove(path)


#: Step cgroups that could not be removed yet (a process was still leaving).
_leftovers: list[Path] = []


@dataclass(eq=False, slots=True)
class StepRecord:
    """A step started by a keeper, for attributing the keeper's orphans."""

    #: ``KEY=VALUE``: the marker every process of the step starts with in its environment.
    key: str
    #: Ticks since boot when its start was asked for (its processes start later).
    start: int
    #: None while the keeper is still starting it.
    leader: int | None = None
    end: int | None = None


@dataclass(eq=False, slots=True)
class _Steps:
    """The steps one keeper started, and what is known about its orphans."""

    records: list[StepRecord] = field(default_factory=list)
    #: (pid, start time) of an orphan → the records that may own it.
    owners: dict[tuple[int, int], list[StepRecord]] = field(default_factory=dict)

    def prune(self, orphans: set[tuple[int, int]]) -> None:
        """Forget ended steps no orphan can belong to any more, and gone orphans."""
        self.owners = {key: value for key, value in self.owners.items() if key in orphans}
        needed = {id(record) for owners in self.owners.values() for record in owners}
        self.records = [record for record in self.records
                        if record.end is None or id(record) in needed]


_STEPS: trio.lowlevel.RunVar[dict[int, _Steps]] = trio.lowlevel.RunVar("flwd_keeper_steps")


def _steps_of(keeper: Keeper) -> _Steps:
    try:
        table = _STEPS.get()
    except LookupError:
        table = {}
        _STEPS.set(table)
    return table.setdefault(keeper.pid, _Steps())


@dataclass(eq=False, slots=True)
class SubtreeTree:
    """A step whose processes are found below its leader and among the keeper's orphans."""

    leader: int
    keeper: Keeper
    record: StepRecord
    steps: _Steps
    #: The leader's start time: it is looked for by pid even when the keeper is gone.
    leader_start: int | None = None

    def _owners(self, pid: int, start: int, sid: int, pgid: int) -> list[StepRecord]:
        known = self.steps.owners.get((pid, start))
        if known is not None:
            return known
        records = self.steps.records
        env = read_environ(pid) or b""
        entries = set(env.split(b"\0"))
        owners = [record for record in records if record.key.encode() in entries]
        if not owners:
            owners = [record for record in records
                      if record.leader in (sid, pgid) and record.start <= start]
        if not owners:
            # It cleared its environment and left the session: the steps that were
            # running when it started may own it (ticks are 10 ms: one of slack).
            owners = [record for record in records if record.start <= start
                      and (record.end is None or start <= record.end + 1)]
        self.steps.owners[(pid, start)] = owners
        return owners

    def members(self) -> list[int]:
        # Everything a step started is below the keeper (it is the subreaper):
        # below the step's leader while that lives, or an orphan of the keeper.
        leaders = {record.leader for record in self.steps.records if record.leader is not None}
        roots: list[int] = []
        leader = stat(self.leader)
        if leader is not None and leader.live and leader.start == self.leader_start:
            roots.append(self.leader)  # found even if the keeper died and init adopted it
        orphans: set[tuple[int, int]] = set()
        for pid in children(self.keeper.pid):
            if pid in leaders:
                continue
            proc = stat(pid)
            if proc is None or not proc.live:
                continue
            orphans.add((pid, proc.start))
            owners = self._owners(pid, proc.start, proc.sid, proc.pgid)
            # Ours when no other step that still runs may own it; a leftover of
            # ended steps (no owner running at all) goes with any step that ends.
            if not any(owner.end is None and owner is not self.record for owner in owners):
                roots.append(pid)
        self.steps.prune(orphans)
        found = []
        for pid in descendants(roots):
            proc = stat(pid)
            if proc is not None and proc.live:
                found.append(pid)
        return found

    def alive(self) -> bool:
        return bool(self.members())

    def kill(self, members: list[int]) -> None:
        signal_all(members, signal.SIGKILL)

    def close(self) -> None:
        if self.record.end is None:
            self.record.end = boot_ticks()


# -- starting a step -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Launch:
    """What the keeper needs to start a leader (the program already resolved)."""

    program: str
    argv: Sequence[str]
    env: Mapping[str, str]
    cwd: Path
    run_id: str
    #: (key, value) in the environment every process of the step starts with.
    marker: tuple[str, str]
    #: The run dir, where the step is recorded for recovery (None: not recorded).
    run_dir: Path | None


async def start_leader(launch: Launch, stdout: int, stderr: int) -> StepTree:
    """Start the step's leader contained, record it, and return its tree.

    Cancellation: shielded while the keeper starts the leader (milliseconds): a
    step is either not started or returned.

    Raises:
        ContainmentError: the mechanism asked for is not available.
        StartFailed, KeeperLost: see :meth:`Keeper.spawn`.
    """
    current = setup()
    keeper = current_keeper()
    if current.mode == "cgroup":
        try:
            return await _start_in_cgroup(launch, keeper, current, stdout, stderr)
        except _CgroupRefused as exc:
            if current.forced:
                raise ContainmentError(f"{MODE_ENV}=cgroup, but {exc}") from None
            # Cgroups stopped working here (the base was removed, delegation or a
            # limit such as cgroup.max.descendants): the keeper's subtree from now on.
            current.mode, current.why_not = "subreaper", str(exc)
    # Registered before the keeper forks: a leader not started yet must never
    # pass for another step's orphan (it is one of the steps running now).
    steps = _steps_of(keeper)
    record = StepRecord(f"{launch.marker[0]}={launch.marker[1]}", boot_ticks() - 1)
    steps.records.append(record)
    try:
        pid = await keeper.spawn(launch.program, launch.argv, launch.env, launch.cwd,
                                 procs=None, stdout=stdout, stderr=stderr)
    except BaseException:
        record.end = boot_ticks()
        raise
    record.leader = pid
    _record(launch, keeper, pid, cgroup=None)
    proc = stat(pid)
    return SubtreeTree(pid, keeper, record, steps, proc.start if proc else None)


class _CgroupRefused(Exception):
    """A step cgroup could not be made or joined (one clause)."""


async def _start_in_cgroup(launch: Launch, keeper: Keeper, current: _Setup, stdout: int,
                           stderr: int) -> CgroupTree:
    assert current.base is not None
    name = f"{_cgroup.PREFIX}{launch.run_id or 'run'}-{next(_counter)}"
    try:
        path = _cgroup.create(current.base, name)
    except OSError as exc:
        raise _CgroupRefused(f"cannot create a cgroup under {current.base}: "
                             f"{exc.strerror or exc}") from None
    try:
        pid = await keeper.spawn(launch.program, launch.argv, launch.env, launch.cwd,
                                 procs=path / "cgroup.procs", stdout=stdout, stderr=stderr)
    except StartFailed as exc:
        _cgroup.remove(path)
        if exc.stage == STAGE_CGROUP:
            raise _CgroupRefused(f"cannot move a process into {path}: {exc}") from None
        raise
    except BaseException:
        _cgroup.remove(path)
        raise
    _record(launch, keeper, pid, cgroup=path)
    return CgroupTree(pid, keeper, path)


def _record(launch: Launch, keeper: Keeper, leader: int, *, cgroup: Path | None) -> None:
    """Append the step to the run's ledger (best effort: recovery has other ways too).

    One JSON line per step: the keeper (pid, start time, boot), the leader
    (its session and process group id) and the step's cgroup.
    """
    if launch.run_dir is None:
        return
    proc = stat(leader)
    line = json.dumps({
        "step": launch.marker[1], "boot": boot_id(), "owner": os.getpid(),
        "keeper": keeper.pid, "keeper_start": keeper.start,
        "session": leader, "start": proc.start if proc else None,
        "cgroup": str(cgroup) if cgroup else None})
    try:
        fd = os.open(launch.run_dir / LEDGER,
                     os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)
    except OSError:
        pass
