"""``flwd :serve``: Hypercorn (trio worker) + the app, inside the actor tree.

Shutdown on SIGTERM/SIGINT, in dependency order: the hub ends every event
stream at once (streams finish cleanly instead of being cut), Hypercorn stops
accepting and gives in-flight requests ``graceful_timeout``, then the engine
cancels live runs (TERM → grace → KILL, journaled) and flushes the journal
last. Hypercorn is only ever stopped through its ``shutdown_trigger``.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import hypercorn.trio
import trio
from hypercorn.config import Config, Sockets

from flwd.engine import open_engine
from flwd.errors import ContainerRuntimeUnavailable, UsageError
from flwd.events import RUN_FINISH, RUN_START, EventRecord
from flwd.policy import resolve_profile
from flwd.settings import Settings
from flwd.sources import AllowList

from ._app import ServeOptions, create_app
from ._auth import Authenticator, load_tokens
from ._logging import configure_logging, lifecycle
from ._metrics import Metrics

#: Linux: how long unacknowledged data may sit in a socket before the kernel
#: gives up on the peer. Without it, a client that stops reading pins
#: Hypercorn's shielded write — and so shutdown — forever.
TCP_USER_TIMEOUT_MS = 10_000


def _tcp_user_timeout_ms() -> int:
    # FLWD_TCP_USER_TIMEOUT_MS lets tests (and impatient operators) shorten it.
    text = os.environ.get("FLWD_TCP_USER_TIMEOUT_MS", "")
    return int(text) if text.isdigit() and int(text) > 0 else TCP_USER_TIMEOUT_MS


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
    #: Folders (besides the scripts root) that local and file:// git sources may use.
    allow_paths: tuple[str, ...] = ()
    #: Hosts that git sources may be cloned from.
    git_allow_hosts: tuple[str, ...] = ()


def parse_bind(bind: str) -> tuple[str, int]:
    host, sep, port_text = bind.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise UsageError(f"invalid --bind {bind!r}", hint="use HOST:PORT, e.g. 127.0.0.1:8080")
    return host.strip("[]") or "0.0.0.0", int(port_text)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def detect_container_runtime() -> str | None:
    """``podman`` (preferred) or ``docker`` on PATH, else None."""
    for name in ("podman", "docker"):
        if shutil.which(name):
            return name
    return None


class _Config(Config):
    def create_sockets(self) -> Sockets:
        sockets = super().create_sockets()
        for sock in (*sockets.secure_sockets, *sockets.insecure_sockets):
            if sock.family in (socket.AF_INET, socket.AF_INET6) and hasattr(
                    socket, "TCP_USER_TIMEOUT"):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT,
                                _tcp_user_timeout_ms())
        return sockets


def _metrics_tap(metrics: Metrics) -> object:
    started: dict[str, float] = {}

    def tap(batch: Sequence[EventRecord]) -> None:
        metrics.journal_batches.inc()
        metrics.journal_events.inc(sum(record.n for record in batch))
        for record in batch:
            if record.type == RUN_START:
                started[record.run_id] = record.ts
            elif record.type == RUN_FINISH:
                metrics.runs.labels(str(record.data.get("status"))).inc()
                begin = started.pop(record.run_id, None)
                if begin is not None:
                    metrics.run_duration.observe(max(0.0, record.ts - begin))

    return tap


async def serve(settings: Settings, config: ServeConfig, *,
                task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
    """Run the server until SIGTERM/SIGINT; ``task_status`` gets the bound URLs.

    Raises:
        UsageError: bad bind, ``--dev`` on a non-loopback address, bad tokens file.
        ContainerRuntimeUnavailable: no podman/docker and not ``--no-containers``.

    Cancellation: cancelling skips Hypercorn's graceful phase (open connections
    are closed), but runs are still cancelled with their ladder and the journal
    is flushed.
    """
    host, port = parse_bind(config.bind)
    loopback = is_loopback(host)
    if config.dev and not loopback:
        raise UsageError(f"--dev is refused on the non-loopback address {host}",
                         hint="bind 127.0.0.1 for development, or configure tokens")
    profile = resolve_profile(configured=config.profile)
    runtime = detect_container_runtime()
    if runtime is None and not config.no_containers:
        raise ContainerRuntimeUnavailable(
            "no container runtime found: neither podman nor docker is on PATH",
            hint="install podman (preferred) or docker, or pass --no-containers")
    tokens_path = config.tokens or settings.data_dir / "tokens.json"
    authenticator = Authenticator(load_tokens(tokens_path), dev=config.dev)
    configure_logging(config.log)
    options = ServeOptions(dev=config.dev, metrics=config.metrics, metrics_open=loopback,
                           aliases_public=config.aliases_public, profile=profile,
                           keep_alive=config.keep_alive)
    metrics = Metrics(profile) if config.metrics else None

    hypercorn_config = _Config()
    hypercorn_config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    hypercorn_config.graceful_timeout = config.graceful_timeout
    hypercorn_config.accesslog = None
    hypercorn_config.errorlog = "-"
    hypercorn_config.logconfig_dict = None

    shutting_down = trio.Event()
    allow = AllowList.build(settings.scripts_root, config.allow_paths, config.git_allow_hosts)
    async with open_engine(settings, owner_kind="serve", sources=allow) as engine:
        if metrics is not None:
            engine.hub.taps.append(_metrics_tap(metrics))  # type: ignore[arg-type]
        app = create_app(engine, options, authenticator, metrics)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_watch_signals, shutting_down, engine.hub.close)
            binds: list[str] = await nursery.start(partial(
                hypercorn.trio.serve, app, hypercorn_config, shutdown_trigger=shutting_down.wait))
            lifecycle("serving", urls=binds, profile=profile, dev=config.dev,
                      container_runtime=runtime or "none", tokens_file=str(tokens_path),
                      data_dir=str(settings.data_dir))
            task_status.started(binds)
            # The nursery ends when Hypercorn returns after its graceful
            # shutdown; it is never cancelled from here.
    lifecycle("stopped")


async def _watch_signals(shutting_down: trio.Event, close_streams: object) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            lifecycle("shutting down", signal=signal.Signals(signum).name)
            close_streams()  # type: ignore[operator]
            shutting_down.set()
            return
