"""UI page: the web UI in a real browser (Debian's headless Chromium, driven by Playwright).

(a) Page load on loopback: navigation start -> the jobs list on screen (the UI's own
    performance mark ``flwd:jobs-ready``, set once the list is drawn), beside a baseline
    loaded by the same browser in the same run: a minimal HTML page served by a bare
    Hypercorn app (trio worker, as flwd serves), to its load event. Cold: a fresh browser
    context each time (every file fetched); warm: a new page in a context that loaded it
    before (the UI's files revalidated: 304s). Medians of N interleaved loads (the order
    rotated each round). Issue 15's target: the UI loads in < 300 ms on loopback.
(b) A long run's page (300,000 lines) beside the same page for a short run (1,000 lines),
    cold each time, interleaved: the first log row on screen, the whole log loaded (its
    last line drawn), the JS heap then, the frame intervals while the log is scrolled
    programmatically from the top to the end and back (one step per frame), and a jump
    from the top to the last line until it is drawn.

No assertion on a time: the figures stand beside their baselines.

    python bench/ui_page.py [--loads N] [--lines 300000] [--small 1000] [--log-loads M]
                            [--steps S]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    DEV_AUTH,
    REPO,
    TERMINAL,
    header,
    median,
    percentile,
    record,
    start_server,
    write_job,
)

CHROMIUM = os.environ.get("FLWD_TEST_CHROMIUM", "/usr/bin/chromium")
BROWSER_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1280, "height": 800}
TARGET_MS = 300.0
#: Each figure of (a) beside the baseline loaded the same way.
BASELINE_OF = {"flwd UI jobs list, cold": "hello page, cold (baseline)",
               "flwd UI jobs list, warm": "hello page, warm (baseline)"}

#: A bare Hypercorn app (trio worker) answering every GET with a minimal HTML page; it
#: prints its address once it listens.
HELLO_SERVER = """\
import sys
from functools import partial
import trio
from hypercorn.config import Config
from hypercorn.trio import serve

PAGE = b"<!doctype html><html lang=en><head><meta charset=utf-8><title>hello</title></head><body><h1>hello</h1></body></html>"

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send({"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", b"text/html; charset=utf-8"), (b"cache-control", b"no-cache")]})
    await send({"type": "http.response.body", "body": PAGE})

async def main():
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(partial(serve, app, config))
        print(binds[0], flush=True)

trio.run(main)
"""

#: Frame intervals (rAF to rAF, ms) while the log is scrolled from the top to the end
#: and back, `steps` scroll positions each way, one per frame.
SCROLL = """async (steps) => {
  const log = document.querySelector('.log');
  const frame = () => new Promise((resolve) => requestAnimationFrame(resolve));
  const max = log.scrollHeight - log.clientHeight;
  const intervals = [];
  let last = await frame();
  const step = async (i) => {
    log.scrollTop = max * i / steps;
    const now = await frame();
    intervals.push(now - last);
    last = now;
  };
  for (let i = 0; i <= steps; i++) await step(i);
  for (let i = steps; i >= 0; i--) await step(i);
  return intervals;
}"""

#: From the top, a jump to the end: ms until the last line is drawn.
JUMP = """async (lastText) => {
  const log = document.querySelector('.log');
  const frame = () => new Promise((resolve) => requestAnimationFrame(resolve));
  const drawn = () => [...log.querySelectorAll('.log-row .tx')].some((e) => e.textContent === lastText);
  log.scrollTop = 0;
  await frame(); await frame(); await frame();
  if (drawn()) throw new Error('the last line is drawn at the top');
  const start = performance.now();
  log.scrollTop = log.scrollHeight;
  while (!drawn()) await frame();
  return performance.now() - start;
}"""

def start_hello() -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen([sys.executable, "-c", HELLO_SERVER], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if not line.startswith("http://"):
        process.kill()
        raise SystemExit(f"the hello server did not start: {line!r}")
    return process, line


def wait_run(url: str, run_id: str, timeout: float = 600) -> str:
    """Poll the run until it is terminal; its status."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = httpx.get(f"{url}/runs/{run_id}", headers=DEV_AUTH, timeout=30).json()["status"]
        if status in TERMINAL:
            return str(status)
        time.sleep(0.2)
    raise SystemExit(f"run {run_id} did not finish within {timeout:.0f} s")


def after(page: Any, condition: str) -> float:
    """ms since navigation start when `condition` (a JS expression) first held."""
    handle = page.wait_for_function(f"() => ({condition}) && performance.now()",
                                    polling="raf", timeout=600_000)
    return float(handle.json_value())


