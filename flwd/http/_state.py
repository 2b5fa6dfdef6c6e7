"""What every handler of one application shares, kept on the app (no closures).

:func:`create_app <flwd.http._app.create_app>` stores one :class:`AppState` in
``app.extensions["flwd"]``; a handler reaches it with :func:`current_state`, in a
request as in a WebSocket. Nothing in it changes after the app is built but the
stream slots' counter.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from quart import current_app

from flwd.engine import Engine

from ._auth import Authenticator
from ._grants import DEFAULT_TTL, Sessions
from ._hook_book import HookBook
from ._metrics import Metrics
from ._origins import HostCheck
from ._streams import MAX_STREAMS, StreamSlots

if TYPE_CHECKING:
    from ._command_line import CommandLines
    from ._local_socket import Client

#: Seconds between SSE keep-alive comments (also how fast a dead peer shows).
KEEP_ALIVE_INTERVAL = 15.0


@dataclass(frozen=True, slots=True)
class ServeOptions:
    """How the server answers: the :serve flags the handlers read."""

    dev: bool = False
    #: Serve /metrics at all, and without a token (loopback binds only).
    metrics: bool = True
    metrics_open: bool = True
    aliases_public: bool = False
    keep_alive: float = KEEP_ALIVE_INTERVAL
    #: The --bind host: with --dev, a Host header may name it (besides loopback names).
    bind_host: str = "127.0.0.1"
    #: Event streams open at once, process-wide (see flwd.http._streams).
    max_streams: int = MAX_STREAMS
    #: Serve the web UI at / and /ui/ (--ui=false: both are 404).
    ui: bool = True
    #: Seconds a browser session lives at most (see flwd.http._grants).
    session_ttl: float = DEFAULT_TTL
    #: ``--public-url``: where people reach this server (``GET /server``; the UI shows
    #: webhook addresses under it). None: the address the browser used.
    public_url: str | None = None


@dataclass(frozen=True, slots=True)
class AppState:
    """The engine the handlers ask, and what they answer with."""

    engine: Engine
    options: ServeOptions
    authenticator: Authenticator
    #: None: --no-metrics (nothing is counted).
    metrics: Metrics | None
    #: The process-wide cap on open event streams (see ``_streams``).
    streams: StreamSlots
    #: Which Host headers a --dev server answers (see ``_origins``).
    host_check: HostCheck
    #: Browser sessions, and what open streams re-check (see ``_grants``).
    sessions: Sessions
    #: When the app was built (``GET /server``): the wall clock, and the monotonic
    #: clock its uptime is measured on (a clock step does not change the uptime).
    started_at: float = field(default_factory=time.time)
    started_monotonic: float = field(default_factory=time.monotonic)
    #: The hooks served (``POST /hooks/<name>``), rebuilt when the configs change.
    hooks: HookBook = field(default_factory=HookBook)
    #: What plans a thin client's command line (``POST /runs``' words form; see
    #: ``_command_line``); None: that form is answered ``cli.local``.
    command_lines: CommandLines | None = None
    #: The command line each of their runs belongs to, while its stream is open: the
    #: client process, which a cancel is sent to as SIGTERM.
    command_line_clients: dict[str, Client] = field(default_factory=dict)

    @classmethod
    def build(cls, engine: Engine, options: ServeOptions, authenticator: Authenticator,
              metrics: Metrics | None, command_lines: CommandLines | None = None
              ) -> AppState:
        return cls(engine, options, authenticator, metrics, StreamSlots(options.max_streams),
                   HostCheck(options.bind_host),
                   Sessions(engine, authenticator, ttl=options.session_ttl),
                   command_lines=command_lines)


#: The key of :class:`AppState` in ``app.extensions``.
EXTENSION = "flwd"


def current_state() -> AppState:
    """The state of the app answering the current request or WebSocket."""
    state: AppState = current_app.extensions[EXTENSION]
    return state
