"""Idle memory: the RSS of `flwd :serve` idle, after one trivial run, and holding 500 live runs.

Readings of the server process's VmRSS (/proc/<pid>/status): right after it
logs "serving" (plus 1 s settle), after one trivial run (`echo ok`) awaited to
completion, and with 500 concurrent runs of a job that does `exec sleep 600`,
once GET /runs?status=running reports all 500 (X-Total-Count). The job
processes' own memory is shown separately (RSS summed, and PSS, which splits
shared pages). Server CPU while the 500 runs just sleep is shown too. Then
every run is cancelled (POST /runs/{id}:cancel) and the bench waits until all
are terminal and no job process is left (checked in /proc).
Target: idle server RSS <= 80 MB (the larger of the two idle readings).

    python bench/idle_memory.py [--runs N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    DEV_AUTH,
    TERMINAL,
    cpu_seconds,
    header,
    mb,
    proc_status_kb,
    processes_with_env,
    pss_kb,
    record,
    start_server,
    write_job,
)

TARGET_MB = 80.0
CONCURRENCY = 8
WAIT_LIMIT = 300.0


async def parallel(count: int, one: Callable[[int], Awaitable[None]]) -> None:
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        while next_index < count:
            index = next_index
            next_index += 1
            await one(index)

    async with trio.open_nursery() as nursery:
        for _ in range(CONCURRENCY):
            nursery.start_soon(worker)


async def total(client: httpx.AsyncClient, status: str) -> int:
    response = await client.get("/runs", params={"status": status, "per_page": 1})
    response.raise_for_status()
    return int(response.headers["X-Total-Count"])


async def wait_for(what: str, check: Callable[[], Awaitable[bool]]) -> float:
    start = time.perf_counter()
    with trio.move_on_after(WAIT_LIMIT):
        # Polling is the only way to observe another process's state here.
        while not await check():  # noqa: ASYNC110
            await trio.sleep(0.1)
        return time.perf_counter() - start
    raise SystemExit(f"gave up after {WAIT_LIMIT:.0f} s waiting for {what}")


@dataclass
class Readings:
    """kB for memory, seconds for times."""

    idle_start: int = 0
    idle_after_run: int = 0
    live: int = 0
    peak: int = 0
    after_cancel: int = 0
    job_procs: int = 0
    job_rss: int = 0
    job_pss: int = 0
    cpu_idle_live: float = 0.0
    start_s: float = 0.0
    cancel_s: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)
    left: list[int] = field(default_factory=list)


async def bench(url: str, pid: int, runs: int, marker: str) -> Readings:
    out = Readings()
    await trio.sleep(1.0)
    out.idle_start = proc_status_kb(pid)
    async with httpx.AsyncClient(base_url=url, headers=DEV_AUTH,
                                 timeout=httpx.Timeout(120.0)) as client:
        response = await client.post("/runs", json={"job_id": "ok", "args": {}})
        response.raise_for_status()
        run_id = response.json()["id"]
        async with client.stream("GET", f"/runs/{run_id}/events") as stream:
            async for _ in stream.aiter_lines():
                pass  # the stream ends after run.finish
        status = (await client.get(f"/runs/{run_id}")).json()["status"]
        if status != "completed":
            raise SystemExit(f"the trivial run ended {status}")
        await trio.sleep(1.0)
        out.idle_after_run = proc_status_kb(pid)

        ids: list[str] = []
        errors: list[str] = []

        async def submit(index: int) -> None:
            response = await client.post("/runs", json={"job_id": "sleeper", "args": {}})
            if response.status_code != 201:
                errors.append(f"POST /runs -> {response.status_code}: {response.text[:200]}")
            else:
                ids.append(response.json()["id"])

        start = time.perf_counter()
        await parallel(runs, submit)
        if errors:
            raise SystemExit(f"{len(errors)} submissions failed, e.g. {errors[0]}")

        async def all_running() -> bool:
            return await total(client, "running") >= runs

        out.start_s = time.perf_counter() - start + await wait_for(
            f"{runs} runs to be running", all_running)
        cpu0 = cpu_seconds(pid)
        await trio.sleep(5.0)
        out.cpu_idle_live = (cpu_seconds(pid) - cpu0) / 5.0
        out.live = proc_status_kb(pid)
        jobs = processes_with_env(marker)
        out.job_procs = len(jobs)
        out.job_rss = sum(proc_status_kb(p) for p in jobs)
        out.job_pss = sum(pss_kb(p) for p in jobs)
        out.peak = proc_status_kb(pid, "VmHWM")

        async def cancel(index: int) -> None:
            response = await client.post(f"/runs/{ids[index]}:cancel")
            if response.status_code not in (200, 202):
                errors.append(f"POST /runs/{ids[index]}:cancel -> {response.status_code}: "
                              f"{response.text[:200]}")

        start = time.perf_counter()
        await parallel(len(ids), cancel)
        if errors:
            raise SystemExit(f"{len(errors)} cancel requests failed, e.g. {errors[0]}")

        async def all_terminal() -> bool:
            return (await total(client, "running") == 0 and await total(client, "queued") == 0)

        await wait_for("every run to be terminal", all_terminal)
        out.cancel_s = time.perf_counter() - start
        statuses: dict[str, int] = {}
        for run in ids:
            status = (await client.get(f"/runs/{run}")).json()["status"]
            statuses[status] = statuses.get(status, 0) + 1
        out.statuses = statuses
        for _ in range(50):  # the ladder is over; give the kernel a moment to reap
            left = processes_with_env(marker)
            if not left:
                break
            await trio.sleep(0.1)
        out.left = left
        await trio.sleep(1.0)
        out.after_cancel = proc_status_kb(pid)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=500)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="flwd-bench-") as tmp_name:
        tmp = Path(tmp_name)
        workspace, data = tmp / "ws", tmp / "data"
        write_job(workspace, "ok", "interpreter: bash\n", {"100_ok.sh": "echo ok\n"})
        write_job(workspace, "sleeper", "interpreter: bash\n",
                  {"100_sleep.sh": "exec sleep 600\n"})
        server = start_server(workspace, data)
        marker = f"FLWD_RUN_DIR={data}"
        try:
            out = trio.run(bench, server.url, server.pid, options.runs, marker)
        finally:
            code = server.stop()
            leaked = processes_with_env(marker)
        problems = server.problems()

    n = options.runs
    header(f"idle_memory (server RSS idle and with {n} concurrent sleeping runs)")
    print(f"{'server state':38} {'RSS MB':>8}")
    rows = [("idle, after start (+1 s)", out.idle_start),
            ("idle, after one trivial run (+1 s)", out.idle_after_run),
            (f"{n} runs live (sleeping)", out.live),
            ("peak so far (VmHWM)", out.peak),
            (f"after cancelling all {n} (+1 s)", out.after_cancel)]
    for name, kb in rows:
        print(f"{name:38} {mb(kb):>8}")
    print(f"server RSS per live run: {(out.live - out.idle_after_run) / n:.1f} kB")
    print(f"job processes while live: {out.job_procs}, RSS summed {mb(out.job_rss)} MB, "
          f"PSS summed {mb(out.job_pss)} MB")
    print(f"server CPU while the {n} runs sleep: {out.cpu_idle_live:.0%} of a core")
    print(f"time to start {n} runs (first submit until all running): {out.start_s:.1f} s; "
          f"to cancel them (first request until all terminal): {out.cancel_s:.1f} s")
    print(f"final statuses: {out.statuses}; job processes left: {len(out.left)} after cancel, "
          f"{len(leaked)} after server exit")
    print(f"server exit status after SIGTERM: {code}; warnings/errors in its log: {len(problems)}")
    for line in problems[:5]:
        print(f"  {line[:300]}")
    idle = max(out.idle_start, out.idle_after_run) / 1024
    non_terminal = sum(k for status, k in out.statuses.items() if status not in TERMINAL)
    sane = not out.left and not leaked and non_terminal == 0 and out.job_procs == n
    verdict = "met" if idle <= TARGET_MB and sane else "NOT met"
    print(f"target idle RSS <= {TARGET_MB:.0f} MB: {verdict} ({idle:.1f} MB"
          f"{'' if sane else '; runs or processes were left behind'})")
    record("idle_memory", "idle server RSS", idle, "MB", target=f"<= {TARGET_MB:.0f} MB",
           met=idle <= TARGET_MB and sane)
    record("idle_memory", f"server RSS with {n} sleeping runs", out.live / 1024, "MB")
    record("idle_memory", f"time to cancel {n} runs", out.cancel_s, "s")
    if not sane:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
