"""The server's Unix socket, ``<data dir>/serve.sock``: the API for the OS user owning the
data dir, without a token (the thin CLI client's way in).

Who may connect is the kernel's to say twice: the socket file is mode 0600 in the data
dir, and every accepted connection's peer is checked with ``SO_PEERCRED`` — a process
of another user is closed before a byte of it is read. Requests that came in this way
carry the peer in their ASGI scope (:data:`PEER_SCOPE_KEY`); the app gives them every
scope, as the data dir's owner may open its Core DB anyway (the KV's rule).

Hypercorn does not say on which socket a request arrived, nor check peers, so this
module accepts the connections itself and hands each to Hypercorn's own connection
handler (``TCPServer``, which speaks HTTP/1.1 on any trio stream): the HTTP stack is
the same as on TCP.

Creating the socket is careful, as the data dir may hold anything: a symlink at its
name is refused (never followed), a socket something still answers on is refused, a
stale one (a crashed server's) is removed, anything else there is refused. The file is
removed when serving ends, unless another server has replaced it meanwhile.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import ConnectionState
from hypercorn.utils import wrap_app
from quart import request

from flwd.daemon import LOCAL_SOCKET, socket_address
from flwd.errors import ListenFailed
from flwd.execute import process_alive, process_start_time, signal_owner

#: Where a request that came through the local socket carries its peer (pid, uid, gid).
PEER_SCOPE_KEY = "flwd.peer"
#: ``struct ucred``: pid, uid, gid.
_UCRED = struct.Struct("3i")


@dataclass(frozen=True, slots=True)
class Peer:
    """The process at the other end of a local connection, as the kernel saw it connect."""

    pid: int
    uid: int
    gid: int


def peer_of(sock: socket.socket | trio.socket.SocketType) -> Peer:
    """The connected peer of a Unix socket (``SO_PEERCRED``)."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    return Peer(*_UCRED.unpack(raw))


def is_local_peer() -> bool:
    """The current request came through the local socket."""
    return PEER_SCOPE_KEY in request.scope


def local_peer() -> Peer | None:
    """The process that sent the current request through the local socket (None: TCP)."""
    peer = request.scope.get(PEER_SCOPE_KEY)
    return peer if isinstance(peer, Peer) else None


@dataclass(frozen=True, slots=True)
class Client:
    """A thin client following its run: its process, told apart from a later one with
    the same pid by its start time."""

    pid: int
    start: int | None

    @classmethod
    def of(cls, peer: Peer) -> Client:
        return cls(peer.pid, process_start_time(peer.pid))

    def signal(self) -> bool:
        """Ask it to cancel its run as a local CLI is asked (SIGTERM: it cancels with
        its own reason and exits 143); False when it is gone."""
        return process_alive(self.pid, self.start) and signal_owner(self.pid)


def peer_allowed(peer: Peer, own_uid: int) -> bool:
    """Only a process of this server's own user (the data dir's owner) is served; root
    is not an exception: it can act as the user if it means to."""
    return peer.uid == own_uid


@dataclass(slots=True)
class LocalSocket:
    """The bound (not yet listening) socket and the file it made."""

    sock: socket.socket
    path: Path
    #: (st_dev, st_ino) of the socket file we made: removed only if it is still ours.
    identity: tuple[int, int]

    def remove(self) -> None:
        """Close the socket and remove its file, unless it is no longer ours."""
        self.sock.close()
        try:
            found = os.stat(self.path, follow_symlinks=False)
            if (found.st_dev, found.st_ino) == self.identity:
                self.path.unlink()
        except OSError:
            pass


