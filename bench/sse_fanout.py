"""SSE fan-out: 500 live subscribers on ONE run printing 10,000 lines as a paced stream.

The run's job first waits for a gate file; the bench opens every subscriber
(`GET /runs/{id}/events`), waits until each one has received `step.start`
(so each is subscribed to the live hub, not replaying), then creates the gate.
The script prints `line <i> <$EPOCHREALTIME>` at --rate lines/s (default 100,
a log-like stream rather than a throughput test; paced against the wall
clock, in bursts of 10).

Delivery latency = the client's time.time() when it parsed the frame minus the
event envelope's `ts` (when flwd read the line, before journaling). The
script→client latency (from the stamp inside the line) is shown as well. The
client is raw trio sockets (HTTP/1.1 chunked + SSE parsed by hand) so it stays
cheaper than the server; its CPU use is printed: near 100% of a core would
mean the client, not the server, set the latency. Every subscriber must get
every line (checked). Server RSS: before, peak (sampled every 50 ms), after.
Target: p99 delivery latency <= 100 ms.

    python bench/sse_fanout.py [--subscribers N] [--lines M] [--rate LINES_PER_S]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    DEV_AUTH,
    RssSampler,
    cpu_seconds,
    header,
    mb,
    proc_status_kb,
    record,
    start_server,
    write_job,
)

TARGET_P99_MS = 100.0
BURST = 10
#: Latencies are counted in buckets of this many seconds (0.1 ms).
BUCKET = 1e-4

SCRIPT = """\
while [ ! -e {gate} ]; do sleep 0.01; done
start=${{EPOCHREALTIME/./}}
for ((i = 1; i <= {lines}; i++)); do
  printf 'line %d %s\\n' "$i" "$EPOCHREALTIME"
  if (( i % {burst} == 0 )); then
    ahead=$(( start + i * 1000000 / {rate} - ${{EPOCHREALTIME/./}} ))
    if (( ahead > 0 )); then
      sleep "$(printf '%d.%06d' $(( ahead / 1000000 )) $(( ahead % 1000000 )))"
    fi
  fi
