"""``serve_throughput.py --cost``: the server's CPU per trivial run, beside a bare
hypercorn-trio hello (and webhook) measured in the same run, interleaved by rounds."""

from __future__ import annotations

import argparse
import json
import re
import signal
import subprocess
import tempfile
import urllib.request
from collections import Counter
from pathlib import Path

from _common import header, median, record, start_server, write_job
from _lean import Hello, LeanConnection, Load, drive, load_average, py_spy, tree_cpu

OK_SCRIPT = "#!/bin/bash\necho ok\n"
TARGET_MS = 4.0
RUN_BODY = json.dumps({"job_id": "ok", "args": {}}).encode()
RUN_HEADERS = {"Authorization": "Bearer dev-token", "Accept": "text/event-stream",
               "Content-Type": "application/json"}


def flwd_run(connection: LeanConnection, index: int) -> str | None:
    status, _, body = connection.request("POST", "/runs", RUN_HEADERS, RUN_BODY)
    if status != 201:
        return f"POST /runs -> {status}: {body[:200]!r}"
    finish = body.rfind(b"event: run.finish\n")
    if finish < 0:
        return "the stream ended without run.finish"
    if b'"status":"completed"' not in body[finish:]:
        return f"the run did not complete: {body[finish:][:300]!r}"
    return None


def hello_call(connection: LeanConnection, index: int) -> str | None:
    status, _, body = connection.request("POST", "/", {"Content-Type": "application/json"},
                                         RUN_BODY)
    return None if status == 200 and body == b"hello\n" else f"hello -> {status} {body!r}"


def healthz_fast(connection: LeanConnection, index: int) -> str | None:
    status, _, body = connection.request("GET", "/healthz", {})
    return None if status == 204 else f"GET /healthz -> {status} {body!r}"


def healthz_app(connection: LeanConnection, index: int) -> str | None:
    # A query string is the app's (the fast path answers the plain request only): the
    # same answer through Quart's machinery, what the fast path saves per request.
    status, _, body = connection.request("GET", "/healthz?via=app", {})
    return None if status == 204 else f"GET /healthz?via=app -> {status} {body!r}"


def webhook_call(connection: LeanConnection, index: int) -> str | None:
    status, _, body = connection.request("POST", "/hooks/ok", {}, b"")
    return None if status == 200 and body.strip() == b"ok" else f"webhook -> {status} {body!r}"


