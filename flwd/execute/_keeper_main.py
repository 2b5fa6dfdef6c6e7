"""The process keeper: a small process that starts host steps and stays their ancestor.

Run as ``python -I -S -B _keeper_main.py`` with its control socket on fd 3; it imports
nothing but the standard library (it must start fast and fork cheaply). One keeper
serves one flwd process. It:

- forks and execs every host step leader, born in the step's cgroup (when flwd gives
  one: ``clone3(CLONE_INTO_CGROUP)``, else moved there before the step's program
  runs), so no process of the step ever runs outside it;
- is a child subreaper: whatever a step's processes orphan (``setsid``, double
  forks, ``env -i``) is re-parented to the keeper, never to init, so every process
  a step ever started stays a descendant of the keeper;
- reaps all of them and reports each leader's wait status to flwd;
- outlives flwd: when the control socket closes (flwd exited or was killed) it keeps
  its descendants' ancestry intact, so recovery can find and kill them, and exits
  once it has no child left.

Protocol (fixed little frames; see ``_keeper.py`` for the flwd side):

- flwd → keeper: ``b"S"`` + u32 request id + u32 length, then ``length`` bytes of
  NUL-separated fields (program, cwd, cgroup.procs path or "", umask, argc, argv...,
  env...), with the step's stdout and stderr write ends attached (SCM_RIGHTS).
- keeper → flwd, 16 bytes each: ``P`` (request id, pid) started; ``F`` (request id,
  errno, stage) could not start; ``X`` (pid, wait status) a leader exited;
  ``R`` (keeper pid, subreaper 0/1) ready.
"""

import array
import os
import select
import signal
import socket
import struct

# Not ``typing`` (a few milliseconds of every keeper's start): only the type checker reads it.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

#: A request header: kind, request id, payload length.
HEADER = struct.Struct("!cII")
#: A reply: kind, two integers, padding to 16 bytes.
REPLY = struct.Struct("!c3xiii")
#: Where a start failed (``F`` replies).
STAGE_CWD, STAGE_CGROUP, STAGE_EXEC, STAGE_OTHER = 0, 1, 2, 3
#: Reset to their default in a step's leader (ignored dispositions survive exec).
_RESET = (signal.SIGINT, signal.SIGHUP, signal.SIGTERM, signal.SIGPIPE, signal.SIGXFSZ,
          signal.SIGCHLD)
_PR_SET_NAME = 15
_PR_SET_CHILD_SUBREAPER = 36