def load_times(browser: Any, hello_url: str, ui_url: str, loads: int) -> dict[str, list[float]]:
    """(a): ms from navigation start to ready, per variant, interleaved."""
    warm_contexts = {name: browser.new_context(viewport=VIEWPORT) for name in ("hello", "ui")}

    def hello(page: Any) -> float:
        page.goto(hello_url, wait_until="load")
        return float(page.evaluate(
            "() => performance.getEntriesByType('navigation')[0].loadEventEnd"))

    def ui(page: Any) -> float:
        page.goto(f"{ui_url}/#/jobs", wait_until="commit")
        return float(page.wait_for_function(
            "() => { const m = performance.getEntriesByName('flwd:jobs-ready'); "
            "return m.length && m[0].startTime; }", polling="raf").json_value())

    def cold(measure: Callable[[Any], float]) -> Callable[[], float]:
        def run() -> float:
            context = browser.new_context(viewport=VIEWPORT)
            try:
                return measure(context.new_page())
            finally:
                context.close()
        return run

    def warm(name: str, measure: Callable[[Any], float]) -> Callable[[], float]:
        def run() -> float:
            page = warm_contexts[name].new_page()
            try:
                return measure(page)
            finally:
                page.close()
        return run

    variants: list[tuple[str, Callable[[], float]]] = [
        ("hello page, cold (baseline)", cold(hello)),
        ("flwd UI jobs list, cold", cold(ui)),
        ("hello page, warm (baseline)", warm("hello", hello)),
        ("flwd UI jobs list, warm", warm("ui", ui)),
    ]
    for _, run in variants:  # once each: the server's and the browser's first-use costs
        run()
    times: dict[str, list[float]] = {name: [] for name, _ in variants}
    for round_ in range(loads):
        turn = round_ % len(variants)
        for name, run in variants[turn:] + variants[:turn]:
            times[name].append(run())
    for context in warm_contexts.values():
        context.close()
    return times


