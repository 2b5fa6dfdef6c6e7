"""``flwd :serve --workers N``: N server processes sharing one host's port and Core DB.

::

    supervisor   this process: owns the data dir, binds the port and serve.sock,
    │            recovers what a crash left, starts the workers, restarts one that
    │            dies, and stops them all on SIGTERM/SIGINT
    ├── worker 0  flwd :serve with <data>/workers/0 as its own data dir (run dirs,
    ├── worker 1  source checkouts, process keeper): an engine and an HTTP server,
    └── …         accepting on the inherited sockets

The workers are the replicas of a cluster (docs/scale-out.md) on the data dir's SQLite
Core DB: a run posted to any of them is queued and claimed by one with a free slot
(a job's ``concurrency`` holds across them), its events are journaled by the worker that
executes it and followed by any other, a cancel reaches it wherever it runs, and the
scheduler fires on one of them (its leader lease). Each worker's Core DB writes take
the host's write lock (``flwd.store._write_lock``) and its commits are announced on
the Core DB's bus (``flwd.store._bus``): no worker sleeps on another's lock, none polls
for another's runs.

A worker gets its sockets and two pipes as inherited descriptors, named in
:data:`WORKER_ENV`: it writes ``ready`` to one once it serves, and stops (gracefully)
when the other reaches its end — the supervisor is gone, even killed with SIGKILL.
Workers run in process groups of their own, so a Ctrl-C reaches the supervisor only,
which then stops each worker once.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import trio

from flwd.errors import FlwdError, UsageError
from flwd.settings import Settings

_log = logging.getLogger("flwd.serve")

#: Names a worker's inherited descriptors (JSON); set only by the supervisor.
WORKER_ENV = "FLWD_WORKER"
#: ``--workers`` at most.
MAX_WORKERS = 64
#: A worker that died is started again after this many seconds, doubling up to
#: RESTART_MAX while it keeps dying within STABLE seconds of its start.
RESTART_FIRST = 0.5
RESTART_MAX = 30.0
STABLE = 60.0
#: Seconds beyond its own grace a worker has to stop before it is killed.
STOP_MARGIN = 30.0


class WorkerFailed(FlwdError):
    """A worker stopped before it was serving (its own message is above)."""

    exit_code = 1


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """What a worker inherits: its index, the supervisor's data dir and descriptors."""

    index: int
    home: Path
    listen_fd: int
    local_fd: int
    ready_fd: int
    life_fd: int

    def to_env(self) -> str:
        return json.dumps({"index": self.index, "home": str(self.home),
                           "fds": [self.listen_fd, self.local_fd, self.ready_fd,
                                   self.life_fd]})

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> WorkerSpec | None:
        """The spec of this process if it is a worker; None otherwise.

        Raises:
            UsageError: the variable is set but malformed (not made by a supervisor).
        """
        text = environ.get(WORKER_ENV)
        if not text:
            return None
        try:
            data = json.loads(text)
            fds = [int(fd) for fd in data["fds"]]
            return cls(int(data["index"]), Path(data["home"]), *fds)
        except (ValueError, KeyError, TypeError) as exc:
            raise UsageError(f"{WORKER_ENV} is malformed ({exc})",
                             hint=f"unset {WORKER_ENV}: only `flwd :serve --workers N` sets "
                                  "it for its workers") from None


def adopt_worker(spec: WorkerSpec) -> None:
    """Keep the inherited descriptors from this worker's own children (the process
    keeper, the jobs): a job holding the lifeline or the listening socket would outlive
    the worker with them."""
    for fd in (spec.listen_fd, spec.local_fd, spec.ready_fd, spec.life_fd):
        try:
            os.set_inheritable(fd, False)
        except OSError as exc:
            raise UsageError(f"{WORKER_ENV} names descriptor {fd}, which this process does "
                             f"not have ({exc.strerror})",
                             hint=f"unset {WORKER_ENV}: only `flwd :serve --workers N` "
                                  "sets it for its workers") from None


def check_workers(count: int) -> None:
    """Raises UsageError when ``--workers`` is out of range."""
    if not 1 <= count <= MAX_WORKERS:
        raise UsageError(f"--workers must be between 1 and {MAX_WORKERS} (got {count})",
                         hint="one worker per CPU core is a good start")


def worker_settings(settings: Settings, spec: WorkerSpec) -> Settings:
    """A worker's settings: its own data dir under the supervisor's, the supervisor's
    Core DB, shared (a PostgreSQL one is shared anyway)."""
    from flwd.store import POSTGRES_SCHEMES

    db = settings.db or str(spec.home / "flwd.db")
    return replace(settings, data_dir=worker_dir(spec.home, spec.index), db=db,
                   shared_db=not db.startswith(POSTGRES_SCHEMES))


def worker_dir(home: Path, index: int) -> Path:
    return home / "workers" / str(index)


def inherited_listener(spec: WorkerSpec) -> socket.socket:
    """The supervisor's listening TCP socket, in this worker."""
    sock = socket.socket(fileno=spec.listen_fd)
    sock.setblocking(False)
    return sock


async def signal_ready(spec: WorkerSpec) -> None:
    """Tell the supervisor this worker serves.

    Cancellation: the supervisor sees no ``ready`` (as if it had died starting).
    """
    async with trio.lowlevel.FdStream(spec.ready_fd) as stream:
        try:
            await stream.send_all(b"ready\n")
        except trio.BrokenResourceError:
            pass  # the supervisor is gone: the lifeline says so too


