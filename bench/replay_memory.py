"""Replay memory: server RSS growth while 1, 3 and 50 clients replay one finished 1M-line run.

The run (`seq 1 N`, default N = 1,000,000) is made once by the CLI in a data
dir; each phase then starts a fresh `flwd :serve` on that data dir, reads its
idle RSS (the baseline, same run), and opens K concurrent replays of the
whole run: `GET /runs/{id}/events` (SSE) and, for K > 1, every other one
`events.ndjson`. The clients are raw trio sockets that read as fast as they
can and only count events (every reader must get all N lines and
`run.finish`: checked). Growth = the server's peak RSS during the phase
(VmHWM, the kernel's own high-water mark, and a 50 ms sampler) minus its idle
RSS. For scale, the size of one reader's SSE body is shown: the memory one
whole-run copy per reader would take.
Target: <= 100 MB growth with 50 concurrent replays (every phase is checked).

    python bench/replay_memory.py [--lines N] [--readers 1,3,50]
"""

from __future__ import annotations

import argparse
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    DEV_AUTH,
    RssSampler,
    cpu_seconds,
    flwd_env,
    header,
    mb,
    proc_status_kb,
    record,
    start_server,
    write_job,
)

TARGET_MB = 100.0
#: Seconds the idle server is left alone before its baseline RSS is read.
SETTLE = 1.0


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
    kind: str
    lines: int = 0
    finished: bool = False
    body_bytes: int = 0
    error: str | None = None


@dataclass
class Phase:
    readers: list[Reader] = field(default_factory=list)
    idle_kb: int = 0
    hwm_kb: int = 0
    sampled_kb: int = 0
    after_kb: int = 0
    wall: float = 0.0
    server_cpu: float = 0.0


async def replay(port: int, run_id: str, reader: Reader) -> None:
    path = f"/runs/{run_id}/events" + (".ndjson" if reader.kind == "ndjson" else "")
    line = b"event: step.log\n" if reader.kind == "sse" else b'"type":"step.log"'
    finish = b"event: run.finish\n" if reader.kind == "sse" else b'"type":"run.finish"'
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: {DEV_AUTH['Authorization']}\r\nConnection: close\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            data = await stream.receive_some(65536)
            if not data:
                reader.error = "connection closed before the response headers"
                return
            head += data
        head, rest = head.split(b"\r\n\r\n", 1)
        if b" 200 " not in head.split(b"\r\n", 1)[0] + b" ":
            reader.error = head.split(b"\r\n", 1)[0].decode(errors="replace")
            return
        decoder = Dechunker()
        # A marker may straddle two reads: each is looked for in the new bytes plus
        # the last (its length - 1) bytes before them, so none is counted twice.
        tail = b""
        data = rest
        while True:
            body = decoder.feed(data)
            reader.body_bytes += len(body)
            window = tail + body
            reader.lines += window[max(0, len(tail) - len(line) + 1):].count(line)
            reader.finished = reader.finished or finish in window
            tail = window[-len(finish):]
            if decoder.ended:
                return
            data = await stream.receive_some(1 << 18)
            if not data:
                reader.error = "connection closed mid-stream"
                return


def make_run(tmp: Path, lines: int) -> tuple[Path, Path, str]:
    workspace, data = tmp / "ws", tmp / "data"
    write_job(workspace, "big", "interpreter: bash\n", {"100_big.sh": f"seq 1 {lines}\n"})
    done = subprocess.run([sys.executable, "-m", "flwd", "big"], cwd=workspace,
                          env=flwd_env(data), stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"flwd big failed ({done.returncode}): {done.stderr}")
    conn = sqlite3.connect(data / "flwd.db")
    try:
        (run_id,) = conn.execute("SELECT id FROM runs").fetchone()
    finally:
        conn.close()
    return workspace, data, run_id


async def phase_readers(url: str, run_id: str, count: int) -> tuple[list[Reader], float]:
    port = int(url.rsplit(":", 1)[1])
    readers = [Reader("ndjson" if index % 2 else "sse") for index in range(count)]
    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for reader in readers:
            nursery.start_soon(replay, port, run_id, reader)
    return readers, time.perf_counter() - start