def journal_transactions(url: str) -> float:
    """The Core DB transactions a flwd server's journal committed so far (its /metrics)."""
    request = urllib.request.Request(f"{url}/metrics", headers=RUN_HEADERS | {"Accept": "*/*"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        text = answer.read().decode()
    found = re.search(r'^flwd_persistence_latency_seconds_count\{(?=[^}]*operation="journal_append")'
                      r'(?=[^}]*outcome="ok")[^}]*\} ([0-9.e+]+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


class Target:
    def __init__(self, name: str, pid: int, url: str, call: object, *,
                 journaled: bool = False) -> None:
        self.name, self.pid, self.url, self.call = name, pid, url, call
        #: A flwd server: its journal's transactions per run are counted too.
        self.journaled = journaled
        self.transactions: list[float] = []
        self.own: list[float] = []
        self.children: list[float] = []
        self.rates: list[float] = []
        self.client: list[float] = []
        self.failures: list[str] = []

    def round(self, count: int, threads: int) -> Load:
        # Read outside the CPU bracket: /metrics is not part of a run's cost.
        committed = journal_transactions(self.url) if self.journaled else 0.0
        before = tree_cpu(self.pid)
        load = drive(self.url, self.call, count, threads)  # type: ignore[arg-type]
        spent = tree_cpu(self.pid) - before
        if self.journaled:
            self.transactions.append((journal_transactions(self.url) - committed) / count)
        self.own.append(spent.own / count * 1000)
        self.children.append(spent.children / count * 1000)
        self.rates.append(count / load.wall)
        self.client.append(load.client_cpu / count * 1000)
        self.failures += load.failures
        return load


def start_webhook(binary: str, script: Path, tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    import socket
    import time

    from serve_throughput import free_port  # the same start-up as the throughput mode

    hooks = tmp / "hooks.json"
    hooks.write_text(json.dumps([{"id": "ok", "execute-command": str(script),
                                  "include-command-output-in-response": True}]))
    port = free_port()
    process = subprocess.Popen([binary, "-hooks", str(hooks), "-port", str(port),
                                "-ip", "127.0.0.1"], cwd=tmp, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process, f"http://127.0.0.1:{port}"
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("webhook did not start") from None
            time.sleep(0.02)


def _group(frame: str) -> str:
    """A frame ``func (path:line)`` as its package: flwd.<sub>, a site package, a stdlib
    module (py-spy names files relative to their sys.path entry)."""
    path = frame[frame.rfind("(") + 1:].rsplit(":", 1)[0]
    parts = path.split("/")
    if parts[0] == "flwd" and len(parts) > 2:
        return f"flwd.{parts[1]}"
    return parts[0].removesuffix(".py")


def summarise_profile(raw: Path, runs: int) -> None:
    """Where the sampled CPU goes: by the leaf frame's package, inclusive by package,
    and the hottest leaf functions."""
    leaf: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    functions: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")[1:]  # the first is the thread
        if not frames:
            continue
        total += count
        leaf[_group(frames[-1])] += count
        functions[frames[-1]] += count
        for group in {_group(frame) for frame in frames}:
            inclusive[group] += count
    print(f"py-spy --gil (the thread holding the GIL, i.e. Python CPU): {total} samples "
          f"over {runs} runs")
    print(f"{'package (self)':32} {'%':>6}   {'package (inclusive)':32} {'%':>6}")
    selfs, incl = leaf.most_common(18), inclusive.most_common(18)
    for index in range(max(len(selfs), len(incl))):
        left = (f"{selfs[index][0]:32} {selfs[index][1] / total * 100:6.1f}"
                if index < len(selfs) else " " * 39)
        right = (f"{incl[index][0]:32} {incl[index][1] / total * 100:6.1f}"
                 if index < len(incl) else "")
        print(f"{left}   {right}")
    print("hottest leaf functions:")
    for frame, count in functions.most_common(25):
        print(f"  {count / total * 100:5.1f}%  {frame[:110]}")


def request_log_cost(calls: int = 10_000) -> float:
    """Seconds of CPU one request's log line and metrics take in flwd's server code
    (``log_request`` as ``--log json`` writes it to a pipe, ``observe_request``):
    the calling thread's CPU over ``calls`` of both, while another thread drains the
    pipe (as the bench drains the server's stderr)."""
    import logging
    import os
    import threading
    import time

    from flwd.http._fast import log_request
    from flwd.http._logging import JsonFormatter
    from flwd.http._metrics import Metrics

    read_end, write_end = os.pipe()
    drain = threading.Thread(target=lambda: [None for _ in iter(
        lambda: os.read(read_end, 1 << 16), b"")], daemon=True)
    drain.start()
    stream = os.fdopen(write_end, "w")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("flwd.http")
    saved = logger.handlers[:], logger.level, logger.propagate
    logger.handlers[:], logger.propagate = [handler], False
    logger.setLevel(logging.INFO)
    metrics = Metrics("secure")
    try:
        begin = time.thread_time()
        for index in range(calls):
            metrics.observe_request("POST", "/runs", 201, 0.004)
            log_request("POST", "/runs", 201, 0.004, None, f"{index:016x}")
        spent = time.thread_time() - begin
    finally:
        logger.handlers[:], logger.level, logger.propagate = saved[0], saved[1], saved[2]
        stream.close()
        drain.join(timeout=10)
        os.close(read_end)
    return spent / calls


def main(options: argparse.Namespace, webhook: str | None, note: str) -> None:
    with tempfile.TemporaryDirectory(prefix="flwd-bench-") as tmp_name:
        tmp = Path(tmp_name)
        workspace, data = tmp / "ws", tmp / "data"
        job = write_job(workspace, "ok", "interpreter: bash\n", {"100_ok.sh": OK_SCRIPT})
        server = start_server(workspace, data)
        others = [(tree, start_server(workspace, tmp / f"data-other-{index}",
                                      PYTHONPATH=str(tree)))
                  for index, tree in enumerate(options.compare_with)]
        hello = Hello()
        hook = start_webhook(webhook, job / "100_ok.sh", tmp) if webhook else None
        targets = [Target("hello (hypercorn-trio, bare ASGI)", hello.pid, hello.url,
                          hello_call),
                   Target("flwd :serve POST /runs + stream", server.pid, server.url,
                          flwd_run, journaled=True)]
        for tree, other in others:
            targets.append(Target(f"flwd :serve from {tree}", other.pid, other.url, flwd_run,
                                  journaled=True))
        probes = [Target("flwd GET /healthz (fast path)", server.pid, server.url, healthz_fast),
                  Target("flwd GET /healthz?via=app (Quart)", server.pid, server.url,
                         healthz_app)]
        if hook is not None:
            targets.append(Target("webhook (runs the script)", hook[0].pid, hook[1],
                                  webhook_call))
        loads = [load_average()]
        try:
            for target in targets:  # warm-up: imports, caches, the keeper
                drive(target.url, target.call, 30, options.threads)  # type: ignore[arg-type]
            for index in range(options.rounds):
                order = targets[index % len(targets):] + targets[:index % len(targets)]
                for target in order:
                    target.round(options.per_round, options.threads)
                for probe in probes if index % 2 else probes[::-1]:
                    probe.round(options.per_round * 10, options.threads)
            loads.append(load_average())
            profiled = None
            if options.profile is not None:
                profiled = profile(server.pid, server.url, options)
        finally:
            code = server.stop()
            for _, other in others:
                other.stop()
            hello.stop()
            if hook is not None:
                hook[0].terminate()
                hook[0].wait(timeout=10)
        problems = server.problems()

    header(f"serve_throughput --cost ({options.rounds} interleaved rounds of "
           f"{options.per_round} runs/requests each, {options.threads} client threads, "
           "lean client)")
    if note:
        print(note)
    import flwd  # the server runs the flwd this interpreter imports (PYTHONPATH first)
    print(f"flwd under test: {Path(flwd.__file__).parent}")
    print(f"load average (1/5/15 min): {loads[0]} at the start, {loads[-1]} at the end")
    print("CPU per run/request in ms, medians over the rounds (own: the server process, "
          "every thread; children: keeper + job processes)")
    hello_own = median(targets[0].own)
    print(f"{'server':36} {'own ms':>7} {'min':>6} {'max':>6} {'vs hello':>8} "
          f"{'children':>8} {'runs/s':>7} {'client ms':>9}")
    for target in targets:
        own = median(target.own)
        print(f"{target.name:36} {own:7.2f} {min(target.own):6.2f} {max(target.own):6.2f} "
              f"{own / hello_own:7.1f}x {median(target.children):8.2f} "
              f"{median(target.rates):7.1f} {median(target.client):9.2f}")
    for probe in probes:
        own = median(probe.own)
        print(f"{probe.name:36} {own:7.3f} {min(probe.own):6.3f} {max(probe.own):6.3f} "
              f"{own / hello_own:7.1f}x {'':8} {median(probe.rates):7.1f} "
              f"{median(probe.client):9.2f}   ({options.per_round * 10} requests a round)")
    print("Core DB transactions per run (the journal's, from /metrics; medians): " + ", ".join(
        f"{target.name.removeprefix('flwd :serve ')} {median(target.transactions):.2f}"
        for target in targets if target.transactions))
    failures = [f"{target.name}: {failure}" for target in [*targets, *probes]
                for failure in target.failures]
    for failure in failures[:10]:
        print(f"FAILED {failure}")
    print(f"server exit status after SIGTERM: {code}; warnings/errors in its log: "
          f"{len(problems)}")
    for line in problems[:5]:
        print(f"  {line[:300]}")
    if profiled is not None:
        summarise_profile(*profiled)
    flwd = median(targets[1].own)
    logging_ms = request_log_cost() * 1000
    print(f"request log line (--log json, to a pipe) + request metrics: {logging_ms:.3f} ms "
          f"per request in-process = {logging_ms / flwd * 100:.1f}% of the server's own CPU "
          f"per run (target <= 3%)")
    for index, (tree, _) in enumerate(others, start=2):
        before = median(targets[index].own)
        print(f"flwd under test vs {tree}: {flwd:.2f} / {before:.2f} ms own "
              f"= {flwd / before:.2f}x; children {median(targets[1].children):.2f} / "
              f"{median(targets[index].children):.2f} ms")
    met = flwd <= TARGET_MS and not failures
    print(f"target server CPU per trivial run <= {TARGET_MS:.0f} ms: "
          f"{'met' if met else 'NOT met'} ({flwd:.2f} ms own, {flwd / hello_own:.1f}x the "
          f"hello's {hello_own:.2f} ms)")
    record("serve_throughput", "server CPU per run (own, --cost)", flwd, "ms",
           baseline=("hypercorn-trio hello", hello_own), target=f"<= {TARGET_MS:.0f} ms",
           met=met)
    if failures:
        raise SystemExit(1)


def profile(pid: int, url: str, options: argparse.Namespace) -> tuple[Path, int] | None:
    binary = py_spy()
    if binary is None:
        print("py-spy not found (PATH, the venv or $PY_SPY): no profile")
        return None
    runs = options.per_round * 3
    spy = subprocess.Popen([binary, "record", "--pid", str(pid), "--rate", "500",
                            "--format", "raw", "--gil", "--nonblocking", "-o", str(options.profile)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        drive(url, flwd_run, runs, options.threads)
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=60)
    return (options.profile, runs) if options.profile.exists() else None
