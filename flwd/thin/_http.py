"""HTTP/1.1 on the server's Unix socket, for the thin client (stdlib only).

The client sends one request per connection (``Connection: close``) and reads the
answer as it comes: :class:`ResponseReader` is sans-IO (bytes in, status, headers
and body bytes out; ``Content-Length``, chunked, or up to the close), :func:`connect`
and :func:`request` are the few system calls around it.
"""

from __future__ import annotations

# The C module under ``socket``: ``socket`` itself imports ``enum`` and ``selectors``
# (~15 ms of a start-up that is ~25 ms without them), for names this client never uses.
import _socket
import os

from ._json import dumps

TYPE_CHECKING = False  # not typing's: the thin client does not import typing
if TYPE_CHECKING:
    from collections.abc import Mapping

#: The longest path a ``sockaddr_un`` holds (flwd.daemon.socket_address).
_MAX_PATH = 107

#: The most a status line and headers may take (the server's are a few hundred bytes).
MAX_HEAD = 64 * 1024


class ProtocolError(Exception):
    """The bytes received are not an HTTP/1.1 answer this client understands."""


class ResponseReader:
    """An HTTP/1.1 response, parsed from the bytes :meth:`feed` is given."""

    def __init__(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        #: The status line and headers are parsed.
        self.head_done = False
        #: The body is complete (its length reached, or its last chunk seen).
        self.done = False
        self._buffer = b""
        self._left: int | None = None  # of a Content-Length body, or of the current chunk
        self._chunked = False
        self._chunk_crlf = False  # a chunk's data is read: its CRLF comes next

    def feed(self, data: bytes) -> bytes:
        """The body bytes ``data`` completes (decoded from chunks).

        Raises:
            ProtocolError: a malformed answer.
        """
        self._buffer += data
        if not self.head_done:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > MAX_HEAD:
                    raise ProtocolError("the answer's headers are too long")
                return b""
            self._head(self._buffer[:end].decode("latin-1"))
            self._buffer = self._buffer[end + 4:]
        return self._body()

    def end_of_stream(self) -> None:
        """The connection closed: fine for a body read up to the close.

        Raises:
            ProtocolError: the answer was cut short.
        """
        if not self.head_done or (not self.done and (self._chunked or self._left is not None)):
            raise ProtocolError("the connection closed before the answer's end")
        self.done = True

    def _head(self, text: str) -> None:
        lines = text.split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise ProtocolError(f"not an HTTP/1.1 status line: {lines[0][:80]!r}")
        self.status = int(parts[1])
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon:
                raise ProtocolError(f"not a header: {line[:80]!r}")
            self.headers[name.strip().lower()] = value.strip()
        self.head_done = True
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            self._chunked = True
        elif "content-length" in self.headers:
            length = self.headers["content-length"]
            if not length.isdigit():
                raise ProtocolError(f"bad Content-Length {length[:40]!r}")
            self._left = int(length)
            self.done = self._left == 0

    def _body(self) -> bytes:
        if not self._chunked:
            out, self._buffer = self._buffer, b""
            if self._left is not None:
                if len(out) > self._left:
                    raise ProtocolError("more body than its Content-Length")
                self._left -= len(out)
                self.done = self._left == 0
            return out
        pieces = []
        while not self.done:
            if self._chunk_crlf:
                if len(self._buffer) < 2:
                    break
                if self._buffer[:2] != b"\r\n":
                    raise ProtocolError("a chunk does not end with CRLF")
                self._buffer = self._buffer[2:]
                self._chunk_crlf = False
            if self._left is None:
                end = self._buffer.find(b"\r\n")
                if end < 0:
                    if len(self._buffer) > 1024:
                        raise ProtocolError("a chunk size line is too long")
                    break
                size = self._buffer[:end].split(b";", 1)[0].strip()
                try:
                    self._left = int(size, 16)
                except ValueError:
                    raise ProtocolError(f"bad chunk size {size[:20]!r}") from None
                self._buffer = self._buffer[end + 2:]
                if self._left == 0:
                    self.done = True  # trailers, if any, are not read: the connection closes
                    break
            piece = self._buffer[:self._left]
            self._buffer = self._buffer[len(piece):]
            self._left -= len(piece)
            pieces.append(piece)
            if self._left:
                break
            self._left = None
            self._chunk_crlf = True
        return b"".join(pieces)


def connect(path: str | os.PathLike[str], *, timeout: float = 5.0) -> _socket.socket:
    """A connection to the Unix socket ``path`` (blocking, not inherited by children).

    Raises:
        OSError: nothing listens there (a stale socket, no server), or it took too long.
    """
    path = os.fsdecode(path)
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    directory = None
    try:
        address = path
        if len(os.fsencode(path)) > _MAX_PATH:
            # Too long for a sockaddr_un: the same name through its open folder.
            directory = os.open(os.path.dirname(path) or ".",
                                os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            address = f"/proc/self/fd/{directory}/{os.path.basename(path)}"
        sock.settimeout(timeout)
        sock.connect(address)
        sock.settimeout(None)
    except BaseException:
        sock.close()
        raise
    finally:
        if directory is not None:
            os.close(directory)
    return sock


def request_bytes(method: str, target: str, body: object = None,
                  headers: Mapping[str, str] | None = None) -> bytes:
    """A request as bytes: ``body`` (JSON-able: see :func:`flwd.thin._json.dumps`) as
    ``application/json``."""
    payload = b"" if body is None else dumps(body).encode()
    lines = [f"{method} {target} HTTP/1.1", "Host: localhost", "Connection: close",
             f"Content-Length: {len(payload)}"]
    if body is not None:
        lines.append("Content-Type: application/json")
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload


def request(path: str | os.PathLike[str], method: str, target: str, body: object = None, *,
            timeout: float = 10.0) -> tuple[int, bytes]:
    """One short request on its own connection: the status and the whole body.

    Raises:
        OSError: the server cannot be reached, or did not answer within ``timeout``.
        ProtocolError: the answer is not HTTP/1.1.
    """
    sock = connect(path, timeout=timeout)
    try:
        sock.settimeout(timeout)
        sock.sendall(request_bytes(method, target, body))
        reader = ResponseReader()
        body_bytes = []
        while not reader.done:
            data = sock.recv(65536)
            if not data:
                reader.end_of_stream()
                break
            body_bytes.append(reader.feed(data))
        return reader.status, b"".join(body_bytes)
    finally:
        sock.close()