async def watch_lifeline(spec: WorkerSpec, stopping: trio.Event,
                         stop: Callable[[], None]) -> None:
    """Until ``stopping`` is set: call ``stop`` (which must set it: a graceful stop) when
    the supervisor is gone — the lifeline pipe, whose other end only the supervisor
    holds, reaches its end.

    Cancellation: nothing is left behind (the pipe is closed).
    """
    async def read() -> None:
        async with trio.lowlevel.FdStream(spec.life_fd) as stream:
            while await stream.receive_some(64):
                pass
        _log.warning("flwd: the supervisor of this worker is gone; stopping")
        stop()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read)
        await stopping.wait()
        nursery.cancel_scope.cancel()


@dataclass
class _Slot:
    index: int
    process: trio.Process | None = None
    ready: trio.Event | None = None


async def run_workers(home: Path, count: int, argv: Sequence[str], *, listen_fd: int,
                      local_fd: int, stopping: trio.Event, stop_timeout: float,
                      task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                      ) -> None:
    """Start ``count`` workers (``argv`` with :data:`WORKER_ENV` set), report started once
    every one serves, restart one that dies, and stop them all when ``stopping`` is set.

    Raises:
        WorkerFailed: a worker stopped before it first served (the others are stopped).

    Cancellation: every worker is killed (SIGKILL to its process group) and waited for.
    """
    slots = [_Slot(index) for index in range(count)]
    async with trio.open_nursery() as nursery:
        for slot in slots:
            slot.ready = trio.Event()
            nursery.start_soon(_keep, slot, home, argv, listen_fd, local_fd, stopping,
                               stop_timeout)
        for slot in slots:
            assert slot.ready is not None
            await slot.ready.wait()
        task_status.started()


async def _keep(slot: _Slot, home: Path, argv: Sequence[str], listen_fd: int, local_fd: int,
                stopping: trio.Event, stop_timeout: float) -> None:
    """Keep worker ``slot.index`` running until ``stopping``; then stop it."""
    backoff, first = RESTART_FIRST, True
    while True:
        started = trio.current_time()
        ready, status = await _one_life(slot, home, argv, listen_fd, local_fd, stopping,
                                        stop_timeout)
        if stopping.is_set():
            return
        if first and not ready:
            raise WorkerFailed(f"worker {slot.index} stopped before it was serving "
                               f"(exit status {status}); its message is above",
                               hint="fix what it reports, or start without --workers")
        first = False
        if trio.current_time() - started > STABLE:
            backoff = RESTART_FIRST
        _log.warning("flwd: worker %d exited (status %s); starting it again in %.1f s",
                     slot.index, status, backoff)
        with trio.move_on_after(backoff):
            await stopping.wait()
        if stopping.is_set():
            return
        backoff = min(backoff * 2, RESTART_MAX)


async def _one_life(slot: _Slot, home: Path, argv: Sequence[str], listen_fd: int,
                    local_fd: int, stopping: trio.Event, stop_timeout: float
                    ) -> tuple[bool, int]:
    """Start the worker, wait until it serves (or dies), then until it exits; stop it when
    ``stopping``. (whether it served, its exit status)."""
    ready_r, ready_w = os.pipe()
    life_r, life_w = os.pipe()
    try:
        spec = WorkerSpec(slot.index, home, listen_fd, local_fd, ready_w, life_r)
        env = {**os.environ, WORKER_ENV: spec.to_env()}
        process = await trio.lowlevel.open_process(
            list(argv), env=env, pass_fds=(listen_fd, local_fd, ready_w, life_r),
            process_group=0)
    except BaseException:
        for fd in (ready_r, ready_w, life_r, life_w):
            os.close(fd)
        raise
    os.close(ready_w)
    os.close(life_r)
    slot.process = process
    served = False
    try:
        async with trio.lowlevel.FdStream(ready_r) as ready:
            served = bool(await ready.receive_some(64))
        if served and slot.ready is not None:
            slot.ready.set()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_stop_when, stopping, process, stop_timeout)
            await process.wait()
            nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            if process.returncode is None:
                _kill(process)
                await process.wait()
            os.close(life_w)
    assert process.returncode is not None
    return served, process.returncode


async def _stop_when(stopping: trio.Event, process: trio.Process, patience: float) -> None:
    await stopping.wait()
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
    await trio.sleep(patience)
    _log.warning("flwd: worker (pid %d) did not stop in %.0f s; killing it", process.pid,
                 patience)
    _kill(process)


def _kill(process: trio.Process) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except OSError:
        pass


def worker_argv() -> list[str]:
    """How this process was started, to start a worker the same way."""
    return [sys.executable, "-m", "flwd", *sys.argv[1:]]


def link_idempotency_key(home: Path, count: int) -> None:
    """Give every worker the supervisor's idempotency key (one key per Core DB: two
    would answer a retried request 409; see flwd/store/_idempotency.py). Blocking."""
    from flwd.store import install_key

    install_key(home)
    source = home / "idempotency.key"
    for index in range(count):
        directory = worker_dir(home, index)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        target = directory / "idempotency.key"
        try:
            if os.path.samefile(source, target):
                continue
            target.unlink()
        except FileNotFoundError:
            pass
        os.link(source, target)
