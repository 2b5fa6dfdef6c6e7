"""Cluster throughput: runs/s with 1, 2 and 3 ``flwd :serve`` replicas on one PostgreSQL
Core DB, beside 1 server on SQLite, in one run; and SSE fan-out across replicas.

**Throughput.** Every configuration's servers start once (each replica its own data dir;
each PostgreSQL configuration its own database of one throw-away cluster, as in
tests/_postgres.py). Then, round after round, each configuration gets the same number of
trivial runs (``echo ok``), each one ``POST /runs`` with ``Accept: text/event-stream``
read to its end (the run's whole stream, from the replica that accepted it), sent by
the lean client (bench/_lean.py: raw sockets, one thread per kept-alive connection;
httpx would steal the servers' CPU on 2 cores) spreading its threads round-robin over
the configuration's replicas. The configurations' order rotates every round
(interleaved: a noisy neighbour hits all of them alike). Reported: medians over the
rounds, ratios to 1 replica on PostgreSQL and to SQLite, and the load average.

**SSE fan-out across replicas.** A run that prints a line every 20 ms for about a
second is started on replica B; N clients follow its events (``GET /runs/{id}/events``,
read to the end of the stream) either on B itself (the owner: the baseline) or on
replica A (another replica, which follows B's run through the Core DB). Reported per
side: the median lag between the run's end and each client's end of stream, whether
every client saw every event (counted against the journal), and the ratio A/B.

    python bench/cluster_throughput.py [--rounds R] [--per-round N] [--threads T]
                                       [--clients N] [--fanout-rounds R]

Needs PostgreSQL's server binaries (Debian: ``apt-get install postgresql``) and psycopg.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT.parent))
from _common import DEV_AUTH, Server, header, median, record, start_server, write_job  # noqa: E402
from _lean import LeanConnection, load_average  # noqa: E402

OK_SCRIPT = "#!/bin/bash\necho ok\n"
TICKS_SCRIPT = "#!/bin/bash\nfor i in $(seq 1 50); do echo \"line $i\"; sleep 0.02; done\n"
RUN_BODY = json.dumps({"job_id": "ok", "args": {}}).encode()
RUN_HEADERS = {**DEV_AUTH, "Accept": "text/event-stream", "Content-Type": "application/json"}


def one_run(connection: LeanConnection) -> str | None:
    status, _, body = connection.request("POST", "/runs", RUN_HEADERS, RUN_BODY)
    if status != 201:
        return f"POST /runs -> {status}: {body[:200]!r}"
    finish = body.rfind(b"event: run.finish\n")
    if finish < 0:
        return "the stream ended without run.finish"
    if b'"status":"completed"' not in body[finish:]:
        return f"the run did not complete: {body[finish:][:300]!r}"
    return None


def address(url: str) -> tuple[str, int]:
    host, _, port = url.removeprefix("http://").rpartition(":")
    return host, int(port)


def drive(urls: list[str], count: int, threads: int) -> tuple[float, list[str]]:
    """``count`` runs from ``threads`` threads, thread i on replica i % len(urls); the wall
    time and the failures."""
    lock = threading.Lock()
    numbers = iter(range(count))
    failures: list[str] = []

    def worker(index: int) -> None:
        connection = LeanConnection(*address(urls[index % len(urls)]))
        try:
            while True:
                with lock:
                    number = next(numbers, None)
                if number is None:
                    return
                try:
                    problem = one_run(connection)
                except (OSError, ValueError) as exc:
                    problem = f"{type(exc).__name__}: {exc}"
                    connection.close()
                if problem is not None:
                    with lock:
                        failures.append(f"#{number}: {problem}")
        finally:
            connection.close()

    start = time.perf_counter()
    workers = [threading.Thread(target=worker, args=(index,)) for index in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    return time.perf_counter() - start, failures


def follow(url: str, run_id: str, clients: int) -> list[tuple[float, int]]:
    """``clients`` streams of the run's events read to their end, at once: for each, when
    it ended (perf_counter) and how many events it carried."""
    ready = threading.Barrier(clients + 1)
    ended: list[tuple[float, int]] = []
    lock = threading.Lock()

    def client() -> None:
        connection = LeanConnection(*address(url))
        try:
            ready.wait()
            status, _, body = connection.request("GET", f"/runs/{run_id}/events", DEV_AUTH)
            done = time.perf_counter()
            events = body.count(b"\nevent: ") + body.startswith(b"event: ")
            with lock:
                ended.append((done, events if status == 200 else -1))
        finally:
            connection.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    ready.wait()
    for thread in threads:
        thread.join()
    return ended


def fanout_round(owner: Server, reader: Server, clients: int) -> tuple[list[float], bool]:
    """Start a run on ``owner``; ``clients`` follow it on ``reader``; one more follows it on
    the owner to time its end. The lags (s) after that end, and whether each client saw
    as many events as the journal holds."""
    connection = LeanConnection(*address(owner.url))
    status, _, body = connection.request(
        "POST", "/runs", {**DEV_AUTH, "Content-Type": "application/json"},
        json.dumps({"job_id": "ticks", "args": {}}).encode())
    connection.close()
    assert status == 201, body[:300]
    run_id = json.loads(body)["id"]
    timer: list[tuple[float, int]] = []
    watch = threading.Thread(target=lambda: timer.extend(follow(owner.url, run_id, 1)))
    watch.start()
    seen = follow(reader.url, run_id, clients)
    watch.join()
    end, journal = timer[0]
    return [max(0.0, done - end) for done, _ in seen], all(n == journal for _, n in seen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--per-round", type=int, default=60)
    parser.add_argument("--threads", type=int, default=6,
                        help="client threads (a multiple of 6 spreads evenly on 1-3 replicas)")
    parser.add_argument("--clients", type=int, default=20, help="SSE clients per fan-out")
    parser.add_argument("--fanout-rounds", type=int, default=3)
    options = parser.parse_args()

    from tests._postgres import Cluster, find_bin_dir, skip_reason

    reason = skip_reason()
    if reason is not None:
        raise SystemExit(f"cluster_throughput: {reason}")
    bin_dir = find_bin_dir()
    assert bin_dir is not None
    cluster = Cluster(bin_dir)
    servers: list[Server] = []
    configs: dict[str, list[Server]] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="flwd-bench-cluster-") as tmp_name:
            tmp = Path(tmp_name)
            workspace = tmp / "ws"
            write_job(workspace, "ok", "interpreter: bash\n", {"100_ok.sh": OK_SCRIPT})
            write_job(workspace, "ticks", "interpreter: bash\n", {"100_ticks.sh": TICKS_SCRIPT})

            def start(name: str, count: int, *flags: str) -> None:
                made = [start_server(workspace, tmp / f"{name}-{index}", *flags)
                        for index in range(count)]
                servers.extend(made)
                configs[name] = made

            start("sqlite x1", 1)
            for count in (1, 2, 3):
                start(f"postgres x{count}", count, "--db", cluster.fresh_database())
            names = list(configs)
            rates: dict[str, list[float]] = {name: [] for name in names}
            failures: list[str] = []
            for name in names:  # warm-up: first imports, first connections
                drive([server.url for server in configs[name]], 12, options.threads)
            for round_ in range(options.rounds):
                order = names[round_ % len(names):] + names[:round_ % len(names)]
                for name in order:
                    wall, failed = drive([server.url for server in configs[name]],
                                         options.per_round, options.threads)
                    rates[name].append(options.per_round / wall)
                    failures += [f"{name}: {text}" for text in failed]
            loads_after_runs = load_average()

            fan = configs["postgres x2"]
            owner, other = fan[1], fan[0]
            lags: dict[str, list[float]] = {"owner (B)": [], "other replica (A)": []}
            complete = True
            for round_ in range(options.fanout_rounds):
                sides: list[tuple[str, Server]] = [("owner (B)", owner),
                                                   ("other replica (A)", other)]
                for side, reader in sides if round_ % 2 == 0 else sides[::-1]:
                    got, whole = fanout_round(owner, reader, options.clients)
                    lags[side] += got
                    complete = complete and whole
            problems = [line for server in servers for line in server.problems()]
    finally:
        for server in servers:
            server.stop()
        cluster.stop()

    header(f"cluster_throughput ({options.rounds} interleaved rounds x {options.per_round} "
           f"trivial runs, {options.threads} client threads round-robin over the replicas)")
    print(f"load average after the runs: {loads_after_runs} (1/5/15 min)")
    base_pg, base_sqlite = median(rates["postgres x1"]), median(rates["sqlite x1"])
    print(f"{'configuration':16} {'runs/s (median)':>16} {'min':>7} {'max':>7} "
          f"{'vs pg x1':>9} {'vs sqlite':>10}")
    for name in names:
        value = median(rates[name])
        print(f"{name:16} {value:16.1f} {min(rates[name]):7.1f} {max(rates[name]):7.1f} "
              f"{value / base_pg:8.2f}x {value / base_sqlite:9.2f}x")
        record("cluster_throughput", f"runs/s, {name}", value, "runs/s",
               baseline=("sqlite x1", base_sqlite))
    print()
    print(f"SSE fan-out: {options.clients} clients following a run of replica B "
          f"(~1 s, 50 lines), {options.fanout_rounds} rounds, sides interleaved")
    owner_lag = median(lags["owner (B)"])
    for side, values in lags.items():
        print(f"  on {side:18}: lag after the run's end median {median(values) * 1000:7.1f} ms,"
              f" max {max(values) * 1000:7.1f} ms")
    other_lag = median(lags["other replica (A)"])
    # The owner's clients end with its own timer (one publication): a ratio to ~0 says
    # nothing, the difference does.
    compared = (f"{other_lag / owner_lag:.2f}x the owner's" if owner_lag >= 0.001 else
                f"{(other_lag - owner_lag) * 1000:.1f} ms after the owner's")
    print(f"  other replica's median lag: {compared};"
          f" every client saw every event: {'yes' if complete else 'NO'}")
    print(f"load average at the end: {load_average()}")
    for line in failures[:10]:
        print(f"FAILED {line}")
    for line in problems[:5]:
        print(f"server warning: {line[:300]}")
    if failures or not complete:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
