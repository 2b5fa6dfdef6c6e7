"""flwd's side of the process keeper (``_keeper_main.py``): start leaders, learn their exits.

One keeper per trio run, started at the first host step (or earlier by
:func:`prelaunch_keeper`, and taken up then). It is flwd's child in its own
session; the step leaders are the keeper's children. Requests go over a Unix
socket with the leader's output pipes attached; a system task reads the keeper's
replies and hands each to whoever waits for it.
"""

from __future__ import annotations

import array
import itertools
import os
import socket
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import trio

from flwd._keeper_boot import spawn_keeper, take_prelaunched

from ._procfs import process_start_time

_HEADER = struct.Struct("!cII")
_REPLY = struct.Struct("!c3xiii")
#: Stages of a failed start, as the keeper reports them.
STAGE_CWD, STAGE_CGROUP, STAGE_EXEC, STAGE_OTHER = 0, 1, 2, 3
#: A keeper answers a start request within milliseconds; one that does not
#: within this long is treated as lost.
_START_TIMEOUT = 60.0
#: How long the end of a trio run waits for its keeper to exit.
_EXIT_WAIT = 1.0
#: Keepers whose exit was not seen yet (reaped at the next launch).
_unreaped: list[int] = []


class KeeperLost(Exception):
    """The keeper died: the leaders it started lost their parent's report."""


class StartFailed(Exception):
    """The keeper could not start the program: ``errno`` at ``stage``."""

    def __init__(self, code: int, stage: int) -> None:
        super().__init__(os.strerror(code) if code else "unknown error")
        self.errno = code
        self.stage = stage


@dataclass(eq=False, slots=True)
class _Slot:
    done: trio.Event = field(default_factory=trio.Event)
    value: tuple[bytes, int, int] | None = None


