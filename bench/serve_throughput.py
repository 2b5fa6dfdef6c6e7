"""Serve throughput: 2,000 trivial runs (`echo ok`) through `flwd :serve`, 8 at a time.

Each client task POSTs /runs, then follows the run's SSE stream until
`run.finish` (``--await stream``: one POST /runs answering the stream, from the lean
client of bench/_lean.py, which also drives webhook then); the wall time runs from the first submit to the last completion.
Afterwards the Core DB must hold every run as completed (checked with sqlite3).

Baseline in the same run: adnanh/webhook (Debian package `webhook`) executing
the same script per request with include-command-output-in-response (the
request returns once the command has finished), same client, same concurrency.
When /usr/bin/webhook is missing the bench runs `apt-get install -y webhook`
itself if it is root (and says so); otherwise the baseline is skipped.
Target: flwd runs/s >= 1.0x webhook.

    python bench/serve_throughput.py [--runs N] [--concurrency C] [--await sse|poll|stream]

--cost measures the server's CPU per run instead (issue 17: <= 4 ms on this VM):
each run is one ``POST /runs`` with ``Accept: text/event-stream`` read to its end,
sent by a lean client (bench/_lean.py: raw sockets, a few threads, no httpx),
interleaved in rounds with the same number of requests to a bare hypercorn-trio
hello app (and to webhook when installed). It reports, per run, the server's own
CPU (every thread of the flwd process, from /proc/<pid>/stat utime+stime) and
separately its children's (the process keeper and each job: live descendants'
own and reaped CPU), medians over the rounds, and their ratios to the hello's.
--profile FILE also records the server with py-spy (``$PY_SPY`` or PATH) over
extra runs and prints where its CPU goes.

    python bench/serve_throughput.py --cost [--rounds R] [--per-round N] [--threads T]
                                            [--profile FILE] [--compare-with TREE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    DEV_AUTH,
    TERMINAL,
    cpu_seconds,
    header,
    percentile,
    record,
    start_server,
    write_job,
)

TARGET = 1.0
#: How each run is awaited (--await), as the table names it.
WAYS = {"sse": "SSE", "poll": "poll GET", "stream": "its stream (lean)"}
OK_SCRIPT = "#!/bin/bash\necho ok\n"
#: Seconds between GET /runs/{id} with --await poll.
POLL_INTERVAL = 0.01


class Result:
    def __init__(self) -> None:
        self.wall = 0.0
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self.client_cpu = 0.0
        self.server_cpu = 0.0


async def drive(count: int, concurrency: int,
                one: Callable[[httpx.AsyncClient, int], Awaitable[str | None]],
                base_url: str) -> Result:
    """Run ``one(client, i)`` for i in range(count) with ``concurrency`` workers."""
    result = Result()
    next_index = 0
    limits = httpx.Limits(max_connections=concurrency * 2,
                          max_keepalive_connections=concurrency * 2)
    async with httpx.AsyncClient(base_url=base_url, limits=limits,
                                 timeout=httpx.Timeout(120.0)) as client:

        async def worker() -> None:
            nonlocal next_index
            while next_index < count:
                index = next_index
                next_index += 1
                begin = time.perf_counter()
                try:
                    problem = await one(client, index)
                except (httpx.HTTPError, ValueError) as exc:
                    problem = f"{type(exc).__name__}: {exc}"
                result.latencies.append(time.perf_counter() - begin)
                if problem is not None:
                    result.failures.append(f"#{index}: {problem}")

        cpu0 = time.process_time()
        start = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(concurrency):
                nursery.start_soon(worker)
        result.wall = time.perf_counter() - start
        result.client_cpu = time.process_time() - cpu0
    return result


async def flwd_one(client: httpx.AsyncClient, index: int) -> str | None:
    response = await client.post("/runs", json={"job_id": "ok", "args": {}}, headers=DEV_AUTH)
    if response.status_code != 201:
        return f"POST /runs -> {response.status_code}: {response.text[:200]}"
    run_id = response.json()["id"]
    event = ""
    finish: str | None = None
    async with client.stream("GET", f"/runs/{run_id}/events", headers=DEV_AUTH) as stream:
        if stream.status_code != 200:
            return f"GET /runs/{run_id}/events -> {stream.status_code}"
        async for line in stream.aiter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "run.finish":
                finish = line
                break
    if finish is None:
        return f"run {run_id}: the event stream ended without run.finish"
    if '"status":"completed"' not in finish:
        return f"run {run_id} did not complete: {finish}"
    return None


async def flwd_poll_one(client: httpx.AsyncClient, index: int) -> str | None:
    response = await client.post("/runs", json={"job_id": "ok", "args": {}}, headers=DEV_AUTH)
    if response.status_code != 201:
        return f"POST /runs -> {response.status_code}: {response.text[:200]}"
    run_id = response.json()["id"]
    while True:
        response = await client.get(f"/runs/{run_id}", headers=DEV_AUTH)
        if response.status_code != 200:
            return f"GET /runs/{run_id} -> {response.status_code}: {response.text[:200]}"
        status = response.json()["status"]
        if status in TERMINAL:
            return None if status == "completed" else f"run {run_id} ended {status}"
        await trio.sleep(POLL_INTERVAL)


async def webhook_one(client: httpx.AsyncClient, index: int) -> str | None:
    response = await client.post("/hooks/ok")
    if response.status_code != 200 or response.text.strip() != "ok":
        return f"POST /hooks/ok -> {response.status_code}: {response.text[:200]!r}"
    return None


def ensure_webhook() -> tuple[str | None, str]:
    """The webhook binary and a note of what was done to get it (or why it is missing)."""
    found = shutil.which("webhook") or ("/usr/bin/webhook" if Path("/usr/bin/webhook").exists()
                                        else None)
    if found:
        return found, ""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return None, "webhook not installed and not root: baseline skipped (apt-get install webhook)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    done = ["apt-get install -y webhook"]
    attempt = subprocess.run(["apt-get", "install", "-y", "webhook"], env=env,
                             capture_output=True, text=True, check=False)
    if attempt.returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, check=False)
        attempt = subprocess.run(["apt-get", "install", "-y", "webhook"], env=env,
                                 capture_output=True, text=True, check=False)
        done = ["apt-get install -y webhook (failed)", "apt-get update",
                "apt-get install -y webhook"]
    found = shutil.which("webhook")
    if attempt.returncode != 0 or not found:
        return None, (f"ran {'; '.join(done)}: exit {attempt.returncode}; baseline skipped\n"
                      f"{attempt.stderr.strip()[-500:]}")
    return found, f"webhook was missing; ran as root: {'; '.join(done)}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def lean_drive(count: int, concurrency: int, call: object, url: str) -> Result:
    """``--await stream``: the lean client (bench/_lean.py), one thread per connection."""
    from _lean import drive as lean

    load = lean(url, call, count, concurrency)  # type: ignore[arg-type]
    result = Result()
    result.wall, result.latencies, result.failures = load.wall, load.latencies, load.failures
    result.client_cpu = load.client_cpu
    return result


def run_webhook(binary: str, script: Path, tmp: Path, runs: int, concurrency: int,
                lean: bool = False) -> Result:
    hooks = tmp / "hooks.json"
    hooks.write_text(json.dumps([{"id": "ok", "execute-command": str(script),
                                  "include-command-output-in-response": True}]))
    port = free_port()
    process = subprocess.Popen([binary, "-hooks", str(hooks), "-port", str(port),
                                "-ip", "127.0.0.1"], cwd=tmp, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:  # wait until it listens (webhook prints nothing parseable by default)
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"webhook did not start (exit {process.poll()})") from None
                time.sleep(0.02)
        cpu0 = cpu_seconds(process.pid)
        url = f"http://127.0.0.1:{port}"
        if lean:
            from _cost import webhook_call
            result = lean_drive(runs, concurrency, webhook_call, url)
        else:
            result = trio.run(drive, runs, concurrency, webhook_one, url)
        result.server_cpu = cpu_seconds(process.pid) - cpu0
        return result
    finally:
        process.terminate()
        process.wait(timeout=10)


def completed_in_db(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        (count,) = conn.execute("SELECT COUNT(*) FROM runs WHERE status = 'completed'").fetchone()
    finally:
        conn.close()
    return int(count)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--await", dest="wait", choices=("sse", "poll", "stream"), default="sse",
                        help="await each run via its SSE stream (default) or by polling "
                             f"GET /runs/{{id}} every {POLL_INTERVAL * 1000:.0f} ms), or "
                             "(stream) as one POST /runs answering its stream, sent by the "
                             "lean client (both servers)")
    parser.add_argument("--cost", action="store_true",
                        help="measure the server's CPU per run beside a bare hypercorn hello")
    parser.add_argument("--rounds", type=int, default=9, help="--cost: interleaved rounds")
    parser.add_argument("--per-round", type=int, default=100,
                        help="--cost: runs (and hello requests) per round")
    parser.add_argument("--threads", type=int, default=4,
                        help="--cost: client threads, one kept-alive connection each")
    parser.add_argument("--profile", type=Path, default=None,
                        help="--cost: record the server with py-spy into this file (raw "
                             "collapsed stacks) and summarise it")
    parser.add_argument("--compare-with", type=Path, action="append", default=[],
                        help="--cost: also measure a flwd server importing flwd from this "
                             "source tree (PYTHONPATH), e.g. an older checkout; repeatable")
    options = parser.parse_args()
    webhook, note = ensure_webhook()
    if options.cost:
        from _cost import main as cost_main
        cost_main(options, webhook, note)
        return
    with tempfile.TemporaryDirectory(prefix="flwd-bench-") as tmp_name:
        tmp = Path(tmp_name)
        workspace, data = tmp / "ws", tmp / "data"
        job = write_job(workspace, "ok", "interpreter: bash\n", {"100_ok.sh": OK_SCRIPT})
        script = job / "100_ok.sh"

        baseline = (run_webhook(webhook, script, tmp, options.runs, options.concurrency,
                                lean=options.wait == "stream") if webhook else None)

        server = start_server(workspace, data)
        try:
            cpu0 = cpu_seconds(server.pid)
            if options.wait == "stream":
                from _cost import flwd_run
                flwd = lean_drive(options.runs, options.concurrency, flwd_run, server.url)
            else:
                one = flwd_one if options.wait == "sse" else flwd_poll_one
                flwd = trio.run(drive, options.runs, options.concurrency, one, server.url)
            flwd.server_cpu = cpu_seconds(server.pid) - cpu0
        finally:
            code = server.stop()
        journaled = completed_in_db(data / "flwd.db")
        server_problems = server.problems()

    header(f"serve_throughput ({options.runs:,} trivial runs, concurrency "
           f"{options.concurrency}, awaited to completion)")
    if note:
        print(note)
    print(f"{'system':34} {'wall s':>8} {'runs/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'srv CPU s':>9} {'cli CPU s':>9} {'vs baseline':>11}")
    rows = [("webhook (baseline)", baseline),
            (f"flwd :serve POST + {WAYS[options.wait]}", flwd)]
    for name, result in rows:
        if result is None:
            print(f"{name:34} {'skipped':>8}")
            continue
        rate = options.runs / result.wall
        ratio_text = (f"{rate / (options.runs / baseline.wall):10.2f}x"
                      if baseline is not None else f"{'-':>11}")
        print(f"{name:34} {result.wall:8.2f} {rate:8.1f} "
              f"{percentile(result.latencies, 0.5) * 1000:7.1f} "
              f"{percentile(result.latencies, 0.99) * 1000:7.1f} "
              f"{result.server_cpu:9.1f} {result.client_cpu:9.1f} {ratio_text}")
    failures = [("webhook", f) for f in (baseline.failures if baseline else [])]
    failures += [("flwd", f) for f in flwd.failures]
    for who, failure in failures[:10]:
        print(f"FAILED {who} {failure}")
    if len(failures) > 10:
        print(f"... {len(failures) - 10} more failures")
    print(f"server exit status after SIGTERM: {code}; warnings/errors in its log: "
          f"{len(server_problems)}")
    for line in server_problems[:5]:
        print(f"  {line[:300]}")
    print(f"runs journaled as completed in the Core DB: {journaled} of {options.runs}")
    sane = not failures and journaled == options.runs
    flwd_rate = options.runs / flwd.wall
    if baseline is None:
        print(f"target flwd >= {TARGET:.1f}x webhook: not measured (baseline skipped); "
              f"flwd {flwd_rate:.1f} runs/s")
    else:
        ratio = flwd_rate / (options.runs / baseline.wall)
        verdict = "met" if ratio >= TARGET and sane else "NOT met"
        print(f"target flwd >= {TARGET:.1f}x webhook runs/s: {verdict} ({ratio:.2f}x"
              f"{'' if sane else '; some runs failed or were not journaled'})")
        record("serve_throughput", f"runs/s, {options.runs} runs journaled", flwd_rate,
               "runs/s", baseline=("webhook", options.runs / baseline.wall),
               target=f">= {TARGET:.1f}x webhook ({ratio:.2f}x)", met=ratio >= TARGET and sane)
        record("serve_throughput", "server CPU per run",
               flwd.server_cpu / options.runs * 1000, "ms")
    if not sane:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