def _prctl(option: int, value: int | bytes) -> bool:
    """prctl(2) through libc; False when it fails or is unavailable."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(option, value, 0, 0, 0) == 0)
    except (OSError, AttributeError, ImportError):
        return False


#: rt_sigaction(2) by machine: glibc refuses to touch its internal signals itself.
_RT_SIGACTION = {"x86_64": 13, "aarch64": 134, "riscv64": 134, "loongarch64": 134,
                 "ppc64le": 173, "ppc64": 173, "s390x": 174, "i686": 174, "armv7l": 174}


def _default_internal_signals() -> None:
    """Give signals 32 and 33 back their default disposition.

    posix_spawn(3), which started the keeper, leaves glibc's internal signals
    (SIGCANCEL, SIGSETXID) ignored in the new program, and an ignored disposition
    survives exec: without this every step would start with them ignored.
    """
    number = _RT_SIGACTION.get(os.uname().machine)
    if number is None:
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        default = ctypes.create_string_buffer(64)  # all zero: SIG_DFL, no flags, no mask
        for sig in (32, 33):
            libc.syscall(number, sig, default, None, 8)
    except (OSError, AttributeError, ImportError):
        pass


class _CloneArgs:
    """``struct clone_args`` (Linux 5.7's, with ``cgroup``), built once ctypes is loaded."""

    type: object = None


#: clone3(2)'s number by machine (the same on every 64-bit Linux port), and its flag.
_CLONE3 = {"x86_64": 435, "aarch64": 435, "riscv64": 435, "loongarch64": 435,
           "ppc64le": 435, "ppc64": 435, "s390x": 435}
_CLONE_INTO_CGROUP = 0x200000000
#: What clone3 says when it cannot start a child in a cgroup: an older kernel, cgroup v1,
#: a cgroup that takes no process (``domain invalid``, controllers in subtree_control),
#: a sandbox that filters the call. The keeper then forks and moves the child.
_NO_CLONE_INTO = frozenset({1, 9, 13, 16, 18, 22, 38, 95})  # EPERM EBADF (not a cgroup) EACCES
#: EBUSY EXDEV EINVAL ENOSYS EOPNOTSUPP
#: Set once clone3 turned out not to exist here (ENOSYS): not tried again.
_clone3_missing = False


def _fork_into(procs: bytes) -> int | None:
    """Fork a child born in the cgroup whose ``cgroup.procs`` is ``procs``: its pid in
    the parent, 0 in the child; None when this system cannot (see :data:`_NO_CLONE_INTO`).

    Writing a pid to ``cgroup.procs`` takes the kernel's threadgroup lock for writing,
    which waits for an RCU grace period: 5–20 ms of every step's start on a quiet
    2-core machine, the largest part of a trivial run's latency. A child born in the
    cgroup takes that lock for reading only. The raw system call forks this process
    the way ``os.fork`` does, without CPython's after-fork bookkeeping: harmless here,
    where nothing but this thread exists and the child only sets itself up and execs
    (no lock of another thread can be held, no Python thread state is reused).

    Raises:
        OSError: the fork itself failed (no memory, no more processes).
    """
    global _clone3_missing
    number = _CLONE3.get(os.uname().machine)
    if number is None or _clone3_missing:
        return None
    try:
        import ctypes
    except ImportError:
        return None
    if _CloneArgs.type is None:
        _CloneArgs.type = type("clone_args", (ctypes.Structure,), {"_fields_": [
            (name, ctypes.c_uint64) for name in (
                "flags", "pidfd", "child_tid", "parent_tid", "exit_signal", "stack",
                "stack_size", "tls", "set_tid", "set_tid_size", "cgroup")]})
    try:
        directory = os.open(os.path.dirname(procs), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None  # the fork-and-move path reports what is wrong with it
    pid = -1
    try:
        args = _CloneArgs.type(flags=_CLONE_INTO_CGROUP,  # type: ignore[operator]
                               exit_signal=signal.SIGCHLD, cgroup=directory)
        # PyDLL: the GIL stays held across the call, in the parent and in the child.
        libc = ctypes.PyDLL(None, use_errno=True)
        pid = libc.syscall(ctypes.c_long(number), ctypes.byref(args),
                           ctypes.c_size_t(ctypes.sizeof(args)))
        if pid == -1:
            code = ctypes.get_errno()
            if code == 38:  # ENOSYS
                _clone3_missing = True
            if code in _NO_CLONE_INTO:
                return None
            raise OSError(code, os.strerror(code))
        return int(pid)
    finally:
        if pid != 0:
            os.close(directory)  # the child's closes at exec (O_CLOEXEC)


def _exec_child(fields: list[bytes], fds: list[int], report: int, *,
                in_cgroup: bool = False) -> "NoReturn":
    """In the forked child: session, umask, cwd, cgroup (unless born there: ``in_cgroup``),
    stdio, exec. Never returns."""
    stage = STAGE_OTHER
    try:
        program, cwd, procs, umask, argc = fields[:5]
        argv = fields[5:5 + int(argc)]
        env: dict[bytes, bytes] = {}
        for entry in fields[5 + int(argc):]:
            key, _, value = entry.partition(b"=")
            env[key] = value
        os.setsid()
        os.umask(int(umask))
        for number in _RESET:  # what the keeper (and Python) ignore is not the job's business
            signal.signal(number, signal.SIG_DFL)
        signal.set_wakeup_fd(-1)
        stage = STAGE_CWD
        os.chdir(cwd)
        if procs and not in_cgroup:
            stage = STAGE_CGROUP
            fd = os.open(procs, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, b"0")  # "0" moves the writer itself: before anything runs
            finally:
                os.close(fd)
        stage = STAGE_OTHER
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(fds[0], 1)
        os.dup2(fds[1], 2)
        os.closerange(3, report)
        os.closerange(report + 1, 1 << 20)
        stage = STAGE_EXEC
        os.execve(program, argv, env)
    except OSError as exc:
        code = exc.errno or 0
    except BaseException:  # the child must never return into the keeper's loop
        code = 0
    try:
        os.write(report, struct.pack("!ii", code, stage))
    finally:
        os._exit(127)


class Keeper:
    def __init__(self, control: socket.socket) -> None:
        self.control = control
        self.buffer = b""
        self.fds: list[int] = []
        self.leaders: set[int] = set()
        self.closed = False

    def reply(self, kind: bytes, a: int, b: int, c: int = 0) -> None:
        if self.closed:
            return
        try:
            self.control.sendall(REPLY.pack(kind, a, b, c))
        except OSError:  # flwd is gone: the replies have no reader any more
            self.closed = True

    def receive(self) -> bool:
        """Read what the socket has; False once flwd closed it."""
        try:
            data, ancillary, _flags, _addr = self.control.recvmsg(
                1 << 16, socket.CMSG_SPACE(16 * array.array("i").itemsize))
        except InterruptedError:
            return True
        except OSError:
            return False
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                received = array.array("i")
                received.frombytes(payload[: len(payload) - len(payload) % received.itemsize])
                self.fds.extend(received)
        if not data:
            return False
        self.buffer += data
        while len(self.buffer) >= HEADER.size:
            kind, request, length = HEADER.unpack_from(self.buffer)
            if len(self.buffer) < HEADER.size + length:
                break
            payload = self.buffer[HEADER.size:HEADER.size + length]
            self.buffer = self.buffer[HEADER.size + length:]
            if kind == b"S":
                fds, self.fds = self.fds[:2], self.fds[2:]
                self.spawn(request, payload.split(b"\0"), fds)
        return True

    def spawn(self, request: int, fields: list[bytes], fds: list[int]) -> None:
        read_end, write_end = os.pipe2(os.O_CLOEXEC)
        procs = fields[2] if len(fields) > 2 else b""
        try:
            pid = _fork_into(procs) if procs else None
            born_in = pid is not None
            if pid is None:
                pid = os.fork()
        except OSError as exc:
            os.close(read_end)
            os.close(write_end)
            for fd in fds:
                os.close(fd)
            self.reply(b"F", request, exc.errno or 0, STAGE_OTHER)
            return
        if pid == 0:
            os.close(read_end)
            _exec_child(fields, fds, write_end, in_cgroup=born_in)
        os.close(write_end)
        for fd in fds:
            os.close(fd)
        report = b""
        while True:  # EOF: the exec succeeded (the pipe is close-on-exec)
            try:
                chunk = os.read(read_end, 8)
            except InterruptedError:
                continue
            if not chunk:
                break
            report += chunk
        os.close(read_end)
        if len(report) >= 8:
            code, stage = struct.unpack("!ii", report[:8])
            while True:
                try:
                    os.waitpid(pid, 0)
                    break
                except InterruptedError:
                    continue
                except ChildProcessError:
                    break
            self.reply(b"F", request, code, stage)
            return
        self.leaders.add(pid)
        self.reply(b"P", request, pid)

    def reap(self) -> bool:
        """Reap every exited child; report leaders. False when there is no child left."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return False
            except InterruptedError:
                continue
            if pid == 0:
                return True
            if pid in self.leaders:
                self.leaders.discard(pid)
                self.reply(b"X", pid, status)


def main() -> int:
    control = socket.socket(fileno=3)
    control.setblocking(True)
    _default_internal_signals()
    subreaper = _prctl(_PR_SET_CHILD_SUBREAPER, 1)
    _prctl(_PR_SET_NAME, b"flwd-keeper")  # what ps and top show
    wake_read, wake_write = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda _number, _frame: None)
    # A terminal's signals are for flwd; SIGTERM too (systemd sends it to every process
    # of the unit at once): the keeper leaves when flwd closed its socket and nothing
    # of the steps is left, not before.
    for number in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(number, signal.SIG_IGN)
    keeper = Keeper(control)
    keeper.reply(b"R", os.getpid(), int(subreaper))
    while not keeper.closed:
        try:
            ready, _, _ = select.select([control.fileno(), wake_read], [], [])
        except InterruptedError:
            continue
        if wake_read in ready:
            try:
                while os.read(wake_read, 512):
                    pass
            except BlockingIOError:
                pass
        keeper.reap()
        if control.fileno() in ready and not keeper.receive():
            keeper.closed = True
    # flwd is gone. Stay the ancestor of whatever still runs (recovery kills it by
    # walking our descendants), reap it as it exits, leave when nothing is left.
    control.close()
    for fd in keeper.fds:
        os.close(fd)
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            break
        except InterruptedError:
            continue
    return 0


if __name__ == "__main__":
    # Nothing is left to flush or close (its output is /dev/null): leave without the
    # interpreter's teardown, as flwd waits for the keeper's exit at the end of a run.
    os._exit(main())
