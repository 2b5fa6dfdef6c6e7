"""Following a run across replicas: how late an event reaches an SSE reader on replica A
when the run executes on replica B, beside a reader on B itself (issue 18, item 4).

Two ``flwd :serve --db`` replicas on one throw-away PostgreSQL database (tests/_postgres.py:
initdb + pg_ctl on a Unix socket; Debian's ``postgresql`` must be installed). Each round
starts a run on B whose step prints a line every ``--interval`` seconds, each line its own
wall-clock time; two SSE readers of ``GET /runs/{id}/events`` — one on B (the owner: its
hub hands over each committed batch), one on A (the journal, read when A's LISTEN
connection says the run moved; 0.2 s polling before issue 18's item 4) — start before the
run's first line and note when each line arrives. Lag = arrival − the time the line
states. Both readers follow the same run at once, so the two figures are interleaved by
construction; medians and p95 over every line of every round, and their ratio.

    python bench/cluster_follow.py [--rounds R] [--lines N] [--interval S] [--tree DIR]

``--tree DIR`` runs both replicas from another checkout of flwd (``PYTHONPATH=DIR``), e.g.
``git archive 2bace9a | tar -x -C DIR`` for the code before item 4, whose A polls.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (
    DEV_AUTH,
    header,
    median,
    percentile,
    record,
    start_server,
    write_job,
)
from tests._postgres import Cluster, find_bin_dir

_STAMP = re.compile(rb"tick (\d+\.\d+)")


def follow(url: str, lags: list[float], ready: threading.Event) -> None:
    with httpx.stream("GET", url, headers=DEV_AUTH, timeout=120) as response:
        ready.set()
        for line in response.iter_lines():
            if not line.startswith("data: "):
                continue
            arrived = time.time()
            event = json.loads(line[6:])
            match = _STAMP.search(str(event.get("data", {}).get("message", "")).encode())
            if match:
                lags.append(arrived - float(match.group(1)))
            if event.get("type") == "run.finish":
                return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--lines", type=int, default=40)
    parser.add_argument("--interval", type=float, default=0.05)
    parser.add_argument("--tree", type=Path, help="run the replicas from this flwd tree")
    options = parser.parse_args()
    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise SystemExit("PostgreSQL is not installed (apt-get install postgresql)")
    header("Following a run across replicas (SSE lag, PostgreSQL)")
    print(f"load average: {os.getloadavg()[0]:.2f}; {options.rounds} rounds x "
          f"{options.lines} lines, one every {options.interval} s")
    cluster = Cluster(bin_dir)
    root = Path(tempfile.mkdtemp(prefix="flwd-bench-follow-"))
    servers = []
    try:
        dsn = cluster.fresh_database()
        workspace = root / "ws"
        workspace.mkdir()
        gate = root / "gate"
        write_job(workspace, "ticks", "interpreter: bash\n", {"100_main.sh": (
            f'while [ ! -e "{gate}" ]; do sleep 0.01; done\n'
            f'for i in $(seq 1 {options.lines}); do echo "tick $(date +%s.%N)";'
            f' sleep {options.interval}; done\n')})
        env = {"PYTHONPATH": str(options.tree.resolve())} if options.tree else {}
        if options.tree:
            print(f"replicas run from {options.tree}")
        for name in ("a", "b"):
            servers.append(start_server(workspace, root / f"data-{name}", "--db", dsn, **env))
        a, b = servers
        owner_lags: list[float] = []
        other_lags: list[float] = []
        for _ in range(options.rounds):
            gate.unlink(missing_ok=True)
            response = httpx.post(f"{b.url}/runs", headers=DEV_AUTH, timeout=60,
                                  json={"job_id": "ticks", "args": {}})
            response.raise_for_status()
            run_id = response.json()["id"]
            readers = []
            for server, lags in ((b, owner_lags), (a, other_lags)):
                ready = threading.Event()
                reader = threading.Thread(target=follow, args=(
                    f"{server.url}/runs/{run_id}/events", lags, ready), daemon=True)
                reader.start()
                ready.wait(60)
                readers.append(reader)
            gate.touch()
            for reader in readers:
                reader.join(120)
        for what, lags in (("on B (the owner's hub)", owner_lags),
                           ("on A (another replica)", other_lags)):
            print(f"lag {what}: median {median(lags) * 1000:.1f} ms, "
                  f"p95 {percentile(lags, 0.95) * 1000:.1f} ms ({len(lags)} lines)")
        ratio = median(other_lags) / median(owner_lags)
        print(f"ratio A/B (medians): {ratio:.2f}x; before item 4, A polled every 200 ms "
              f"(on average ~100 ms more than B)")
        record("cluster_follow", "SSE lag on another replica (median)",
               median(other_lags) * 1000, "ms",
               baseline=("on the owner replica", median(owner_lags) * 1000))
    finally:
        for server in servers:
            server.stop()
        cluster.stop()


if __name__ == "__main__":
    main()