done
"""


@dataclass
class Stats:
    subscribers: int
    #: bucket index (latency / BUCKET) -> events, journal ts -> client
    journal: Counter[int] = field(default_factory=Counter)
    #: the same from the script's own stamp in the line
    script: Counter[int] = field(default_factory=Counter)
    delivered: list[int] = field(default_factory=list)
    finished: int = 0
    subscribed: int = 0
    all_subscribed: trio.Event = field(default_factory=trio.Event)
    errors: list[str] = field(default_factory=list)
    ts_cache: dict[bytes, float] = field(default_factory=dict)
    first_line: float = 0.0
    last_line: float = 0.0


def parse_ts(stats: Stats, text: bytes) -> float:
    value = stats.ts_cache.get(text)
    if value is None:
        value = datetime.fromisoformat(text.decode()).timestamp()
        stats.ts_cache[text] = value
    return value


class ChunkedSSE:
    """Decodes an HTTP/1.1 chunked body and splits it into SSE frames (bytes, no blank line)."""

    def __init__(self) -> None:
        self.raw = b""
        self.body = b""
        self.ended = False

    def feed(self, data: bytes) -> list[bytes]:
        raw = self.raw + data
        pos = 0
        pieces = [self.body]
        while True:
            eol = raw.find(b"\r\n", pos)
            if eol < 0:
                break
            size = int(raw[pos:eol].split(b";", 1)[0], 16)
            if size == 0:
                self.ended = True
                pos = len(raw)
                break
            end = eol + 2 + size
            if len(raw) < end + 2:
                break
            pieces.append(raw[eol + 2:end])
            pos = end + 2
        self.raw = raw[pos:]
        body = b"".join(pieces)
        frames = body.split(b"\n\n")
        self.body = frames.pop()
        return frames


async def subscriber(port: int, run_id: str, stats: Stats, index: int) -> None:
    request = (f"GET /runs/{run_id}/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
               f"Authorization: {DEV_AUTH['Authorization']}\r\nAccept: text/event-stream\r\n"
               f"Connection: close\r\n\r\n").encode()
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(request)
        head = b""
        while b"\r\n\r\n" not in head:
            data = await stream.receive_some(65536)
            if not data:
                stats.errors.append(f"subscriber {index}: connection closed before headers")
                return
            head += data
        head, rest = head.split(b"\r\n\r\n", 1)
        status_line = head.split(b"\r\n", 1)[0]
        if b" 200 " not in status_line + b" " or b"chunked" not in head.lower():
            stats.errors.append(f"subscriber {index}: {status_line.decode(errors='replace')}")
            return
        decoder = ChunkedSSE()
        delivered = 0
        subscribed = False
        data = rest
        journal, script = stats.journal, stats.script
        while True:
            if data:
                now = time.time()
                for frame in decoder.feed(data):
                    if b"event: step.log\n" in frame:
                        delivered += 1
                        at = frame.find(b'"ts":"') + 6
                        journal[int((now - parse_ts(stats, frame[at:at + 27])) / BUCKET)] += 1
                        at = frame.find(b'"message":"line ') + 16
                        stamp = float(frame[frame.find(b" ", at) + 1:frame.find(b'"', at)])
                        script[int((now - stamp) / BUCKET)] += 1
                        if index == 0:
                            stats.last_line = stamp
                            if not stats.first_line:
                                stats.first_line = stamp
                    elif b"event: step.start\n" in frame and not subscribed:
                        subscribed = True
                        stats.subscribed += 1
                        if stats.subscribed == stats.subscribers:
                            stats.all_subscribed.set()
                    elif b"event: run.finish\n" in frame:
                        stats.finished += 1
            if decoder.ended:
                break
            data = await stream.receive_some(1 << 18)
            if not data:
                break
        stats.delivered.append(delivered)
        if not decoder.ended:
            stats.errors.append(f"subscriber {index}: connection closed mid-stream")


def weighted_percentile(counts: Counter[int], q: float) -> float:
    total = sum(counts.values())
    rank = max(1, -(-int(q * total * 1000) // 1000))
    seen = 0
    for bucket in sorted(counts):
        seen += counts[bucket]
        if seen >= rank:
            return bucket * BUCKET
    return 0.0


async def bench(url: str, server_pid: int, options: argparse.Namespace, gate: Path
                ) -> tuple[Stats, float, float, float]:
    port = int(url.rsplit(":", 1)[1])
    stats = Stats(options.subscribers)
    async with httpx.AsyncClient(base_url=url, headers=DEV_AUTH) as client:
        response = await client.post("/runs", json={"job_id": "fan", "args": {}})
        if response.status_code != 201:
            raise SystemExit(f"POST /runs -> {response.status_code}: {response.text}")
        run_id = response.json()["id"]
        async with trio.open_nursery() as nursery:
            for index in range(options.subscribers):
                nursery.start_soon(subscriber, port, run_id, stats, index)
            with trio.move_on_after(120) as scope:
                await stats.all_subscribed.wait()
            if scope.cancelled_caught:
                nursery.cancel_scope.cancel()
                raise SystemExit(f"only {stats.subscribed} of {options.subscribers} subscribers "
                                 f"got step.start within 120 s; errors: {stats.errors[:5]}")
            cpu0, server_cpu0, start = time.process_time(), cpu_seconds(server_pid), time.time()
            await trio.Path(gate).touch()
        wall = time.time() - start
        client_cpu = time.process_time() - cpu0
        server_cpu = cpu_seconds(server_pid) - server_cpu0
        final = (await client.get(f"/runs/{run_id}")).json()["status"]
        if final != "completed":
            stats.errors.append(f"run {run_id} ended {final}")
    return stats, wall, client_cpu, server_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=500)
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--rate", type=int, default=100,
                        help="lines per second the job prints (default 100: a 100 s stream)")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="flwd-bench-") as tmp_name:
        tmp = Path(tmp_name)
        workspace, data, gate = tmp / "ws", tmp / "data", tmp / "gate"
        write_job(workspace, "fan", "interpreter: bash\n", {"100_fan.sh": SCRIPT.format(
            gate=gate, lines=options.lines, burst=BURST, rate=options.rate)})
        server = start_server(workspace, data)
        try:
            rss_before = proc_status_kb(server.pid)
            with RssSampler(server.pid) as sampler:
                stats, wall, client_cpu, server_cpu = trio.run(bench, server.url, server.pid,
                                                               options, gate)
            rss_after = proc_status_kb(server.pid)
        finally:
            code = server.stop()
        problems = server.problems()

    n, lines = options.subscribers, options.lines
    expected = n * lines
    total = sum(stats.delivered)
    header(f"sse_fanout ({n} subscribers on one run, {lines:,} lines at {options.rate}/s)")
    stream_s = stats.last_line - stats.first_line
    print(f"stream: {stream_s:.1f} s of output ({lines / max(stream_s, 1e-9):,.0f} lines/s "
          f"printed), {wall:.1f} s from gate to last subscriber done; "
          f"{total / wall:,.0f} events/s delivered in all")
    print(f"{'latency':28} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for name, counts in (("journal ts -> client", stats.journal),
                         ("script stamp -> client", stats.script)):
        if counts:
            print(f"{name:28} {weighted_percentile(counts, 0.5) * 1000:8.1f} "
                  f"{weighted_percentile(counts, 0.99) * 1000:8.1f} "
                  f"{max(counts) * BUCKET * 1000:8.1f}")
    print(f"{'server RSS':28} {'before':>8} {'peak':>8} {'after':>8}")
    print(f"{'MB':28} {mb(rss_before):>8} {mb(sampler.peak_kb):>8} {mb(rss_after):>8}")
    print(f"CPU during the stream: server {server_cpu:.1f} s ({server_cpu / wall:.0%} of a core), "
          f"client {client_cpu:.1f} s ({client_cpu / wall:.0%} of a core"
          f"{'; the client may be a bottleneck' if client_cpu / wall > 0.8 else ''})")
    print(f"step.log events delivered: {total:,} of {expected:,} ({n} x {lines:,}); "
          f"subscribers that saw run.finish: {stats.finished} of {n}")
    short = [d for d in stats.delivered if d != lines]
    if short:
        print(f"subscribers with a wrong count: {len(short)} (e.g. {short[:5]})")
    for error in stats.errors[:10]:
        print(f"ERROR {error}")
    print(f"server exit status after SIGTERM: {code}; warnings/errors in its log: {len(problems)}")
    for line in problems[:5]:
        print(f"  {line[:300]}")
    sane = total == expected and stats.finished == n and not stats.errors
    p99 = weighted_percentile(stats.journal, 0.99) * 1000 if stats.journal else float("inf")
    verdict = "met" if p99 <= TARGET_P99_MS and sane else "NOT met"
    print(f"target p99 delivery latency <= {TARGET_P99_MS:.0f} ms: {verdict} ({p99:.1f} ms"
          f"{'' if sane else '; events were lost or subscribers failed'})")
    record("sse_fanout", f"p99 delivery latency, {n} subscribers", p99, "ms",
           target=f"<= {TARGET_P99_MS:.0f} ms", met=p99 <= TARGET_P99_MS and sane)
    record("sse_fanout", "server RSS peak", sampler.peak_kb / 1024, "MB")
    if not sane:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
