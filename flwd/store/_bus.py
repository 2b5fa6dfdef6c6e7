"""The notification bus of a SQLite Core DB shared by the processes of one host.

PostgreSQL tells its listeners what a transaction committed (``NOTIFY``,
:mod:`flwd.store._signals`); SQLite has no such thing. The workers of ``flwd :serve
--workers N`` share one SQLite Core DB, and each must hear as soon as another commits
a run it follows, a run to claim or a cancel for one of its runs. So every process
that listens binds a Unix datagram socket in ``<db>.listeners/`` (mode 0700, sockets
0600), and a writer, once its transaction committed, sends what it would have
notified to every socket there (:class:`Sender`).

The messages are the same *hints* as PostgreSQL's: ids, never events, and a lost one
(a listener's queue full, a listener bound while the directory was being read) only
delays a reader until its polling fallback. Sending never blocks: a full queue drops
the datagram. A socket nobody listens on any more (its process died) is removed by
the first sender that finds it refused.

A datagram holds lines ``<channel>\\t<payload>``, at most :data:`MAX_DATAGRAM` bytes.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

#: The bytes of one datagram at most (a batch of many runs is sent in several).
MAX_DATAGRAM = 16 * 1024
#: A sender reads the directory again when it changed, or at the latest this often
#: (seconds: a directory's mtime may not move for two changes within one clock tick).
RESCAN = 1.0
#: The receive buffer a listener asks for (the kernel may cap it).
RECEIVE_BUFFER = 1 << 20

Note = tuple[str, str]


def bus_dir(db: Path) -> Path:
    """The listeners' directory of the Core DB at ``db``."""
    return db.with_name(db.name + ".listeners")


def encode(notes: Iterable[Note]) -> list[bytes]:
    """The datagrams that carry ``notes`` (a payload with a newline or a tab is dropped:
    flwd never makes one)."""
    datagrams: list[bytes] = []
    current = bytearray()
    for channel, payload in notes:
        if "\n" in payload or "\t" in payload or "\n" in channel or "\t" in channel:
            continue
        line = f"{channel}\t{payload}".encode()
        if len(line) >= MAX_DATAGRAM:
            continue
        if current and len(current) + 1 + len(line) > MAX_DATAGRAM:
            datagrams.append(bytes(current))
            current = bytearray()
        if current:
            current += b"\n"
        current += line
    if current:
        datagrams.append(bytes(current))
    return datagrams


def decode(datagram: bytes) -> list[Note]:
    """The notes of one datagram; what is not a note is left out."""
    notes: list[Note] = []
    for line in datagram.decode("utf-8", "replace").split("\n"):
        channel, tab, payload = line.partition("\t")
        if tab and channel:
            notes.append((channel, payload))
    return notes


class Sender:
    """Sends notes to every listener of a directory; thread-safe, never blocks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: directory -> (its mtime, when it was read, the sockets in it)
        self._seen: dict[str, tuple[int, float, list[str]]] = {}

    def send(self, directory: str, notes: Sequence[Note]) -> int:
        """Send ``notes`` to the listeners in ``directory``; how many got them."""
        if not notes:
            return 0
        listeners = self._listeners(directory)
        if not listeners:
            return 0
        datagrams = encode(notes)
        reached = 0
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            for path in listeners:
                try:
                    for datagram in datagrams:
                        sock.sendto(datagram, path)
                except BlockingIOError:
                    continue  # its queue is full: it polls
                except (ConnectionRefusedError, FileNotFoundError):
                    self._gone(directory, path)
                    continue
                except OSError:
                    continue
                reached += 1
        return reached

    def _listeners(self, directory: str) -> list[str]:
        try:
            mtime = os.stat(directory).st_mtime_ns
        except OSError:
            return []
        now = time.monotonic()
        with self._lock:
            seen = self._seen.get(directory)
            if seen is not None and seen[0] == mtime and now - seen[1] < RESCAN:
                return seen[2]
        try:
            with os.scandir(directory) as entries:
                found = [entry.path for entry in entries if entry.name.endswith(".sock")]
        except OSError:
            found = []
        with self._lock:
            self._seen[directory] = (mtime, now, found)
        return found

    def _gone(self, directory: str, path: str) -> None:
        # Refused: bound by nobody (its process died without removing it).
        with contextlib.suppress(OSError):
            os.unlink(path)
        with self._lock:
            self._seen.pop(directory, None)


#: The process's sender.
SENDER = Sender()


class LocalListening:
    """A listener's socket on the bus (the interface of PostgreSQL's ``Listening``).

    ``socket`` is readable when notes came; :meth:`received` takes them all.
    """

    def __init__(self, directory: Path) -> None:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path = directory / f"{os.getpid()}-{secrets.token_hex(4)}.sock"
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            self.socket.setblocking(False)
            with contextlib.suppress(OSError):
                self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
            old = os.umask(0o177)
            try:
                self.socket.bind(str(self.path))
            finally:
                os.umask(old)
        except BaseException:
            self.socket.close()
            raise

    def received(self) -> list[Note] | None:
        """Every note waiting (never None: a local socket does not drop)."""
        notes: list[Note] = []
        while True:
            try:
                datagram = self.socket.recv(MAX_DATAGRAM + 1)
            except (BlockingIOError, InterruptedError):
                return notes
            notes.extend(decode(datagram))

    def close(self) -> None:
        self.socket.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)