def run_phase(workspace: Path, data: Path, run_id: str, count: int) -> Phase:
    server = start_server(workspace, data)
    phase = Phase()
    try:
        # The run is finished and journaled: a replay reads the journal.
        status = httpx.get(f"{server.url}/runs/{run_id}", headers=DEV_AUTH).json()["status"]
        if status != "completed":
            raise SystemExit(f"run {run_id} is {status}, not completed")
        time.sleep(SETTLE)
        phase.idle_kb = proc_status_kb(server.pid)
        cpu0 = cpu_seconds(server.pid)
        with RssSampler(server.pid) as sampler:
            phase.readers, phase.wall = trio.run(phase_readers, server.url, run_id, count)
        phase.server_cpu = cpu_seconds(server.pid) - cpu0
        phase.sampled_kb = sampler.peak_kb
        phase.hwm_kb = proc_status_kb(server.pid, "VmHWM")
        phase.after_kb = proc_status_kb(server.pid)
    finally:
        server.stop()
    return phase


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--readers", default="1,3,50",
                        help="comma-separated concurrent replay counts, one phase each")
    options = parser.parse_args()
    counts = [int(text) for text in options.readers.split(",")]
    with tempfile.TemporaryDirectory(prefix="flwd-bench-") as tmp_name:
        start = time.perf_counter()
        workspace, data, run_id = make_run(Path(tmp_name), options.lines)
        made = time.perf_counter() - start
        phases = [(count, run_phase(workspace, data, run_id, count)) for count in counts]

    header(f"replay_memory (replays of one finished {options.lines:,}-line run)")
    print(f"the run: `seq 1 {options.lines}` by the CLI in {made:.1f} s")
    print(f"{'concurrent replays':20} {'idle MB':>8} {'HWM MB':>8} {'sampled':>8} "
          f"{'growth MB':>10} {'after MB':>9} {'wall s':>7} {'lines/s':>12} {'srv CPU s':>10}")
    failures = []
    worst = 0.0
    for count, phase in phases:
        growth_kb = max(phase.hwm_kb, phase.sampled_kb) - phase.idle_kb
        worst = max(worst, growth_kb / 1024)
        delivered = sum(reader.lines for reader in phase.readers)
        print(f"{count:<20} {mb(phase.idle_kb):>8} {mb(phase.hwm_kb):>8} "
              f"{mb(phase.sampled_kb):>8} {mb(growth_kb):>10} {mb(phase.after_kb):>9} "
              f"{phase.wall:7.1f} {delivered / phase.wall:12,.0f} {phase.server_cpu:10.1f}")
        kinds = {kind: sum(r.kind == kind for r in phase.readers) for kind in ("sse", "ndjson")}
        for reader in phase.readers:
            if reader.error or reader.lines != options.lines or not reader.finished:
                failures.append(f"{count} replays: a {reader.kind} reader got {reader.lines:,} "
                                f"lines, run.finish {'seen' if reader.finished else 'missing'}"
                                f"{': ' + reader.error if reader.error else ''}")
        record("replay_memory", f"server RSS growth, {count} concurrent replays "
               f"({kinds['sse']} SSE, {kinds['ndjson']} NDJSON)", growth_kb / 1024, "MB",
               baseline=("idle server RSS", phase.idle_kb / 1024),
               target=f"<= {TARGET_MB:.0f} MB", met=growth_kb / 1024 <= TARGET_MB)
    sse = next((r.body_bytes for _, p in phases for r in p.readers if r.kind == "sse"), 0)
    print(f"one SSE replay body: {sse / 1e6:,.1f} MB (what one whole-run copy per reader "
          f"would hold); readers alternate SSE / NDJSON")
    for failure in failures[:10]:
        print(f"ERROR {failure}")
    verdict = "met" if worst <= TARGET_MB and not failures else "NOT met"
    print(f"target growth <= {TARGET_MB:.0f} MB in every phase: {verdict} "
          f"(worst {worst:.1f} MB{'; readers failed' if failures else ''})")
    if failures:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
