"""50 concurrent replays of a 300,000-line run keep the server's memory bounded.

A real ``flwd :serve``; raw-socket clients (HTTP/1.1 chunked, counted by
marker, so the clients stay cheap). Ten read the whole run as fast as they
can (SSE and NDJSON, half of them through a 4 KiB receive window); forty read
the first bytes and then stall — the slow readers that used to pin a framed
copy of the whole run each (a 2M-line run took one reader to 1.1 GB). The
server's peak RSS (VmHWM, reset before the replays) may grow by at most
:data:`BOUND_MB` — docs/reliability.md gives the per-reader bound this is
built from. A watchdog stops the attack early once growth is far past the
bound, so a regression fails quickly instead of exhausting the machine.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
import trio

from tests.conftest import write_job

DEV = {"Authorization": "Bearer dev-token"}
LINES = 300_000
FULL = 4
STALLED = 46
#: ~0.6 MB per replaying reader (docs/reliability.md: one read, two framed
#: batches, two writes, the connection) x 50, plus the reads in flight and
#: allocator slack. One framed copy of this run is ~65 MB per SSE reader.
BOUND_MB = 64
#: Growth at which the watchdog ends the attack (the test then fails).
ABORT_MB = 4 * BOUND_MB
WATCH_INTERVAL = 0.05

pytestmark = pytest.mark.slow


def status_kb(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


class Dechunker:
    """The body of an HTTP/1.1 chunked response, fed as it arrives; linear in its input,
    however large a chunk is (a chunk's bytes are passed on as they come)."""

    def __init__(self) -> None:
        self.head = b""  # the start of a chunk-size line or of the CRLF after a chunk
        self.left = 0  # bytes of the current chunk still to come
        self.crlf = False  # the CRLF that ends a chunk is still to come
        self.ended = False

    def feed(self, data: bytes) -> bytes:
        buffer, self.head = self.head + data, b""
        pieces, pos = [], 0
        while pos < len(buffer) and not self.ended:
            if self.left:
                piece = buffer[pos:pos + self.left]
                pieces.append(piece)
                self.left -= len(piece)
                pos += len(piece)
                self.crlf = self.left == 0
            elif self.crlf:
                if len(buffer) - pos < 2:
                    break
                pos, self.crlf = pos + 2, False
            else:
                eol = buffer.find(b"\r\n", pos)
                if eol < 0:
                    break
                self.left = int(buffer[pos:eol].split(b";", 1)[0], 16)
                pos = eol + 2
                self.ended = self.left == 0
        if not self.ended:
            self.head = buffer[pos:]
        return b"".join(pieces)


@dataclass
class Reader:
    kind: str  # "sse" | "ndjson" | "log"
    stall: bool
    small_window: bool
    lines: int = 0
    finished: bool = False
    error: str | None = None


async def replay(port: int, run_id: str, reader: Reader, release: trio.Event,
                 started: trio.Semaphore) -> None:
    """One replay from the start; a stalling reader stops after its first bytes until
    ``release``; the others count every event to the end."""
    path = f"/runs/{run_id}/" + {"sse": "events", "ndjson": "events.ndjson",
                                 "log": "log.txt"}[reader.kind]
    line, finish = {"sse": (b"event: step.log\n", b"event: run.finish\n"),
                    "ndjson": (b'"type":"step.log"', b'"type":"run.finish"'),
                    # Plain text has no end marker: a line's newline stands in (the
                    # line count says whether the body held every line).
                    "log": (b"\n", b"\n")}[reader.kind]
    sock = trio.socket.socket()
    if reader.small_window or reader.stall:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    await sock.connect(("127.0.0.1", port))
    stream = trio.SocketStream(sock)
    async with stream:
        await stream.send_all(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                              f"Authorization: {DEV['Authorization']}\r\n"
                              "Connection: close\r\n\r\n".encode())
        received = b""
        while b"\r\n\r\n" not in received:
            data = await stream.receive_some(4096)
            if not data:
                reader.error = "closed before the response headers"
                return
            received += data
        head, rest = received.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 200"):
            reader.error = head.split(b"\r\n", 1)[0].decode(errors="replace")
            return
        started.release()
        if reader.stall:
            await release.wait()
            return
        # A marker may straddle two reads: each is looked for in the new bytes plus
        # the last (its length - 1) bytes before them, so none is counted twice.
        decoder, tail, data = Dechunker(), b"", rest
        while True:
            window = tail + decoder.feed(data)
            reader.lines += window[max(0, len(tail) - len(line) + 1):].count(line)
            reader.finished = reader.finished or finish in window
            tail = window[-len(finish):]
            if decoder.ended:
                return
            data = await stream.receive_some(4096 if reader.small_window else 1 << 18)
            if not data:
                reader.error = "closed mid-stream"
                return


async def attack(url: str, pid: int, run_id: str, idle_kb: int,
                 kinds: tuple[str, ...] = ("sse", "ndjson")) -> tuple[list[Reader], int]:
    port = urlparse(url).port
    assert port is not None
    readers = [Reader(kinds[index % len(kinds)], stall=False,
                      small_window=index % 4 >= 2) for index in range(FULL)]
    readers += [Reader(kinds[index % len(kinds)], stall=True, small_window=True)
                for index in range(STALLED)]
    release = trio.Event()
    started = trio.Semaphore(0)
    worst_kb = 0
    async with trio.open_nursery() as nursery:
        async def watchdog() -> None:
            nonlocal worst_kb
            while True:
                worst_kb = max(worst_kb, status_kb(pid, "VmRSS") - idle_kb)
                if worst_kb > ABORT_MB * 1024:
                    nursery.cancel_scope.cancel()
                await trio.sleep(WATCH_INTERVAL)

        nursery.start_soon(watchdog)
        async with trio.open_nursery() as stalled_ones:
            for reader in readers[FULL:]:
                stalled_ones.start_soon(replay, port, run_id, reader, release, started)
            # Every stalled reader has its replay under way before the fast ones start.
            for _ in range(STALLED):
                await started.acquire()
            async with trio.open_nursery() as fast_ones:
                for reader in readers[:FULL]:
                    fast_ones.start_soon(replay, port, run_id, reader, release, trio.Semaphore(0))
            release.set()
        nursery.cancel_scope.cancel()
    return readers, worst_kb


def test_50_concurrent_replays_of_a_300k_line_run_stay_bounded(server_factory: Any,
                                                                workspace: Path) -> None:
    write_job(workspace, "flood", "interpreter: bash\n", {"100_flood.sh": f"seq {LINES}\n"})
    server = server_factory("--dev")
    pid = server.process.pid
    created = httpx.post(f"{server.url}/runs", json={"job_id": "flood", "args": {}},
                         headers=DEV, timeout=30)
    assert created.status_code == 201, created.text
    run_id = created.json()["id"]
    # Follow it live to its end (the same lean client), so the replays read a finished run.
    follower = Reader("sse", stall=False, small_window=False)
    trio.run(replay, urlparse(server.url).port, run_id, follower, trio.Event(),
             trio.Semaphore(0))
    assert follower.lines == LINES and follower.finished, follower
    assert httpx.get(f"{server.url}/runs/{run_id}", headers=DEV).json()["status"] == "completed"

    with open(f"/proc/{pid}/clear_refs", "w") as clear:
        clear.write("5")  # resets VmHWM to the current RSS
    idle_kb = status_kb(pid, "VmRSS")
    readers, watched_kb = trio.run(attack, server.url, pid, run_id, idle_kb)
    growth_mb = max(status_kb(pid, "VmHWM") - idle_kb, watched_kb) / 1024

    assert growth_mb <= BOUND_MB, (
        f"50 concurrent replays grew the server by {growth_mb:.0f} MB (bound {BOUND_MB} MB)")
    for reader in readers[:FULL]:
        assert reader.error is None and reader.lines == LINES and reader.finished, reader
    assert all(reader.error is None for reader in readers[FULL:])
    # The server still answers, and the run is whole.
    assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 204


def test_50_concurrent_log_txt_downloads_of_a_300k_line_run_stay_bounded(
        server_factory: Any, workspace: Path) -> None:
    """``log.txt`` is paged from the journal like ``events.ndjson``: a download holds a page,
    never the run's whole output (one copy of this run's text is ~2 MB, its rows ~7 MB)."""
    write_job(workspace, "flood", "interpreter: bash\n", {"100_flood.sh": f"seq {LINES}\n"})
    server = server_factory("--dev")
    pid = server.process.pid
    created = httpx.post(f"{server.url}/runs", json={"job_id": "flood", "args": {}},
                         headers=DEV, timeout=30)
    assert created.status_code == 201, created.text
    run_id = created.json()["id"]
    follower = Reader("sse", stall=False, small_window=False)
    trio.run(replay, urlparse(server.url).port, run_id, follower, trio.Event(),
             trio.Semaphore(0))
    assert follower.lines == LINES and follower.finished, follower

    with open(f"/proc/{pid}/clear_refs", "w") as clear:
        clear.write("5")  # resets VmHWM to the current RSS
    idle_kb = status_kb(pid, "VmRSS")
    readers, watched_kb = trio.run(attack, server.url, pid, run_id, idle_kb, ("log",))
    growth_mb = max(status_kb(pid, "VmHWM") - idle_kb, watched_kb) / 1024

    assert growth_mb <= BOUND_MB, (
        f"50 concurrent log.txt downloads grew the server by {growth_mb:.0f} MB "
        f"(bound {BOUND_MB} MB)")
    for reader in readers[:FULL]:
        assert reader.error is None and reader.lines == LINES, reader
    assert all(reader.error is None for reader in readers[FULL:])
    whole = httpx.get(f"{server.url}/runs/{run_id}/log.txt", headers=DEV, timeout=60)
    assert whole.text == "".join(f"{number}\n" for number in range(1, LINES + 1))


#: Stalled readers in the cap test, and the cap the server is started with.
CROWD = 400
CAP = 64
#: CAP replaying readers at ~0.6 MB, the reads in flight, hub backlogs (16 MiB)
#: and the refused connections' transient cost. Without the cap, 400 stalled
#: readers hold ~0.5 MB each (~200 MB).
CAP_BOUND_MB = 64
RETRY_DEADLINE = 30.0


@dataclass
class Knock:
    """One reader of the crowd: the status it got and its Retry-After header."""

    status: int = 0
    retry_after: str | None = None
    body: bytes = b""


async def knock(port: int, run_id: str, result: Knock, release: trio.Event,
                answered: trio.Semaphore) -> None:
    """Read the response head; on 200 hold the connection without reading until ``release``."""
    sock = trio.socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    await sock.connect(("127.0.0.1", port))
    async with trio.SocketStream(sock) as stream:
        await stream.send_all(f"GET /runs/{run_id}/events HTTP/1.1\r\n"
                              f"Host: 127.0.0.1:{port}\r\n"
                              f"Authorization: {DEV['Authorization']}\r\n"
                              "Connection: close\r\n\r\n".encode())
        received = b""
        while b"\r\n\r\n" not in received:
            data = await stream.receive_some(4096)
            if not data:
                break
            received += data
        head, _, result.body = received.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        result.status = int(lines[0].split()[1]) if lines[0] else 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"retry-after":
                result.retry_after = value.strip().decode()
        if result.status == 503:
            # The problem document (a small body) to check its code.
            while b"}" not in result.body and (data := await stream.receive_some(4096)):
                result.body += data
        answered.release()
        if result.status == 200:
            await release.wait()


async def crowd(url: str, pid: int, run_id: str, idle_kb: int) -> tuple[list[Knock], int]:
    port = urlparse(url).port
    assert port is not None
    knocks = [Knock() for _ in range(CROWD)]
    release = trio.Event()
    answered = trio.Semaphore(0)
    worst_kb = 0
    async with trio.open_nursery() as nursery:
        async def watchdog() -> None:
            nonlocal worst_kb
            while True:
                worst_kb = max(worst_kb, status_kb(pid, "VmRSS") - idle_kb)
                if worst_kb > ABORT_MB * 1024:
                    nursery.cancel_scope.cancel()
                await trio.sleep(WATCH_INTERVAL)

        nursery.start_soon(watchdog)
        async with trio.open_nursery() as readers:
            for result in knocks:
                readers.start_soon(knock, port, run_id, result, release, answered)
            # Every reader gets its answer while the admitted ones stall.
            with trio.move_on_after(RETRY_DEADLINE):
                for _ in range(CROWD):
                    await answered.acquire()
            release.set()
            readers.cancel_scope.cancel()  # one never answered fails the counts below
        nursery.cancel_scope.cancel()
    return knocks, worst_kb


async def read_when_admitted(url: str, run_id: str) -> Reader:
    """A full replay, retried while the server still counts the crowd's streams."""
    port = urlparse(url).port
    assert port is not None
    with trio.fail_after(RETRY_DEADLINE):
        while True:
            reader = Reader("sse", stall=False, small_window=False)
            await replay(port, run_id, reader, trio.Event(), trio.Semaphore(0))
            if reader.error is None or not reader.error.startswith("HTTP/1.1 503"):
                return reader
            await trio.sleep(WATCH_INTERVAL)


def test_hundreds_of_stalled_readers_beyond_the_stream_cap_get_503(
        server_factory: Any, workspace: Path) -> None:
    write_job(workspace, "flood", "interpreter: bash\n", {"100_flood.sh": f"seq {LINES}\n"})
    server = server_factory("--dev", "--max-streams", str(CAP))
    pid = server.process.pid
    created = httpx.post(f"{server.url}/runs", json={"job_id": "flood", "args": {}},
                         headers=DEV, timeout=30)
    assert created.status_code == 201, created.text
    run_id = created.json()["id"]
    follower = Reader("sse", stall=False, small_window=False)
    trio.run(replay, urlparse(server.url).port, run_id, follower, trio.Event(),
             trio.Semaphore(0))
    assert follower.lines == LINES and follower.finished, follower

    with open(f"/proc/{pid}/clear_refs", "w") as clear:
        clear.write("5")  # resets VmHWM to the current RSS
    idle_kb = status_kb(pid, "VmRSS")
    knocks, watched_kb = trio.run(crowd, server.url, pid, run_id, idle_kb)
    growth_mb = max(status_kb(pid, "VmHWM") - idle_kb, watched_kb) / 1024

    statuses = sorted({knock.status for knock in knocks})
    admitted = [knock for knock in knocks if knock.status == 200]
    refused = [knock for knock in knocks if knock.status == 503]
    assert len(admitted) == CAP and len(refused) == CROWD - CAP, statuses
    assert all(knock.retry_after == "1" for knock in refused)
    assert all(b'"streams.busy"' in knock.body for knock in refused), refused[0].body
    assert growth_mb <= CAP_BOUND_MB, (
        f"{CROWD} stalled readers grew the server by {growth_mb:.0f} MB "
        f"(bound {CAP_BOUND_MB} MB)")

    # The crowd is gone: its slots are free again, and a new reader gets the whole run.
    reader = trio.run(read_when_admitted, server.url, run_id)
    assert reader.error is None and reader.lines == LINES and reader.finished, reader
    metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
    assert f'flwd_stream_refusals_total{{kind="sse"}} {float(CROWD - CAP)}' in metrics


def test_every_kind_of_event_stream_counts_against_the_cap(server_factory: Any) -> None:
    """With one stream open (a global SSE follower), NDJSON and WebSocket are refused too."""
    server = server_factory("--dev", "--max-streams", "1")
    created = httpx.post(f"{server.url}/runs", json={"job_id": "demo", "args": {"name": "x"}},
                         headers=DEV, timeout=30)
    assert created.status_code == 201, created.text
    run_id = created.json()["id"]
    port = urlparse(server.url).port
    with httpx.stream("GET", f"{server.url}/events", headers=DEV, timeout=30) as held:
        assert held.status_code == 200
        ndjson = httpx.get(f"{server.url}/runs/{run_id}/events.ndjson", headers=DEV,
                           timeout=30)
        assert ndjson.status_code == 503 and ndjson.headers["Retry-After"] == "1"
        assert ndjson.json()["code"] == "streams.busy"
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(f"GET /runs/{run_id}/ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                         "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                         "Sec-WebSocket-Version: 13\r\n"
                         f"Authorization: {DEV['Authorization']}\r\n\r\n".encode())
            head = sock.recv(4096)
        assert head.startswith(b"HTTP/1.1 503"), head
    # The follower left: its slot is free again once the server sees it go.
    deadline = time.monotonic() + RETRY_DEADLINE
    while True:
        ndjson = httpx.get(f"{server.url}/runs/{run_id}/events.ndjson", headers=DEV,
                           timeout=30)
        if ndjson.status_code != 503 or time.monotonic() > deadline:
            break
    assert ndjson.status_code == 200 and b'"run.finish"' in ndjson.content
