"""Load: ``FLWD_LOAD_RUNS`` (default 1000) ``POST /runs`` from 50 concurrent clients.

Against a real ``flwd :serve``: every accepted run (201) is journaled and
reaches a terminal state (watched on the global SSE stream, then checked
page by page on ``GET /runs``), none lost, none duplicated; no 5xx; the
server keeps answering ``/healthz`` — its latency under load is measured by a
separate client and printed (p50/p99), not asserted beyond "answered".

Run with ``-s`` to see the figures; ``FLWD_LOAD_RUNS=5000`` for the long profile.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path

import httpx
import pytest
import trio

from tests.conftest import write_job

DEV = {"Authorization": "Bearer dev-token"}
RUNS = int(os.environ.get("FLWD_LOAD_RUNS", "1000"))
CLIENTS = int(os.environ.get("FLWD_LOAD_CLIENTS", "50"))
#: Generous: a bound that only a hang (or a lost run) reaches.
DEADLINE = float(os.environ.get("FLWD_LOAD_DEADLINE", "600"))

pytestmark = pytest.mark.load


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


class Progress:
    """Wakes the waiter whenever a response or a ``run.finish`` arrives."""

    def __init__(self) -> None:
        self.changed = trio.Event()

    def note(self) -> None:
        self.changed.set()

    async def wait(self) -> None:
        await self.changed.wait()
        self.changed = trio.Event()


async def watch_finishes(url: str, finished: dict[str, list[int]], seqs: list[int],
                         ready: trio.Event, progress: Progress) -> None:
    """Record the seq of every event and each run's ``run.finish`` from ``/events``."""
    async with httpx.AsyncClient(timeout=httpx.Timeout(30, read=None)) as client:
        async with client.stream("GET", f"{url}/events", params={"after": "0"},
                                 headers=DEV) as response:
            assert response.status_code == 200
            ready.set()
            frame: dict[str, str] = {}
            async for line in response.aiter_lines():
                if line == "":
                    if "data" in frame:
                        event = json.loads(frame["data"])
                        seqs.append(event["seq"])
                        if event["type"] == "run.finish":
                            finished.setdefault(event["run_id"], []).append(event["seq"])
                            progress.note()
                    frame = {}
                elif not line.startswith(":"):
                    key, _, value = line.partition(": ")
                    frame[key] = value


async def probe_health(url: str, latencies: list[float], statuses: list[int],
                       stop: trio.Event) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        while not stop.is_set():
            start = time.perf_counter()
            response = await client.get(f"{url}/healthz")
            latencies.append(time.perf_counter() - start)
            statuses.append(response.status_code)
            with trio.move_on_after(0.02):  # pacing of the probe, not synchronisation
                await stop.wait()


async def test_many_concurrent_post_runs_are_all_journaled_and_finish(
        server_factory, workspace: Path) -> None:
    write_job(workspace, "quick", "job: {id: quick}\n",
              {"100_main.sh": "#!/bin/bash\necho \"quick $FLWD_RUN_ID\"\n"})
    server = server_factory("--dev")
    url = server.url
    accepted: list[str] = []
    refused: dict[int, int] = {}
    finished: dict[str, list[int]] = {}
    seqs: list[int] = []
    latencies: list[float] = []
    health: list[int] = []
    next_index = iter(range(RUNS))
    progress = Progress()
    stop_probe = trio.Event()
    started = time.perf_counter()

    async def client_worker() -> None:
        async with httpx.AsyncClient(timeout=60, headers=DEV) as client:
            for _ in next_index:
                response = await client.post(f"{url}/runs", json={"job_id": "quick"})
                if response.status_code == 201:
                    accepted.append(response.json()["id"])
                else:
                    refused[response.status_code] = refused.get(response.status_code, 0) + 1
                progress.note()

    async def wait_all_finished() -> None:
        while not (len(accepted) + sum(refused.values()) == RUNS
                   and all(run_id in finished for run_id in accepted)):
            await progress.wait()

    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            ready = trio.Event()
            nursery.start_soon(watch_finishes, url, finished, seqs, ready, progress)
            await ready.wait()
            nursery.start_soon(probe_health, url, latencies, health, stop_probe)
            async with trio.open_nursery() as clients:
                for _ in range(CLIENTS):
                    clients.start_soon(client_worker)
            posted = time.perf_counter()
            await wait_all_finished()
            stop_probe.set()
            nursery.cancel_scope.cancel()
    elapsed = time.perf_counter() - started

    print(f"\nload: {RUNS} POST /runs from {CLIENTS} clients: {len(accepted)} accepted "
          f"({refused or 'none refused'}); all posted in {posted - started:.1f}s, all finished "
          f"in {elapsed:.1f}s ({len(accepted) / elapsed:.0f} runs/s)")
    print(f"load: /healthz during the load: n={len(latencies)} "
          f"p50={statistics.median(latencies) * 1000:.1f}ms "
          f"p99={percentile(latencies, 0.99) * 1000:.1f}ms "
          f"max={max(latencies) * 1000:.1f}ms")

    assert not any(status >= 500 for status in refused), refused
    assert set(refused) <= {429}, refused  # a concurrency limit may refuse; nothing else
    assert accepted and len(accepted) == len(set(accepted))
    assert health and set(health) == {204}
    # Each accepted run finished exactly once on the global stream; no seq went by twice.
    assert all(len(finished[run_id]) == 1 for run_id in accepted)
    assert len(seqs) == len(set(seqs))
    # The journal agrees, page by page: every accepted run, once, completed.
    listed: list[dict] = []
    async with httpx.AsyncClient(timeout=60, headers=DEV) as client:
        page = 1
        while True:
            response = await client.get(f"{url}/runs", params={"page": page, "per_page": 200})
            assert response.status_code == 200
            total = int(response.headers["X-Total-Count"])
            listed += response.json()
            if not response.json():
                break
            page += 1
    ids = [run["id"] for run in listed]
    assert total == len(accepted)
    assert len(ids) == len(set(ids)) and set(ids) == set(accepted)
    assert {run["status"] for run in listed} == {"completed"}