class Keeper:
    """A running keeper; ``spawn`` starts a leader, ``wait`` returns its wait status."""

    def __init__(self, pid: int, sock: trio.socket.SocketType) -> None:
        self.pid = pid
        self.start = process_start_time(pid)
        self._sock = sock
        self._send_lock = trio.Lock()
        self._requests = itertools.count(1)
        self._pending: dict[int, _Slot] = {}
        self._exits: dict[int, _Slot] = {}
        self.lost = False
        #: Whether the keeper is a child subreaper (known once it said it is ready).
        self.subreaper: bool | None = None

    # -- lifecycle ------------------------------------------------------------
    @classmethod
    def launch(cls) -> Keeper:
        """This trio run's keeper and its reader task: the one :func:`prelaunch_keeper`
        started, else a new one (blocking, about a millisecond)."""
        _reap_old()
        pid, ours = take_prelaunched() or spawn_keeper()
        keeper = cls(pid, trio.socket.from_stdlib_socket(ours))
        trio.lowlevel.spawn_system_task(keeper._serve, name=f"flwd keeper {pid}")
        return keeper

    async def _serve(self) -> None:
        """Read replies until the keeper goes away or the trio run ends."""
        try:
            buffer = b""
            while True:
                data = await self._sock.recv(1 << 12)
                if not data:
                    break
                buffer += data
                while len(buffer) >= _REPLY.size:
                    self._dispatch(*_REPLY.unpack_from(buffer))
                    buffer = buffer[_REPLY.size:]
        except (OSError, trio.ClosedResourceError):
            pass
        finally:
            self._lose()
            self._sock.close()
            with trio.CancelScope(shield=True):
                await _reap(self.pid, _EXIT_WAIT)

    def _dispatch(self, kind: bytes, a: int, b: int, c: int) -> None:
        if kind in (b"P", b"F"):
            slot = self._pending.pop(a, None)
            if slot is not None:
                slot.value = (kind, b, c)
                slot.done.set()
        elif kind == b"X":
            slot = self._exits.setdefault(a, _Slot())
            slot.value = (kind, b, 0)
            slot.done.set()
        elif kind == b"R":
            self.subreaper = bool(b)

    def _lose(self) -> None:
        self.lost = True
        for slot in [*self._pending.values(), *self._exits.values()]:
            slot.done.set()
        self._pending.clear()

    # -- requests ------------------------------------------------------------
    async def spawn(self, program: str, argv: Sequence[str], env: Mapping[str, str],
                    cwd: Path, *, procs: Path | None, stdout: int, stderr: int,
                    umask: int = 0o077) -> int:
        """Start ``argv`` (``program`` is its resolved path) as a new session leader.

        The child moves itself into the cgroup whose ``cgroup.procs`` is ``procs``
        before it execs, so nothing of the step runs outside it. ``stdout`` and
        ``stderr`` are duplicated into the keeper; the caller closes its copies.

        Cancellation: shielded (bounded): once asked, the leader either starts and
        its pid is returned, or it does not start.

        Raises:
            StartFailed: chdir, the cgroup move or the exec failed in the child.
            KeeperLost: the keeper died.
        """
        fields = [os.fsencode(program), os.fsencode(str(cwd)),
                  os.fsencode(str(procs)) if procs else b"", str(umask).encode(),
                  str(len(argv)).encode(), *(os.fsencode(word) for word in argv),
                  *(os.fsencode(f"{key}={value}") for key, value in env.items())]
        payload = b"\0".join(fields)
        request = next(self._requests)
        slot = self._pending[request] = _Slot()
        frame = _HEADER.pack(b"S", request, len(payload)) + payload
        with trio.CancelScope(shield=True):
            with trio.move_on_after(_START_TIMEOUT) as timer:
                async with self._send_lock:
                    if self.lost:
                        raise KeeperLost(f"the process keeper (pid {self.pid}) is gone")
                    try:
                        sent = await self._sock.sendmsg(
                            [frame], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                       array.array("i", [stdout, stderr]).tobytes())])
                        while sent < len(frame):
                            sent += await self._sock.send(frame[sent:])
                    except (OSError, trio.ClosedResourceError) as exc:
                        self._pending.pop(request, None)
                        raise KeeperLost(f"the process keeper (pid {self.pid}) is gone: "
                                         f"{exc}") from exc
                await slot.done.wait()
            if timer.cancelled_caught:
                raise KeeperLost(f"the process keeper (pid {self.pid}) did not answer "
                                 f"within {_START_TIMEOUT:g}s")
        if slot.value is None:
            raise KeeperLost(f"the process keeper (pid {self.pid}) died")
        kind, first, second = slot.value
        if kind == b"F":
            raise StartFailed(first, second)
        return first

    async def wait(self, pid: int) -> int:
        """The wait status of leader ``pid`` once it exited.

        Cancellation: safe; the status stays for a later call.

        Raises:
            KeeperLost: the keeper died first; the status is unknown.
        """
        slot = self._exits.setdefault(pid, _Slot())
        if self.lost and slot.value is None:
            raise KeeperLost(f"the process keeper (pid {self.pid}) died")
        await slot.done.wait()
        if slot.value is None:
            raise KeeperLost(f"the process keeper (pid {self.pid}) died")
        del self._exits[pid]
        return slot.value[1]

    def forget(self, pid: int) -> None:
        """Drop what is kept for leader ``pid`` (its waiter will not ask any more)."""
        self._exits.pop(pid, None)


def _reap_old() -> None:
    for pid in list(_unreaped):
        try:
            done, _status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = pid
        if done:
            _unreaped.remove(pid)


async def _reap(pid: int, patience: float) -> None:
    """Reap the keeper once it exited (it does when it has no child left)."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        pidfd = -1
    try:
        if pidfd >= 0:
            with trio.move_on_after(patience):
                await trio.lowlevel.wait_readable(pidfd)
        try:
            done, _status = os.waitpid(pid, os.WNOHANG)  # noqa: ASYNC222 - WNOHANG: never blocks
        except ChildProcessError:
            return
        if not done:
            _unreaped.append(pid)
    finally:
        if pidfd >= 0:
            trio.lowlevel.notify_closing(pidfd)
            os.close(pidfd)


_KEEPER: trio.lowlevel.RunVar[Keeper] = trio.lowlevel.RunVar("flwd_keeper")


def current_keeper() -> Keeper:
    """This trio run's keeper, started (again, if the last one died) on first use."""
    try:
        keeper = _KEEPER.get()
    except LookupError:
        keeper = None
    if keeper is None or keeper.lost:
        keeper = Keeper.launch()
        _KEEPER.set(keeper)
    return keeper