def log_page(browser: Any, url: str, run_id: str, last_line: str, steps: int
             ) -> dict[str, Any]:
    """(b): one cold load of a run's page and what it takes to scroll it."""
    context = browser.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        cdp = context.new_cdp_session(page)
        cdp.send("Performance.enable")
        page.goto(f"{url}/#/runs/{run_id}", wait_until="commit")
        first = after(page, "document.querySelector('.log-row')")
        loaded = after(page, "document.querySelector('.conn').textContent === 'finished' && "
                             f"[...document.querySelectorAll('.log-row .tx')].some("
                             f"(e) => e.textContent === {last_line!r})")
        metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
        intervals = page.evaluate(SCROLL, steps)
        jumps = [page.evaluate(JUMP, last_line) for _ in range(5)]
        return {"first": first, "loaded": loaded, "heap": metrics["JSHeapUsedSize"] / 2**20,
                "frames": intervals, "jump": median(jumps)}
    finally:
        context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loads", type=int, default=15, help="page loads per variant (a)")
    parser.add_argument("--lines", type=int, default=300_000, help="lines of the long run (b)")
    parser.add_argument("--small", type=int, default=1_000, help="lines of the short run (b)")
    parser.add_argument("--log-loads", type=int, default=5, help="loads of each run page (b)")
    parser.add_argument("--steps", type=int, default=120, help="scroll steps each way (b)")
    options = parser.parse_args()
    if not Path(CHROMIUM).exists():
        print(f"ui_page: skipped (no browser at {CHROMIUM}: apt-get install chromium)")
        return
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="flwd-bench-") as tmp_name:
        tmp = Path(tmp_name)
        workspace = tmp / "ws"
        shutil.copytree(REPO / "scripts", workspace / "scripts")
        printer = "#!/bin/bash\nawk -v n={n} 'BEGIN {{ for (i = 1; i <= n; i++) print \"line \" i }}'\n"
        write_job(workspace, "bench-ui/long", "interpreter: bash\n",
                  {"100_print.sh": printer.format(n=options.lines)})
        write_job(workspace, "bench-ui/short", "interpreter: bash\n",
                  {"100_print.sh": printer.format(n=options.small)})
        server = start_server(workspace, tmp / "data")
        hello, hello_url = start_hello()
        load_before = os.getloadavg()[0]
        try:
            runs = {}
            for name, lines in (("long", options.lines), ("short", options.small)):
                answer = httpx.post(f"{server.url}/runs", headers=DEV_AUTH, timeout=30,
                                    json={"job_id": f"bench-ui.{name}"})
                if answer.status_code != 201:
                    raise SystemExit(f"POST /runs -> {answer.status_code}: {answer.text}")
                run_id = answer.json()["id"]
                status = wait_run(server.url, run_id)
                if status != "completed":
                    raise SystemExit(f"the {name} run ended {status}")
                runs[name] = (run_id, lines)
            jobs = len(httpx.get(f"{server.url}/jobs", headers=DEV_AUTH, timeout=30).json())
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
                version = browser.version
                loads = load_times(browser, hello_url, server.url, options.loads)
                logs: dict[str, list[dict[str, Any]]] = {"long": [], "short": []}
                for round_ in range(options.log_loads):
                    order = ["long", "short"] if round_ % 2 == 0 else ["short", "long"]
                    for name in order:
                        run_id, lines = runs[name]
                        logs[name].append(log_page(browser, server.url, run_id,
                                                   f"line {lines}", options.steps))
                browser.close()
            load_after = os.getloadavg()[0]
        finally:
            hello.kill()
            hello.wait(timeout=30)
            code = server.stop()
        problems = server.problems()

    header(f"ui_page (Chromium {version}, headless, {VIEWPORT['width']}x{VIEWPORT['height']}; "
           f"{jobs} jobs listed)")
    # The machine may be shared: a busy one slows every figure, the baselines as well.
    print(f"load average (1 min): {load_before:.2f} at the start, {load_after:.2f} at the end")
    print(f"(a) page load, navigation start -> ready, median of {options.loads} interleaved "
          "loads each")
    print(f"{'page':32} {'median ms':>10} {'p95 ms':>8} {'min ms':>8} {'vs baseline':>12}")
    for name, values in loads.items():
        base = loads[BASELINE_OF.get(name, name)]
        print(f"{name:32} {median(values):10.1f} {percentile(values, 0.95):8.1f} "
              f"{min(values):8.1f} {median(values) / median(base):11.2f}x")
    cold_ms = median(loads["flwd UI jobs list, cold"])
    warm_ms = median(loads["flwd UI jobs list, warm"])
    print(f"target: the UI loads in < {TARGET_MS:.0f} ms on loopback: "
          f"{'met' if max(cold_ms, warm_ms) < TARGET_MS else 'NOT met'} "
          f"(cold {cold_ms:.0f} ms, warm {warm_ms:.0f} ms)")
    print()
    print(f"(b) a run's page, cold, median of {options.log_loads} interleaved loads each; "
          f"scrolling: {options.steps} steps each way, one per frame")
    print(f"{'run':16} {'1st row ms':>10} {'loaded ms':>10} {'heap MB':>8} "
          f"{'frame p50':>10} {'frame p95':>10} {'frame max':>10} {'jump ms':>8}")
    summary: dict[str, dict[str, float]] = {}
    for name in ("short", "long"):
        entries = logs[name]
        frames = [f for entry in entries for f in entry["frames"]]
        summary[name] = {
            "first": median([e["first"] for e in entries]),
            "loaded": median([e["loaded"] for e in entries]),
            "heap": median([e["heap"] for e in entries]),
            "p50": percentile(frames, 0.5), "p95": percentile(frames, 0.95),
            "max": max(frames), "jump": median([e["jump"] for e in entries]),
        }
        s = summary[name]
        label = f"{runs[name][1]:,} lines"
        print(f"{label:16} {s['first']:10.1f} {s['loaded']:10.1f} {s['heap']:8.1f} "
              f"{s['p50']:10.1f} {s['p95']:10.1f} {s['max']:10.1f} {s['jump']:8.1f}")
    long_, short = summary["long"], summary["short"]
    print(f"long vs short: first row {long_['first'] / short['first']:.2f}x, whole log "
          f"{long_['loaded'] / short['loaded']:.1f}x, frame p95 "
          f"{long_['p95'] / short['p95']:.2f}x, jump {long_['jump'] / short['jump']:.2f}x")
    print(f"server exit status after SIGTERM: {code}; warnings/errors in its log: "
          f"{len(problems)}")

    hello_cold = median(loads["hello page, cold (baseline)"])
    hello_warm = median(loads["hello page, warm (baseline)"])
    record("ui_page", "UI jobs list ready, cold (median)", cold_ms, "ms",
           baseline=("hello page, cold", hello_cold), target=f"< {TARGET_MS:.0f} ms",
           met=cold_ms < TARGET_MS)
    record("ui_page", "UI jobs list ready, warm (median)", warm_ms, "ms",
           baseline=("hello page, warm", hello_warm), target=f"< {TARGET_MS:.0f} ms",
           met=warm_ms < TARGET_MS)
    big = f"{options.lines:,}-line run"
    small = f"{options.small:,}-line run"
    record("ui_page", f"{big}: first log row (median)", long_["first"], "ms",
           baseline=(small, short["first"]))
    record("ui_page", f"{big}: whole log loaded (median)", long_["loaded"], "ms",
           baseline=(small, short["loaded"]))
    record("ui_page", f"{big}: frame interval p95 while scrolling", long_["p95"], "ms",
           baseline=(small, short["p95"]))
    record("ui_page", f"{big}: jump to the last line (median)", long_["jump"], "ms",
           baseline=(small, short["jump"]))


if __name__ == "__main__":
    main()
