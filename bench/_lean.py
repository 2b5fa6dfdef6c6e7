"""A lean HTTP/1.1 load client for the serve benchmarks, and the readings beside it.

httpx costs about 5 ms of CPU per run on this VM: on 2 cores, a load client that
heavy steals the CPU of the server it measures. This one is a raw socket per
thread, kept alive, with just enough of HTTP/1.1 to read a ``Content-Length`` or
chunked answer (an SSE stream ends with the chunked terminator once the run
ends). It also reads a process tree's CPU from ``/proc`` and runs a bare
hypercorn-trio "hello" app, the floor a Hypercorn server's request costs.
"""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


class LeanConnection:
    """One kept-alive HTTP/1.1 connection (reconnects when the server closes it)."""

    def __init__(self, host: str, port: int) -> None:
        self.address = (host, port)
        self.sock: socket.socket | None = None
        self.buffer = b""

    def _connect(self) -> socket.socket:
        if self.sock is None:
            self.sock = socket.create_connection(self.address, timeout=120)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.buffer = b""
        return self.sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _fill(self) -> None:
        assert self.sock is not None
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed the connection mid-answer")
        self.buffer += data

    def _take(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._fill()
        taken, self.buffer = self.buffer[:size], self.buffer[size:]
        return taken

    def _line(self) -> bytes:
        while (end := self.buffer.find(b"\r\n")) < 0:
            self._fill()
        line, self.buffer = self.buffer[:end], self.buffer[end + 2:]
        return line

    def request(self, method: str, path: str, headers: dict[str, str],
                body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
        """Send one request, read the whole answer: (status, headers lower-cased, body)."""
        sock = self._connect()
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.address[0]}:{self.address[1]}",
                *(f"{key}: {value}" for key, value in headers.items())]
        if body or method == "POST":
            head.append(f"Content-Length: {len(body)}")
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        status_line = self._line()
        status = int(status_line.split(b" ", 2)[1])
        answer: dict[str, str] = {}
        while line := self._line():
            key, _, value = line.decode("latin-1").partition(":")
            answer[key.strip().lower()] = value.strip()
        if answer.get("transfer-encoding", "").lower() == "chunked":
            pieces = []
            while size := int(self._line().split(b";")[0], 16):
                pieces.append(self._take(size))
                self._take(2)
            while self._line():  # trailers, then the blank line
                pass
            content = b"".join(pieces)
        else:
            content = self._take(int(answer.get("content-length", "0")))
        if answer.get("connection", "").lower() == "close":
            self.close()
        return status, answer, content


@dataclass
class Load:
    wall: float = 0.0
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    client_cpu: float = 0.0


#: One request (or run) on a connection: None when it went as expected, else why not.
Call = Callable[[LeanConnection, int], "str | None"]


def drive(url: str, call: Call, count: int, threads: int) -> Load:
    """``call`` ``count`` times from ``threads`` threads, one kept-alive connection each."""
    host, _, port = url.removeprefix("http://").rpartition(":")
    numbers = itertools.count()
    lock = threading.Lock()
    load = Load()

    def worker() -> None:
        connection = LeanConnection(host, int(port))
        try:
            while (index := next(numbers)) < count:
                begin = time.perf_counter()
                try:
                    problem = call(connection, index)
                except (OSError, ValueError) as exc:
                    problem = f"{type(exc).__name__}: {exc}"
                    connection.close()
                with lock:
                    load.latencies.append(time.perf_counter() - begin)
                    if problem is not None:
                        load.failures.append(f"#{index}: {problem}")
        finally:
            connection.close()

    cpu0 = time.process_time()
    start = time.perf_counter()
    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    load.wall = time.perf_counter() - start
    load.client_cpu = time.process_time() - cpu0
    return load


# -- CPU of a process tree -----------------------------------------------------------


def _stat_fields(pid: int) -> list[bytes] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rfind(b")") + 2:].split()


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                found += [int(word) for word in f.read().split()]
        except OSError:
            continue
    return found


@dataclass(frozen=True)
class TreeCpu:
    """CPU seconds of a server: its own (every thread), and its children's (the live
    descendants' own and reaped, plus what the server reaped itself)."""

    own: float
    children: float

    def __sub__(self, other: TreeCpu) -> TreeCpu:
        return TreeCpu(self.own - other.own, self.children - other.children)


def tree_cpu(pid: int) -> TreeCpu:
    fields = _stat_fields(pid)
    if fields is None:
        return TreeCpu(0.0, 0.0)
    own = int(fields[11]) + int(fields[12])
    reaped = int(fields[13]) + int(fields[14])
    pending, seen = _children(pid), {pid}
    while pending:
        child = pending.pop()
        if child in seen:
            continue
        seen.add(child)
        child_fields = _stat_fields(child)
        if child_fields is None:
            continue
        reaped += sum(int(value) for value in child_fields[11:15])
        pending += _children(child)
    return TreeCpu(own / _TICK, reaped / _TICK)


# -- the bare hypercorn-trio hello ---------------------------------------------------

_HELLO = r'''
import sys, trio, hypercorn.trio
from functools import partial
from hypercorn.config import Config

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"6")]})
    await send({"type": "http.response.body", "body": b"hello\n"})

async def main():
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(partial(hypercorn.trio.serve, app, config))
        print(binds[0], flush=True)

trio.run(main)
'''


class Hello:
    """A bare hypercorn-trio ASGI app answering every request ``hello``."""

    def __init__(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", _HELLO], stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, text=True)
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()
        if not self.url.startswith("http://"):
            self.process.kill()
            raise SystemExit("the hello app did not start")

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def load_average() -> str:
    return "/".join(f"{value:.2f}" for value in os.getloadavg())


def py_spy() -> str | None:
    """py-spy from PATH, the venv, or ``$PY_SPY``."""
    for candidate in (os.environ.get("PY_SPY"), str(Path(sys.executable).parent / "py-spy")):
        if candidate and Path(candidate).exists():
            return candidate
    from shutil import which
    return which("py-spy")
