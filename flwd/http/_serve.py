"""``flwd :serve``: Hypercorn (trio worker) + the app, inside the actor tree.

Shutdown on SIGTERM/SIGINT, in dependency order: the hub ends every event
stream at once (streams finish cleanly instead of being cut), Hypercorn stops
accepting and gives in-flight requests ``graceful_timeout``, then the engine
cancels live runs (TERM → grace → KILL, journaled) and flushes the journal
last. Hypercorn is only ever stopped through its ``shutdown_trigger``.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import hypercorn.trio
import trio
from hypercorn.config import Config, Sockets

from flwd import _codecache
from flwd.containers import reap_orphans
from flwd.daemon import CLIENT_PROTOCOL, client_url
from flwd.engine import ClusterSettings, open_engine
from flwd.errors import RunNotFound, UsageError
from flwd.events import (
    POLICY_DECISION,
    RUN_FINISH,
    RUN_START,
    STEP_FINISH,
    TERMINAL_STATUSES,
    EventRecord,
)
from flwd.kv import KvNamespaces
from flwd.notify import RunLinks, public_url_valid
from flwd.observe import UNOBSERVED
from flwd.settings import Settings
from flwd.sources import AllowList, OciContext
from flwd.store import RetentionPolicy, Store

from ._app import create_app
from ._auth import Authenticator
from ._command_line import CommandLines
from ._grants import DEFAULT_TTL
from ._listen import listen, owning
from ._local_socket import serve_local_socket
from ._logging import configure_logging, lifecycle
from ._metrics import Metrics, observe_policy_and_containers
from ._params import IntRange, parse_int, quote
from ._preflight import preflight
from ._server_tokens import keep_tokens_fresh, open_server_tokens
from ._state import ServeOptions
from ._stopping import own_data_dir, stop, watch_signals
from ._streams import MAX_STREAMS
from ._workers import (
    WorkerSpec,
    inherited_listener,
    serve_socket,
    signal_ready,
    watch_lifeline,
)

PORT = IntRange(0, 65535)

#: Linux: how long unacknowledged data may sit in a socket before the kernel
#: gives up on the peer. Without it, a client that stops reading pins
#: Hypercorn's shielded write — and so shutdown — forever.
TCP_USER_TIMEOUT_MS = 10_000


def _tcp_user_timeout_ms() -> int:
    # FLWD_TCP_USER_TIMEOUT_MS lets tests (and impatient operators) shorten it.
    text = os.environ.get("FLWD_TCP_USER_TIMEOUT_MS", "")
    try:
        return parse_int(text, IntRange(1, (1 << 31) - 1))
    except ValueError:
        return TCP_USER_TIMEOUT_MS


@dataclass(frozen=True, slots=True)
class ServeConfig:
    bind: str = "127.0.0.1:8080"
    dev: bool = False
    profile: str | None = None
    log: str = "text"
    metrics: bool = True
    aliases_public: bool = False
    tokens: Path | None = None
    no_containers: bool = False
    graceful_timeout: float = 5.0
    keep_alive: float = 15.0
    allow_paths: tuple[str, ...] = ()  # folders local and file:// git sources may use
    git_allow_hosts: tuple[str, ...] = ()  # hosts git sources may be cloned from
    #: Core DB limits, applied at start and every minute (None: keep everything).
    retention: RetentionPolicy | None = None
    #: At most this many runs execute at once; the others wait ``queued``.
    max_concurrent_runs: int | None = None
    #: At most this many event streams (SSE, NDJSON, WebSocket) are open at once;
    #: more are refused with 503 streams.busy (bounds replay memory in all).
    max_streams: int = MAX_STREAMS
    #: The Rule-Y KV namespaces allowed, with their quotas (None: FLWD_KV_NAMESPACES,
    #: else the reference's two).
    kv_namespaces: KvNamespaces | None = None
    #: Serve the web UI at / (False: --ui=false).
    ui: bool = True
    #: Seconds a browser session lives at most (``--session-ttl``).
    session_ttl: float = DEFAULT_TTL
    #: The URL people reach this server at (``--public-url``), for the links in
    #: notifications; None: the address it is bound to.
    public_url: str | None = None
    #: What plans the thin client's command lines (the CLI's; None: they run locally).
    command_lines: CommandLines | None = None
    cluster: ClusterSettings | None = None  # as a replica (--labels; PostgreSQL only)
    #: This server is a worker of ``:serve --workers N`` (its sockets inherited).
    worker: WorkerSpec | None = None


def parse_bind(bind: str) -> tuple[str, int]:
    host, sep, port_text = bind.rpartition(":")
    try:
        port = parse_int(port_text if sep else "", PORT)
    except ValueError:
        raise UsageError(f"invalid --bind {quote(bind)}",
                         hint="use HOST:PORT, e.g. 127.0.0.1:8080") from None
    return host.strip("[]") or "0.0.0.0", port


def run_links(config: ServeConfig, listener: socket.socket) -> RunLinks:
    """Where a notification points at a run: ``--public-url`` (checked by ``serve``), else
    the address the server is bound to (a wildcard address by this host's name)."""
    if config.public_url is not None:
        return RunLinks(config.public_url, ui=config.ui)
    host, port = listener.getsockname()[:2]
    host = socket.gethostname() if host in ("0.0.0.0", "::") else host
    return RunLinks(f"http://{f'[{host}]' if ':' in host else host}:{port}", ui=config.ui)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run_is_live(runs: Store, run_id: str) -> bool:
    """After start-up recovery, an unfinished run belongs to a live flwd process (blocking)."""
    try:
        run = runs.get_run(run_id)
    except RunNotFound:
        return False
    return run.status not in TERMINAL_STATUSES


class _Config(Config):
    #: Bound by serve() before anything else starts (see ``_listen``).
    listener: socket.socket | None = None

    def create_sockets(self) -> Sockets:
        assert self.listener is not None, "serve() binds the socket first"
        return Sockets([], [self.listener], [])


def _metrics_tap(metrics: Metrics) -> object:
    started: dict[str, float] = {}

    def tap(batch: Sequence[EventRecord]) -> None:
        metrics.journal_batches.inc()
        metrics.journal_events.inc(sum(record.n for record in batch))
        for record in batch:
            if record.type in (POLICY_DECISION, STEP_FINISH):
                observe_policy_and_containers(metrics, record)
            if record.type == RUN_START:
                started[record.run_id] = record.ts
            elif record.type == RUN_FINISH:
                metrics.observe_run_finish(record.data.get("status"))
                begin = started.pop(record.run_id, None)
                if begin is not None:
                    metrics.run_duration.observe(max(0.0, record.ts - begin))

    return tap


async def serve(settings: Settings, config: ServeConfig, *,
                task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
    """Run the server until SIGTERM/SIGINT; ``task_status`` gets the bound URLs.

    Raises:
        UsageError: bad bind, ``--dev`` on a non-loopback address, bad tokens file.
        ListenFailed: the --bind address cannot be listened on (in use, not ours…).
        ContainerRuntimeUnavailable: no podman/docker and not ``--no-containers``.
        ProfileInvalid, PolicyBundleInvalid, PolicySignatureInvalid: see :func:`preflight`.

    Cancellation: cancelling skips Hypercorn's graceful phase (open connections
    are closed), but runs are still cancelled with their ladder and the journal
    is flushed.
    """
    host, port = parse_bind(config.bind)
    kv_namespaces = config.kv_namespaces or KvNamespaces.from_env(os.environ)
    loopback = is_loopback(host)
    if config.dev and not loopback:
        raise UsageError(f"--dev is refused on the non-loopback address {host}",
                         hint="bind 127.0.0.1 for development, or configure tokens")
    if config.public_url is not None and not public_url_valid(config.public_url):
        raise UsageError(f"invalid --public-url {quote(config.public_url)}",
                         hint="give the URL people reach this server at, e.g. "
                              "https://flwd.example.com (http or https, no query)")
    checked = await trio.to_thread.run_sync(partial(
        preflight, settings, profile=config.profile, no_containers=config.no_containers))
    profile, runtime = checked.profile, checked.runtime
    tokens_path = config.tokens or settings.data_dir / "tokens.json"
    # Read now (a bad file refuses the start), then kept up to date (_server_tokens.py).
    tokens = await open_server_tokens(settings.open_store(), config.tokens, tokens_path)
    authenticator = Authenticator(tokens, dev=config.dev)
    configure_logging(config.log)
    # The profile, policy and runtime requests are planned with are the engine's.
    options = ServeOptions(dev=config.dev, metrics=config.metrics, metrics_open=loopback,
                           aliases_public=config.aliases_public, keep_alive=config.keep_alive,
                           bind_host=host, max_streams=config.max_streams, ui=config.ui,
                           session_ttl=config.session_ttl, public_url=config.public_url)
    metrics = Metrics(profile) if config.metrics else None

    hypercorn_config = _Config()
    hypercorn_config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    # Bound here, before the data dir's lock, recovery and the engine (and closed by
    # owning() below however serving ends): a busy port is one line, nothing started.
    hypercorn_config.listener = listener = listen(
        host, port, backlog=hypercorn_config.backlog, user_timeout_ms=_tcp_user_timeout_ms()
    ) if config.worker is None else inherited_listener(config.worker)
    hypercorn_config.graceful_timeout = config.graceful_timeout
    hypercorn_config.accesslog = None
    # Hypercorn's messages go through configure_logging's logger, so --log=json is one
    # JSON object per line (a "-" target would install its plain-text handler instead).
    hypercorn_config.errorlog = logging.getLogger("hypercorn.error")
    hypercorn_config.logconfig_dict = None

    links = run_links(config, listener)
    shutting_down = trio.Event()
    allow = AllowList.build(settings.scripts_root, config.allow_paths, config.git_allow_hosts)
    oci = OciContext(runtime, checked.policy, profile, dict(os.environ))
    async with owning(listener), own_data_dir(settings) as owned, \
            serve_socket(settings.data_dir, config.worker) as local, open_engine(
            settings, owner_kind="serve", sources=allow, oci=oci, retention=config.retention,
            max_concurrent_runs=config.max_concurrent_runs, policy=checked.policy,
            runtime=runtime, profile=profile, kv_namespaces=kv_namespaces,
            observer=metrics if metrics is not None else UNOBSERVED, schedules=True,
            links=links, cluster=config.cluster) as engine:
        if runtime is not None:
            # Recovery has marked the runs of dead owners; their containers go now.
            await trio.to_thread.run_sync(partial(
                reap_orphans, runtime, partial(run_is_live, settings.open_store())))
        if metrics is not None:
            engine.hub.taps.append(_metrics_tap(metrics))  # type: ignore[arg-type]
            metrics.watch_replica(engine)
        app = create_app(engine, options, authenticator, metrics, config.command_lines)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch_signals, shutting_down, engine.hub.close)
            if config.worker is not None:  # and for the end of its supervisor
                nursery.start_soon(watch_lifeline, config.worker, shutting_down,
                                   partial(stop, shutting_down, engine.hub.close))
            nursery.start_soon(keep_tokens_fresh, tokens, shutting_down)
            binds: list[str] = await nursery.start(partial(
                hypercorn.trio.serve, app, hypercorn_config, shutdown_trigger=shutting_down.wait))
            nursery.start_soon(serve_local_socket, app, hypercorn_config, local,
                               shutting_down.wait)
            # Before "serving": a CLI told of this server learns where to send its change
            # (its supervisor's data dir, for a worker: the supervisor publishes that).
            if config.worker is None:
                await trio.to_thread.run_sync(owned.publish, replace(
                    owned.owner, url=client_url(binds[0]), socket=str(local.path),
                    protocol=CLIENT_PROTOCOL))
            lifecycle("serving" if config.worker is None else "worker serving", urls=binds,
                      worker=None if config.worker is None else config.worker.index, profile=profile, dev=config.dev, ui=config.ui,
                      container_runtime=runtime.kind if runtime else "none",
                      policy_bundle=str(checked.bundle_path) if checked.bundle_path else None,
                      policy_verified_by=checked.verified_by, tokens_file=tokens.where,
                      data_dir=str(settings.data_dir), db=settings.open_store().location)
            if config.worker is not None:
                await signal_ready(config.worker)
            task_status.started(binds)
            await trio.to_thread.run_sync(_codecache.close)  # imports done: keep, let go
            # Ends when Hypercorn returns from its graceful shutdown; never cancelled here.
    lifecycle("stopped")
