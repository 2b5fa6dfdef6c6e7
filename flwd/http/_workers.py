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
import socket
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import trio

from flwd.daemon import LOCAL_SOCKET
from flwd.errors import UsageError
from flwd.settings import Settings

from ._local_socket import LocalSocket, open_local_socket

_log = logging.getLogger("flwd.serve")

#: Names a worker's inherited descriptors (JSON); set only by the supervisor.
WORKER_ENV = "FLWD_WORKER"
#: ``--workers`` at most.
MAX_WORKERS = 64


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


@asynccontextmanager
async def serve_socket(data_dir: Path, worker: WorkerSpec | None
                       ) -> AsyncIterator[LocalSocket]:
    """The data dir's ``serve.sock`` (:func:`open_local_socket`); a worker's is its
    supervisor's, inherited, and only closed here.

    Cancellation: as :func:`open_local_socket`.
    """
    if worker is None:
        async with open_local_socket(data_dir) as local:
            yield local
        return
    sock = socket.socket(fileno=worker.local_fd)
    try:
        yield LocalSocket(sock, worker.home / LOCAL_SOCKET, (-1, -1))
    finally:
        sock.close()
