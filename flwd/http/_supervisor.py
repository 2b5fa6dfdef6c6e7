"""The supervisor of ``flwd :serve --workers N`` (see ``_workers`` for the shape), and
:func:`serve_any`, which serves as a command line asks: one server, a supervisor of
workers, or one of its workers."""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import trio

from flwd.daemon import CLIENT_PROTOCOL, client_url
from flwd.engine import ClusterSettings, recover
from flwd.errors import FlwdError, UsageError
from flwd.settings import Settings

from ._listen import listen, owning
from ._local_socket import open_local_socket
from ._logging import configure_logging, lifecycle
from ._preflight import preflight
from ._serve import ServeConfig, _tcp_user_timeout_ms, is_loopback, parse_bind, serve
from ._stopping import own_data_dir, watch_signals
from ._workers import (
    WORKER_ENV,
    WorkerSpec,
    adopt_worker,
    check_workers,
    worker_dir,
    worker_settings,
)

_log = logging.getLogger("flwd.serve")

#: The listen backlog of the shared sockets (Hypercorn's default).
BACKLOG = 100


async def serve_any(settings: Settings, config: ServeConfig, workers: int) -> None:
    """Serve as the command line asks: a worker of a supervisor (``FLWD_WORKER`` set: its
    data dir, Core DB and tokens file are the supervisor's), the supervisor of ``workers``
    processes, or one server.

    Raises:
        UsageError: a bad ``--workers``; and what :func:`serve` and :func:`serve_workers`
            raise.

    Cancellation: as :func:`serve` (or :func:`serve_workers`).
    """
    check_workers(workers)
    worker = WorkerSpec.from_env(os.environ)
    if worker is not None:
        adopt_worker(worker)
        config = replace(config, tokens=config.tokens or worker.home / "tokens.json",
                         cluster=replace(config.cluster or ClusterSettings(),
                                         local_first=True), worker=worker)
        await serve(worker_settings(settings, worker), config)
    elif workers > 1:
        await serve_workers(settings, config, workers)
    else:
        await serve(settings, config)


async def serve_workers(settings: Settings, config: ServeConfig, count: int, *,
                        task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED
                        ) -> None:
    """Serve with ``count`` worker processes until SIGTERM/SIGINT; ``task_status`` gets
    the URL once every worker serves.

    Raises:
        UsageError, ListenFailed, DataDirBusy, and what :func:`preflight` raises: as
            ``serve`` (checked here once, before any worker starts).
        WorkerFailed: a worker stopped before it first served.

    Cancellation: the workers are killed (their process groups) and waited for; their
    runs are then finished ``interrupted`` by the next start.
    """
    host, port = parse_bind(config.bind)
    if config.dev and not is_loopback(host):
        raise UsageError(f"--dev is refused on the non-loopback address {host}",
                         hint="bind 127.0.0.1 for development, or configure tokens")
    await trio.to_thread.run_sync(partial(
        preflight, settings, profile=config.profile, no_containers=config.no_containers))
    configure_logging(config.log)
    listener = listen(host, port, backlog=BACKLOG, user_timeout_ms=_tcp_user_timeout_ms())
    stopping = trio.Event()
    async with owning(listener), own_data_dir(settings) as owned, \
            open_local_socket(settings.data_dir) as local:
        # What a crash left (a single server's runs, a CLI's) is marked before any worker
        # starts; the workers' own runs are the cluster's, reaped when their lease lapses.
        await trio.to_thread.run_sync(recover, settings)
        await trio.to_thread.run_sync(link_idempotency_key, settings.data_dir, count)
        local.sock.listen(BACKLOG)
        url = _url(listener)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch_signals, stopping, lambda: None)
            await nursery.start(partial(
                run_workers, settings.data_dir, count, worker_argv(),
                listen_fd=listener.fileno(), local_fd=local.sock.fileno(), stopping=stopping,
                stop_timeout=config.graceful_timeout + settings.grace + STOP_MARGIN))
            await trio.to_thread.run_sync(owned.publish, replace(
                owned.owner, url=client_url(url), socket=str(local.path),
                protocol=CLIENT_PROTOCOL))
            lifecycle("serving", urls=[url], workers=count, data_dir=str(settings.data_dir),
                      db=settings.open_store().location)
            task_status.started([url])
            await stopping.wait()
            # The workers stop (run_workers returns once they all exited).
        lifecycle("stopped")


def _url(listener: socket.socket) -> str:
    host, port = listener.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


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