def bind_local_socket(data_dir: Path) -> LocalSocket:
    """Bind ``<data_dir>/serve.sock``, mode 0600; not listening yet (nobody can connect
    until the server is ready). Call it while owning the data dir (its lock).

    Raises:
        ListenFailed: a symlink or a file that is not a socket is in the way, another
        process answers on the socket, or it cannot be made (one line, with the fix).
    """
    path = data_dir / LOCAL_SOCKET
    directory = os.open(data_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _clear_the_way(path, directory)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(socket_address(path, directory))
            made = os.stat(path, follow_symlinks=False)
            if not stat.S_ISSOCK(made.st_mode) or made.st_uid != os.geteuid():
                raise ListenFailed(f"cannot listen on {path}: it changed while being made",
                                   hint="make sure only you can write the data dir")
            # Before listen(): until then a connect is refused, whatever the mode.
            os.chmod(path, 0o600)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            raise ListenFailed(f"cannot listen on {path}: {exc.strerror or exc}",
                               hint="check the data dir's permissions") from None
        except BaseException:
            sock.close()
            raise
        return LocalSocket(sock, path, (made.st_dev, made.st_ino))
    finally:
        os.close(directory)


def _clear_the_way(path: Path, directory: int) -> None:
    try:
        found = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(found.st_mode):
        raise ListenFailed(f"refusing to listen on {path}: it is a symbolic link",
                           hint="remove it; flwd makes that socket itself")
    if not stat.S_ISSOCK(found.st_mode):
        raise ListenFailed(f"refusing to listen on {path}: a file that is not a socket is "
                           "in the way", hint="move it away; flwd makes that socket itself")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(socket_address(path, directory))
    except OSError as exc:
        if exc.errno not in (errno.ECONNREFUSED, errno.ENOENT):
            raise ListenFailed(f"cannot check the socket {path}: {exc.strerror or exc}",
                               hint="remove it if no flwd server uses it") from None
        path.unlink(missing_ok=True)  # stale: a server that died left it
        return
    finally:
        probe.close()
    raise ListenFailed(f"another process answers on {path}",
                       hint="stop the server that listens there first")


@asynccontextmanager
async def open_local_socket(data_dir: Path) -> AsyncIterator[LocalSocket]:
    """:func:`bind_local_socket`, removed when the block ends (however it ends).

    Cancellation: the socket is removed all the same.
    """
    local = bind_local_socket(data_dir)
    try:
        yield local
    finally:
        local.remove()


def _with_peer(app: Any, peer: Peer) -> Callable[..., Awaitable[None]]:
    """``app`` with this connection's peer in every request's scope."""

    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await app({**scope, PEER_SCOPE_KEY: peer}, receive, send)

    return asgi


async def serve_local_socket(app: Any, config: Config, local: LocalSocket,
                             shutdown_trigger: Callable[[], Awaitable[None]]) -> None:
    """Accept connections on ``local`` (listening from now on) until ``shutdown_trigger``
    returns, serving each through Hypercorn; then let open connections finish for
    ``config.graceful_timeout`` seconds, and close the rest.

    Cancellation: every connection is closed at once (a client that stopped reading
    cannot hold the server: its stream is closed under the blocked write).
    """
    local.sock.listen(config.backlog)
    listener = trio.SocketListener(trio.socket.from_stdlib_socket(local.sock))
    context = WorkerContext(None)
    own_uid = os.geteuid()
    streams: set[trio.SocketStream] = set()

    async def handle(stream: trio.SocketStream, peer: Peer) -> None:
        streams.add(stream)
        try:
            await TCPServer(wrap_app(_with_peer(app, peer), config.wsgi_max_body_size, "asgi"),
                            config, context, ConnectionState({}), stream)  # type: ignore[arg-type]
        finally:
            streams.discard(stream)

    try:
        async with trio.open_nursery() as guard:
            async with trio.open_nursery() as connections:
                async with trio.open_nursery() as accepting:

                    def start(stream: trio.SocketStream, peer: Peer) -> None:
                        connections.start_soon(handle, stream, peer)

                    accepting.start_soon(_accept, listener, own_uid, start)
                    await shutdown_trigger()
                    accepting.cancel_scope.cancel(reason="the server is stopping")
                await listener.aclose()
                await context.terminated.set()  # idle keep-alive connections close now
                deadline = trio.current_time() + config.graceful_timeout
                connections.cancel_scope.deadline = deadline
                guard.start_soon(_close_at, deadline, streams)
            guard.cancel_scope.cancel(reason="every connection is closed")
    finally:
        _close_all(streams)


async def _close_at(deadline: float, streams: set[trio.SocketStream]) -> None:
    await trio.sleep_until(deadline)
    _close_all(streams)


def _close_all(streams: set[trio.SocketStream]) -> None:
    # Closing the socket under a write blocked on a client that stopped reading (a
    # shielded write in Hypercorn) ends that write: nothing else would.
    for stream in list(streams):
        stream.socket.close()


async def _accept(listener: trio.SocketListener, own_uid: int,
                  start: Callable[[trio.SocketStream, Peer], None]) -> None:
    while True:
        stream = await listener.accept()
        try:
            peer = peer_of(stream.socket)
        except OSError:
            await stream.aclose()
            continue
        if not peer_allowed(peer, own_uid):
            await stream.aclose()  # another user's process: not a byte is read
            continue
        start(stream, peer)
