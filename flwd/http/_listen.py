"""The listening socket of ``flwd :serve``, bound before anything else starts.

Hypercorn binds inside its own nursery, so a busy port reached the CLI as
``internal error: ExceptionGroup``. Bound here, after the checks and before
anything with state starts (the data dir's lock, recovery, the engine), every
way binding can fail is one line naming the address and the fix
(``ListenFailed``, exit 1).
"""

from __future__ import annotations

import errno
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from flwd.errors import ListenFailed

_HINTS = {
    errno.EADDRINUSE: "stop the process that listens there ('ss -ltnp' shows it) or choose "
                      "another --bind; port 0 picks a free one",
    errno.EACCES: "ports below 1024 need root or CAP_NET_BIND_SERVICE: choose a port from "
                  "1024 up",
    errno.EADDRNOTAVAIL: "the address is not one of this machine's: bind 127.0.0.1, 0.0.0.0 "
                         "or an address 'ip addr' lists",
}


def _reason(exc: OSError) -> str:
    text = exc.strerror or str(exc)
    return text[:1].lower() + text[1:]


def listen(host: str, port: int, *, backlog: int, user_timeout_ms: int) -> socket.socket:
    """A TCP socket listening on ``host:port`` (non-blocking, not inherited by children);
    ``user_timeout_ms`` is its ``TCP_USER_TIMEOUT`` (see ``_serve``).

    Raises:
        ListenFailed: the address is in use, not this host's, a port this user may
            not use, or ``host`` does not resolve — one line with the fix.
    """
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ListenFailed(f"cannot listen on {where}: cannot resolve {host!r}: "
                           f"{_reason(exc)}",
                           hint="use an IP address, e.g. --bind 127.0.0.1:8080") from None
    family, type_, proto, _, address = infos[0]
    sock = socket.socket(family, type_, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if hasattr(socket, "TCP_USER_TIMEOUT"):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, user_timeout_ms)
        sock.bind(address)
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise ListenFailed(f"cannot listen on {where}: {_reason(exc)}",
                           hint=_HINTS.get(exc.errno or 0)) from None
    return sock


@asynccontextmanager
async def owning(sock: socket.socket) -> AsyncIterator[socket.socket]:
    """Close ``sock`` when the block ends (Hypercorn closes it too, on a normal stop).

    Cancellation: closing does not wait.
    """
    try:
        yield sock
    finally:
        sock.close()
