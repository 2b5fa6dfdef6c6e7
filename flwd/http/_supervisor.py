"""The supervisor of ``flwd :serve --workers N`` (see ``_workers`` for the shape)."""

from __future__ import annotations

import socket
from dataclasses import replace
from functools import partial

import trio

from flwd.daemon import CLIENT_PROTOCOL, client_url
from flwd.engine import recover
from flwd.errors import UsageError
from flwd.settings import Settings

from ._listen import listen, owning
from ._local_socket import open_local_socket
from ._logging import configure_logging, lifecycle
from ._preflight import preflight
from ._serve import ServeConfig, _own_data_dir, _tcp_user_timeout_ms, is_loopback, parse_bind
from ._workers import STOP_MARGIN, link_idempotency_key, run_workers, worker_argv

#: The listen backlog of the shared sockets (Hypercorn's default).
BACKLOG = 100


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
    async with owning(listener), _own_data_dir(settings) as owned, \
            open_local_socket(settings.data_dir) as local:
        # What a crash left (a single server's runs, a CLI's) is marked before any worker
        # starts; the workers' own runs are the cluster's, reaped when their lease lapses.
        await trio.to_thread.run_sync(recover, settings)
        await trio.to_thread.run_sync(link_idempotency_key, settings.data_dir, count)
        local.sock.listen(BACKLOG)
        url = _url(listener)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_watch_signals, stopping)
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


async def _watch_signals(stopping: trio.Event) -> None:
    import signal

    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            lifecycle("shutting down", signal=signal.Signals(signum).name)
            stopping.set()
            return
